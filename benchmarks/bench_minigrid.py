"""Environment steps/s of the JAX Minigrid, beside envpool's C++ MiniGrid and the official package.

    python -m benchmarks.bench_minigrid [--quick] [--out benchmarks/results]

For Empty-8x8 and DoorKey-8x8, random actions, in one run:

* ``jax``: ``environments.minigrid`` with N vmapped environments inside one jitted
  ``lax.scan`` (auto-reset: layouts regenerated from the PRNG key, the egocentric 7×7
  observation with the visibility flood computed every step), N = 1024 (256 with --quick);
* ``envpool``: envpool's C++ MiniGrid, N environments stepped as one batch on 2 threads;
* ``official``: the official ``minigrid`` package, one environment, a Python loop.

Compile time is measured apart; each figure is the median of repeats after a warm-up.
One JSON line per measurement goes to ``benchmarks/results/minigrid_<date>_<device>.jsonl``
and a table to ``benchmarks/results/minigrid.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.throughput import timed
from core import cli
from environments import minigrid

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ENV_IDS = ("MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-8x8-v0")


def jax_minigrid(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    env = minigrid.make(env_id)

    def rollout(key):
        reset_key, key = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, (num_envs,), 0, 7)
            state, out = jax.vmap(env.step_auto_reset)(jax.random.split(step_key, num_envs), state, actions)
            return (state, key), out.reward.sum() + out.observation.image[:, 3, 5, 0].sum()

        (state, _), checksum = jax.lax.scan(body, (state, key), None, length=steps)
        return checksum.sum()

    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start
    run = lambda: jax.block_until_ready(compiled(jax.random.PRNGKey(1)))  # noqa: E731
    run()
    t = timed(run, repeats=repeats)
    return {**t, "compile_s": compile_s, "steps_per_s": num_envs * steps / t["median_s"], "num_envs": num_envs}


def envpool_minigrid(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    import envpool

    env = envpool.make_gymnasium(env_id, num_envs=num_envs, batch_size=num_envs, num_threads=2, seed=0)
    env.reset()
    actions = np.random.default_rng(0).integers(0, 7, size=(steps, num_envs)).astype(np.int32)

    def run():
        for a in actions:
            env.step(a)

    run()
    t = timed(run, repeats=repeats)
    env.close()
    return {**t, "steps_per_s": num_envs * steps / t["median_s"], "num_envs": num_envs}


def official_minigrid(env_id: str, steps: int, repeats: int) -> dict:
    import gymnasium as gym
    import minigrid as _official  # noqa: F401  (registers the environments)

    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 7, size=steps)

    def run():
        for a in actions:
            _, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                env.reset()

    run()
    t = timed(run, repeats=repeats)
    return {**t, "steps_per_s": steps / t["median_s"], "num_envs": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer environments, steps and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    num_envs, steps, repeats = (256, 50, 3) if args.quick else (1024, 100, 5)
    device = jax.devices()[0].device_kind.replace(" ", "_")
    stamp = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"minigrid_{stamp}_{device}.jsonl")
    meta = {"versions": cli.versions(), "git_sha": cli.git_sha(), "device": device, "date": stamp,
            "cpu_count": os.cpu_count()}
    rows = []
    for env_id in ENV_IDS:
        for name, fn in (("jax", lambda: jax_minigrid(env_id, num_envs, steps, repeats)),
                         ("envpool", lambda: envpool_minigrid(env_id, 16, 200 if args.quick else 1000, repeats)),
                         ("official", lambda: official_minigrid(env_id, 300 if args.quick else 2000, repeats))):
            result = {"env_id": env_id, "implementation": name, **fn()}
            rows.append(result)
            with open(path, "a") as f:
                f.write(json.dumps({**result, **meta}) + "\n")
            print(env_id, name, f"{result['steps_per_s']:,.0f} steps/s", flush=True)
    lines = [f"Measured {stamp} on `{device}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}) by "
             f"`python -m benchmarks.bench_minigrid{' --quick' if args.quick else ''}`; random actions.", "",
             "| environment | JAX Minigrid (N vmapped, one jit) | envpool C++ (16 envs, 2 threads) | official (1 env) "
             "| JAX / envpool | JAX / official | JAX compile |", "|---|---:|---:|---:|---:|---:|---:|"]
    for env_id in ENV_IDS:
        j, e, o = (next(r for r in rows if r["env_id"] == env_id and r["implementation"] == n)
                   for n in ("jax", "envpool", "official"))
        lines.append(f"| {env_id} | {j['steps_per_s']:,.0f} (N = {j['num_envs']}) | {e['steps_per_s']:,.0f} "
                     f"| {o['steps_per_s']:,.0f} | {j['steps_per_s'] / e['steps_per_s']:.1f}× "
                     f"| {j['steps_per_s'] / o['steps_per_s']:.0f}× | {j['compile_s']:.1f} s |")
    with open(os.path.join(args.out, "minigrid.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
