"""Soft MoE layer against the dense layer it replaces: forward and forward+backward time.

    python -m benchmarks.bench_soft_moe [--quick] [--out benchmarks/results]

Obando-Ceron et al. 2024 (arXiv 2402.08609) replace the penultimate dense layer of a value
network (SAME-padded Nature CNN features [11, 11, 64] flattened to 7744 → 512 units) with a
Soft MoE over PerConv tokens ([121, 64]). For E in (1, 2, 4, 8) experts this measures, in
one run and on the same inputs (batch 32):

* ``soft_moe``: tokens → Soft MoE (slots per expert ⌈121/E⌉, expert MLP 64 → 512 → 64, the
  token size kept) → flattened, the layer of ``algorithms/soft_moe/networks.py`` over
  ``algorithms/soft_moe/moe.py``;
* ``dense_wide``: the paper's baseline, the flattened features → dense 512·E, ReLU;

timing the jitted forward pass and the jitted value-and-grad of the summed output
(compile excluded, warm-up, median of repeats). One JSON line per measurement goes to
``benchmarks/results/soft_moe_<date>_<device>.jsonl`` and a table to ``soft_moe.md``.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp

from algorithms.soft_moe import moe
from benchmarks import common
from benchmarks.common import RESULTS, timed
BATCH, SIDE, CHANNELS, UNITS = 32, 11, 64, 512
TOKENS = SIDE * SIDE


def soft_moe_layer(num_experts: int, key):
    slots = moe.num_slots(TOKENS, num_experts)
    k1, k2 = jax.random.split(key)
    params = {"phi": jax.random.normal(k1, (CHANNELS, num_experts, slots)) / CHANNELS ** 0.5,
              "experts": moe.init_experts(k2, num_experts=num_experts, in_dim=CHANNELS, hidden=UNITS, out_dim=CHANNELS)}

    def apply(p, features):  # features [B, 11, 11, 64]
        tokens = jax.vmap(moe.per_conv_tokens)(features)
        out = jax.vmap(lambda x: moe.soft_moe(x, p["phi"], p["experts"]).output)(tokens)
        return out.reshape(out.shape[0], -1)  # [B, 121·64], into the Q layer

    return params, apply, {"experts": num_experts, "slots_per_expert": slots}


def dense_wide_layer(num_experts: int, key):
    width = UNITS * num_experts
    params = {"w": jax.random.normal(key, (TOKENS * CHANNELS, width)) / (TOKENS * CHANNELS) ** 0.5,
              "b": jnp.zeros(width)}

    def apply(p, features):
        return jax.nn.relu(features.reshape(features.shape[0], -1) @ p["w"] + p["b"])

    return params, apply, {"width": width}


def measure(params, apply, features, *, iterations: int, repeats: int) -> dict:
    forward = jax.jit(apply)
    grad = jax.jit(jax.value_and_grad(lambda p, x: apply(p, x).sum()))
    start = time.perf_counter()
    jax.block_until_ready(forward(params, features))
    jax.block_until_ready(grad(params, features))
    compile_s = time.perf_counter() - start

    def run(fn):
        def go():
            out = None
            for _ in range(iterations):
                out = fn(params, features)
            jax.block_until_ready(out)
        return go

    fwd = timed(run(forward), repeats=repeats)
    bwd = timed(run(grad), repeats=repeats)
    count = sum(x.size for x in jax.tree.leaves(params))
    return {"forward_ms": 1e3 * fwd["median_s"] / iterations, "forward_backward_ms": 1e3 * bwd["median_s"] / iterations,
            "spread_fb_ms": [1e3 * bwd["min_s"] / iterations, 1e3 * bwd["max_s"] / iterations],
            "parameters": int(count), "compile_s": compile_s, "repeats": repeats, "iterations": iterations}


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``soft_moe.md`` in ``out``; suite rows back."""
    iterations, repeats = (5, 3) if quick else (20, 5)
    experts_list = (1, 8) if quick else (1, 2, 4, 8)
    path = common.results_path(out, "soft_moe")
    meta = common.meta(shapes={"batch": BATCH, "tokens": TOKENS, "channels": CHANNELS, "units": UNITS})
    features = jax.random.normal(jax.random.PRNGKey(0), (BATCH, SIDE, SIDE, CHANNELS))
    rows = []
    for experts in experts_list:
        for name, build in (("soft_moe", soft_moe_layer), ("dense_wide", dense_wide_layer)):
            params, apply, info = build(experts, jax.random.PRNGKey(experts))
            result = {"layer": name, **info, **measure(params, apply, features, iterations=iterations, repeats=repeats)}
            rows.append(result)
            common.append_jsonl(path, {**result, **meta})
            print(name, experts, common.rounded(result, 3), flush=True)
    table, suite = [], []
    for experts in experts_list:
        s = next(r for r in rows if r["layer"] == "soft_moe" and r["experts"] == experts)
        d = next(r for r in rows if r["layer"] == "dense_wide" and r["width"] == UNITS * experts)
        table.append([experts, f"{s['forward_ms']:.2f} ms", f"{s['forward_backward_ms']:.2f} ms", f"{s['parameters']:,}",
                      f"{d['forward_ms']:.2f} ms", f"{d['forward_backward_ms']:.2f} ms", f"{d['parameters']:,}",
                      f"{s['forward_backward_ms'] / d['forward_backward_ms']:.2f}"])
        suite.append(common.measurement(
            "kernel", f"soft_moe layer, {experts} experts (fwd+bwd)", s["forward_backward_ms"], "ms",
            config={"batch": BATCH, "tokens": TOKENS, "experts": experts}, baseline=f"dense {UNITS}·E layer",
            baseline_value=d["forward_backward_ms"], higher_is_better=False))
    text = (f"Measured {common.today()} on `{meta['device']}` (jax {meta['versions'].get('jax')}), by "
            f"`python -m benchmarks.bench_soft_moe{' --quick' if quick else ''}`; batch {BATCH}, PerConv tokens "
            f"{TOKENS}×{CHANNELS}, {UNITS} units.\n\n" + common.markdown_table(
                ["experts", "Soft MoE fwd", "Soft MoE fwd+bwd", "params", "dense 512·E fwd", "dense fwd+bwd", "params",
                 "fwd+bwd ratio"], table))
    common.write_text(os.path.join(out, "soft_moe.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
