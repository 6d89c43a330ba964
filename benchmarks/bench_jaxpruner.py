"""JaxPruner's optax wrapper against the plain optimizer: time per optimizer step.

    python -m benchmarks.bench_jaxpruner [--quick] [--out benchmarks/results]

For the value networks of the sparse-DQN integration (the MinAtar DQN network, 10×10×4
inputs, and the Nature DQN network on 4×84×84 Atari frames) this measures, in one run and
on the same gradients, the jitted time of one optimizer step (update + apply_updates,
``iterations`` steps inside one ``lax.scan``, compile excluded, warm-up, median of repeats) of

* ``adam``: plain ``optax.adam`` (the baseline);
* ``no_prune``: the wrapper with no masks;
* ``<algorithm>``: ``updater.wrap_optax(adam)`` at 98% ERK sparsity on a step where the
  schedule does *not* update the masks (the common step: masking the updates, the
  ``lax.cond`` not taken), and ``<algorithm>@update`` on a step where it does (scores,
  top-k by sorting every prunable layer; SET/RigL's drop-and-grow and moment reset);
* ``magnitude+bits``: the same with bit-packed masks (unpacked at every step).

One JSON line per measurement goes to ``benchmarks/results/jaxpruner_<date>_<device>.jsonl``
and a table to ``jaxpruner.md``.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import optax

from algorithms.jaxpruner import api as jaxpruner
from benchmarks import common
from benchmarks.common import RESULTS, timed
from core.networks import NetworkConfig, make_q_network

NETWORKS = {
    "minatar_dqn": (NetworkConfig(torso="minatar", head_hidden=128, channels_first=False), (10, 10, 4), 6),
    "nature_dqn": (NetworkConfig(torso="nature", head_hidden=512), (4, 84, 84), 6),
}
NEVER = dict(update_start_step=10 ** 9, update_end_step=10 ** 9 + 1, update_freq=1)  # masks never updated
ALWAYS = dict(update_start_step=0, update_end_step=10 ** 9, update_freq=1)  # masks updated at every step
VARIANTS = {
    "no_prune": dict(algorithm="no_prune"),
    "magnitude": dict(algorithm="magnitude", **NEVER),
    "magnitude@update": dict(algorithm="magnitude", **ALWAYS),
    "magnitude+bits": dict(algorithm="magnitude", bit_packing=True, **NEVER),
    "rigl": dict(algorithm="rigl", **NEVER),
    "rigl@update": dict(algorithm="rigl", **ALWAYS),
    "set@update": dict(algorithm="set", **ALWAYS),
}


def network_params(name: str):
    cfg, shape, actions = NETWORKS[name]
    net = make_q_network(cfg, actions)
    return net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape), jnp.uint8 if len(shape) == 3 and shape[0] == 4
                                                    else jnp.float32))


def measure(tx: optax.GradientTransformation, params, grads, *, iterations: int, repeats: int) -> dict:
    def run(params, state):
        def body(carry, _):
            p, s = carry
            updates, s = tx.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        return jax.lax.scan(body, (params, state), None, length=iterations)[0]

    state = tx.init(params)
    start = time.perf_counter()
    compiled = jax.jit(run).lower(params, state).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(params, state))
    out = timed(lambda: jax.block_until_ready(compiled(params, state)), repeats=repeats)
    return {"step_ms": 1e3 * out["median_s"] / iterations,
            "spread_ms": [1e3 * out["min_s"] / iterations, 1e3 * out["max_s"] / iterations],
            "compile_s": compile_s, "iterations": iterations, "repeats": repeats}


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``jaxpruner.md`` in ``out``; suite rows back."""
    path = common.results_path(out, "jaxpruner")
    meta = common.meta()
    rows = []
    networks = ("minatar_dqn",) if quick else tuple(NETWORKS)
    for net in networks:
        params = network_params(net)
        grads = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(1), p.shape, p.dtype), params)
        count = sum(p.size for p in jax.tree.leaves(params))
        iterations, repeats = ((20, 3) if quick else (50, 5)) if net == "minatar_dqn" else ((4, 3) if quick else (10, 5))
        variants = {"adam": optax.adam(1e-4)}
        for label, config in VARIANTS.items():
            if quick and label not in ("magnitude", "magnitude@update", "rigl@update"):
                continue
            updater = jaxpruner.create_updater_from_config(dict(sparsity=0.98, dist_type="erk", **config))
            variants[label] = updater.wrap_optax(optax.adam(1e-4))
        for label, tx in variants.items():
            iters = max(2, iterations // 5) if label.endswith("@update") and net == "nature_dqn" else iterations
            result = {"network": net, "parameters": int(count), "variant": label,
                      **measure(tx, params, grads, iterations=iters, repeats=repeats)}
            rows.append(result)
            common.append_jsonl(path, {**result, **meta})
            print(net, label, common.rounded(result), flush=True)
    table, suite = [], []
    for net in networks:
        base = next(r for r in rows if r["network"] == net and r["variant"] == "adam")["step_ms"]
        for r in (r for r in rows if r["network"] == net):
            table.append([net, f"{r['parameters']:,}", r["variant"], f"{r['step_ms']:.3f}",
                          f"{r['spread_ms'][0]:.3f}–{r['spread_ms'][1]:.3f}", f"{r['step_ms'] / base:.2f}"])
            if r["variant"] != "adam":
                suite.append(common.measurement(
                    "kernel", f"jaxpruner {r['variant']} step, {net}", r["step_ms"], "ms",
                    config={"sparsity": 0.98, "parameters": r["parameters"]}, baseline="optax.adam step",
                    baseline_value=base, higher_is_better=False))
    text = (f"Measured {common.today()} on `{meta['device']}` (jax {meta['versions'].get('jax')}), by "
            f"`python -m benchmarks.bench_jaxpruner{' --quick' if quick else ''}`: one optimizer step (update + "
            "apply_updates, inside a jitted scan), 98% ERK sparsity, median of repeats (min–max).\n\n"
            + common.markdown_table(["network", "parameters", "variant", "ms / step", "spread", "× adam"], table,
                                    align="lrlrlr"))
    common.write_text(os.path.join(out, "jaxpruner.md"), text)
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
