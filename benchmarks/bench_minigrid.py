"""Environment steps/s of the JAX Minigrid, beside envpool's C++ MiniGrid and the official package.

    python -m benchmarks.bench_minigrid [--quick] [--out benchmarks/results]

For Empty-8x8 and DoorKey-8x8, random actions, in one run:

* ``jax``: ``environments.minigrid`` with N environments inside one jitted ``lax.scan``
  (auto-reset: layouts regenerated from the PRNG key, the egocentric 7×7 observation with
  the visibility flood computed every step), N = 1024 (256 with --quick), two ways:
  ``batch_step_auto_reset`` (``jax``: finished episodes restart from a pool of N/16 fresh
  layouts drawn each step) and ``vmap(step_auto_reset)`` (``jax_vmap``: N fresh layouts
  drawn every step, most discarded);
* ``envpool``: envpool's C++ MiniGrid, N environments stepped as one batch on 2 threads;
* ``official``: the official ``minigrid`` package, one environment, a Python loop.

Compile time is measured apart; each figure is the median of repeats after a warm-up.
One JSON line per measurement goes to ``benchmarks/results/minigrid_<date>_<device>.jsonl``
and a table to ``benchmarks/results/minigrid.md``.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.common import RESULTS, timed
from environments import minigrid
ENV_IDS = ("MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-8x8-v0")


def jax_minigrid(env_id: str, num_envs: int, steps: int, repeats: int, batched: bool = True) -> dict:
    env = minigrid.make(env_id)

    def step(key, state, actions):
        if batched:
            return minigrid.batch_step_auto_reset(env, key, state, actions)
        return jax.vmap(env.step_auto_reset)(jax.random.split(key, num_envs), state, actions)

    def rollout(key):
        reset_key, key = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, (num_envs,), 0, 7)
            state, out = step(step_key, state, actions)
            # Every observation byte feeds the checksum, so XLA cannot drop any of the view's work.
            return (state, key), out.reward.sum() + out.observation.image.sum(dtype=jnp.float32)

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


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``minigrid.md`` in ``out``; suite rows back."""
    num_envs, steps, repeats = (256, 50, 3) if quick else (1024, 100, 5)
    path = common.results_path(out, "minigrid")
    meta = common.meta()
    rows = []
    for env_id in ENV_IDS:
        for name, fn in (("jax", lambda: jax_minigrid(env_id, num_envs, steps, repeats)),
                         ("jax_vmap", lambda: jax_minigrid(env_id, num_envs, steps, repeats, batched=False)),
                         ("envpool", lambda: envpool_minigrid(env_id, 16, 200 if quick else 1000, repeats)),
                         ("official", lambda: official_minigrid(env_id, 300 if quick else 2000, repeats))):
            try:
                result = {"env_id": env_id, "implementation": name, **fn()}
            except ImportError as error:  # the official package is optional
                print(env_id, name, f"skipped: {error}", flush=True)
                continue
            rows.append(result)
            common.append_jsonl(path, {**result, **meta})
            print(env_id, name, f"{result['steps_per_s']:,.0f} steps/s", flush=True)
    table, suite = [], []
    for env_id in ENV_IDS:
        found = {r["implementation"]: r for r in rows if r["env_id"] == env_id}
        j, v, e, o = found["jax"], found["jax_vmap"], found["envpool"], found.get("official")
        table.append([env_id, f"{j['steps_per_s']:,.0f} (N = {j['num_envs']})", f"{v['steps_per_s']:,.0f}",
                      f"{e['steps_per_s']:,.0f}",
                      common.fmt(o and o["steps_per_s"]), f"{j['steps_per_s'] / e['steps_per_s']:.1f}×",
                      f"{j['steps_per_s'] / o['steps_per_s']:.0f}×" if o else "—", f"{j['compile_s']:.1f} s"])
        suite.append(common.measurement("raw_env", f"{env_id} (JAX Minigrid, jit+vmap)", j["steps_per_s"], "steps/s",
                                        config={"num_envs": j["num_envs"]}, baseline="envpool C++, 16 envs",
                                        baseline_value=e["steps_per_s"]))
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}) "
            f"by `python -m benchmarks.bench_minigrid{' --quick' if quick else ''}`; random actions.\n\n"
            + common.markdown_table(["environment", "JAX Minigrid (`batch_step_auto_reset`)",
                                     "JAX Minigrid (`vmap(step_auto_reset)`)", "envpool C++ (16 envs, 2 threads)",
                                     "official (1 env)", "JAX / envpool", "JAX / official", "JAX compile"], table,
                                    align="lrrrrrrr"))
    common.write_text(os.path.join(out, "minigrid.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer environments, steps and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
