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
import datetime
import json
import os
import time

import jax
import jax.numpy as jnp
import optax

from algorithms.jaxpruner import api as jaxpruner
from benchmarks.throughput import timed
from core import cli
from core.networks import NetworkConfig, make_q_network

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    device = jax.devices()[0].device_kind.replace(" ", "_")
    stamp = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"jaxpruner_{stamp}_{device}.jsonl")
    meta = {"versions": cli.versions(), "git_sha": cli.git_sha(), "device": device, "date": stamp}
    rows = []
    for net in NETWORKS:
        params = network_params(net)
        grads = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(1), p.shape, p.dtype), params)
        count = sum(p.size for p in jax.tree.leaves(params))
        iterations, repeats = ((20, 3) if args.quick else (50, 5)) if net == "minatar_dqn" else ((4, 3) if args.quick else (10, 5))
        variants = {"adam": optax.adam(1e-4)}
        for label, config in VARIANTS.items():
            updater = jaxpruner.create_updater_from_config(dict(sparsity=0.98, dist_type="erk", **config))
            variants[label] = updater.wrap_optax(optax.adam(1e-4))
        for label, tx in variants.items():
            iters = max(2, iterations // 5) if label.endswith("@update") and net == "nature_dqn" else iterations
            result = {"network": net, "parameters": int(count), "variant": label,
                      **measure(tx, params, grads, iterations=iters, repeats=repeats)}
            rows.append(result)
            with open(path, "a") as f:
                f.write(json.dumps({**result, **meta}) + "\n")
            print(net, label, {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, flush=True)
    lines = [f"Measured {stamp} on `{device}` (jax {meta['versions'].get('jax')}), by `python -m benchmarks.bench_jaxpruner`"
             f"{' --quick' if args.quick else ''}: one optimizer step (update + apply_updates, inside a jitted scan), "
             "98% ERK sparsity, median of repeats (min–max).", "",
             "| network | parameters | variant | ms / step | spread | × adam |", "|---|---:|---|---:|---|---:|"]
    for net in NETWORKS:
        base = next(r for r in rows if r["network"] == net and r["variant"] == "adam")["step_ms"]
        for r in (r for r in rows if r["network"] == net):
            lines.append(f"| {net} | {r['parameters']:,} | {r['variant']} | {r['step_ms']:.3f} | "
                         f"{r['spread_ms'][0]:.3f}–{r['spread_ms'][1]:.3f} | {r['step_ms'] / base:.2f} |")
    with open(os.path.join(args.out, "jaxpruner.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
