"""Environment steps/s of the JAX Minigrid, beside envpool's C++ MiniGrid and the official package.

    python -m benchmarks.bench_minigrid [--quick] [--out benchmarks/results]

For Empty-8x8 and DoorKey-8x8, random actions, in one run:

* ``jax``: ``environments.minigrid`` with N environments inside one jitted ``lax.scan``
  (auto-reset: layouts regenerated from the PRNG key, the egocentric 7×7 observation with
  the visibility flood computed every step), N = 1024 (256 with --quick), two ways:
  ``batch_step_auto_reset`` (``jax``: finished episodes restart from a pool of N/16 fresh
  layouts drawn each step) and ``vmap(step_auto_reset)`` (``jax_vmap``: N fresh layouts
  drawn every step, most discarded); and ``jax_cores``: the batched one split over one XLA
  CPU device per core (``pmap``; XLA runs one CPU device's program on one thread, so this is
  how a JAX program uses every core), in a child process started with
  ``--xla_force_host_platform_device_count`` = the number of cores;
* ``envpool``: envpool's C++ MiniGrid, N environments stepped as one batch on 2 threads;
* ``official``: the official ``minigrid`` package, one environment, a Python loop.

Compile time is measured apart; each figure is the median of repeats after a warm-up.
One JSON line per measurement goes to ``benchmarks/results/minigrid_<date>_<device>.jsonl``
and a table to ``benchmarks/results/minigrid.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.common import RESULTS, timed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from environments import minigrid
ENV_IDS = ("MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-8x8-v0")


def jax_minigrid(env_id: str, num_envs: int, steps: int, repeats: int, batched: bool = True) -> dict:
    """Steps/s of N environments in one jitted scan; split over all local devices (``pmap``) when there are several."""
    env = minigrid.make(env_id)
    devices = jax.local_device_count()
    if num_envs % devices:
        raise ValueError(f"num_envs {num_envs} is not divisible by the {devices} local devices")
    per_device = num_envs // devices

    def step(key, state, actions):
        if batched:
            return minigrid.batch_step_auto_reset(env, key, state, actions)
        return jax.vmap(env.step_auto_reset)(jax.random.split(key, per_device), state, actions)

    def rollout(key):
        reset_key, key = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, per_device))

        def body(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(action_key, (per_device,), 0, 7)
            state, out = step(step_key, state, actions)
            # Every observation byte feeds the checksum, so XLA cannot drop any of the view's work.
            return (state, key), out.reward.sum() + out.observation.image.sum(dtype=jnp.float32)

        (state, _), checksum = jax.lax.scan(body, (state, key), None, length=steps)
        return checksum.sum()

    keys = lambda seed: jax.random.split(jax.random.PRNGKey(seed), devices)  # noqa: E731
    start = time.perf_counter()
    if devices == 1:
        compiled = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
        call = lambda seed: compiled(jax.random.PRNGKey(seed))  # noqa: E731
    else:
        compiled = jax.pmap(rollout)
        jax.block_until_ready(compiled(keys(0)))  # pmap compiles on the first call
        call = lambda seed: compiled(keys(seed))  # noqa: E731
    compile_s = time.perf_counter() - start
    run = lambda: jax.block_until_ready(call(1))  # noqa: E731
    run()
    t = timed(run, repeats=repeats)
    return {**t, "compile_s": compile_s, "steps_per_s": num_envs * steps / t["median_s"], "num_envs": num_envs,
            "devices": devices}


def jax_minigrid_all_cores(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    """:func:`jax_minigrid` (batched) in a child process with one XLA CPU device per core."""
    cores = os.cpu_count() or 1
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={cores}").strip())
    command = [sys.executable, "-m", "benchmarks.bench_minigrid", "--child", env_id, str(num_envs), str(steps),
               str(repeats)]
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"bench_minigrid child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
                         ("jax_cores", lambda: jax_minigrid_all_cores(env_id, num_envs, steps, repeats)),
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
        one, cores, plain, e, o = (found["jax"], found["jax_cores"], found["jax_vmap"], found["envpool"],
                                   found.get("official"))
        best = max(one, cores, key=lambda r: r["steps_per_s"])
        table.append([env_id, f"{one['steps_per_s']:,.0f}", f"{cores['steps_per_s']:,.0f} ({cores['devices']} devices)",
                      f"{plain['steps_per_s']:,.0f}", f"{e['steps_per_s']:,.0f}", common.fmt(o and o["steps_per_s"]),
                      f"{best['steps_per_s'] / e['steps_per_s']:.1f}×",
                      f"{best['steps_per_s'] / o['steps_per_s']:.0f}×" if o else "—", f"{one['compile_s']:.1f} s"])
        suite.append(common.measurement("raw_env", f"{env_id} (JAX Minigrid, batched auto-reset, all cores)",
                                        best["steps_per_s"], "steps/s",
                                        config={"num_envs": best["num_envs"], "devices": best["devices"]},
                                        baseline="envpool C++, 16 envs", baseline_value=e["steps_per_s"]))
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}) "
            f"by `python -m benchmarks.bench_minigrid{' --quick' if quick else ''}`; random actions, "
            f"N = {num_envs} JAX environments in every JAX column; ratios use the faster batched JAX figure.\n\n"
            + common.markdown_table(["environment", "JAX `batch_step_auto_reset`, 1 device",
                                     "JAX `batch_step_auto_reset`, pmap over one CPU device per core",
                                     "JAX `vmap(step_auto_reset)`, 1 device", "envpool C++ (16 envs, 2 threads)",
                                     "official (1 env)", "JAX / envpool", "JAX / official", "JAX compile"], table,
                                    align="lrrrrrrrr"))
    common.write_text(os.path.join(out, "minigrid.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer environments, steps and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--child", nargs=4, metavar=("ENV_ID", "NUM_ENVS", "STEPS", "REPEATS"),
                        help=argparse.SUPPRESS)  # internal: one batched JAX measurement on all local devices, as JSON
    args = parser.parse_args()
    if args.child:
        env_id, num_envs, steps, repeats = args.child
        print(json.dumps(jax_minigrid(env_id, int(num_envs), int(steps), int(repeats))))
        return
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
