"""Raw environment stepping with random actions, against the number of parallel environments.

    python -m benchmarks.bench_envs [--quick] [--out benchmarks/results]

Every environment family the repository uses, in one run:

* envpool (C++ threads, the host loop): CartPole-v1, Pong-v5 (atari100k protocol),
  MiniGrid-Empty-8x8-v0, HalfCheetah-v4 (MuJoCo, uniform actions in [−1, 1]);
* gymnax Breakout-MinAtar and the JAX Minigrid (``environments.minigrid``), N vmapped
  environments inside one jitted ``lax.scan`` (compile timed apart);

for N parallel environments in (1, 8, 32) (envpool) or (1, 64, 1024) (JAX; fewer with
``--quick``). The baseline of each row is the same environment with N = 1 in the same run.
One JSON line per measurement goes to ``results/envs_<date>_<device>.jsonl``, a table to
``envs.md``.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import environments
from benchmarks import common
from benchmarks.common import RESULTS, timed

ENVPOOL = {"CartPole-v1": None, "Pong-v5": "atari100k", "MiniGrid-Empty-8x8-v0": None, "HalfCheetah-v4": None}


def envpool_steps(env_id: str, num_envs: int, steps: int, repeats: int, protocol=None) -> dict:
    env = environments.make(env_id, num_envs=num_envs, seed=0, protocol=protocol)
    env.reset()
    rng = np.random.default_rng(0)
    if env.spec.num_actions:
        actions = rng.integers(0, env.spec.num_actions, size=(steps, num_envs)).astype(np.int32)
    else:
        shape = tuple(env.raw_spec.action_spec().shape)
        actions = rng.uniform(-1, 1, size=(steps, num_envs, *shape))

    def run():
        for a in actions:
            env.step(a)

    run()
    t = timed(run, repeats=repeats)
    env.close()
    return {**t, "steps_per_s": steps * num_envs / t["median_s"]}


def jax_steps(make_rollout, num_envs: int, steps: int, repeats: int) -> dict:
    rollout = make_rollout(num_envs, steps)
    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start
    go = lambda: jax.block_until_ready(compiled(jax.random.PRNGKey(1)))  # noqa: E731
    go()
    t = timed(go, repeats=repeats)
    return {**t, "compile_s": compile_s, "steps_per_s": steps * num_envs / t["median_s"]}


def minatar_rollout(env_id: str):
    env = environments.make_jax(env_id)

    def make(num_envs, steps):
        def rollout(key):
            state, _ = env.reset(key, num_envs)

            def body(carry, _):
                state, key = carry
                key, act_key, step_key = jax.random.split(key, 3)
                actions = jax.random.randint(act_key, (num_envs,), 0, env.spec.num_actions)
                state, ts = env.step(step_key, state, actions)
                return (state, key), ts.reward.sum()

            return jax.lax.scan(body, (state, key), None, length=steps)[1].sum()

        return rollout

    return make


def minigrid_rollout(env_id: str):
    from environments import minigrid

    env = minigrid.make(env_id)

    def make(num_envs, steps):
        def rollout(key):
            reset_key, key = jax.random.split(key)
            state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

            def body(carry, _):
                state, key = carry
                key, action_key, step_key = jax.random.split(key, 3)
                actions = jax.random.randint(action_key, (num_envs,), 0, 7)
                state, out = jax.vmap(env.step_auto_reset)(jax.random.split(step_key, num_envs), state, actions)
                return (state, key), out.reward.sum()

            return jax.lax.scan(body, (state, key), None, length=steps)[1].sum()

        return rollout

    return make


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``envs.md`` in ``out``; suite rows back."""
    repeats = 3 if quick else 5
    pool_sizes = (1, 8) if quick else (1, 8, 32)
    jax_sizes = (1, 256) if quick else (1, 64, 1024)
    path = common.results_path(out, "envs")
    meta = common.meta()
    suite, table = [], []

    def record(family, env_id, num_envs, result):
        common.append_jsonl(path, {"family": family, "env_id": env_id, "num_envs": num_envs, **result, **meta})
        base = next((r["value"] for r in suite if r["name"] == f"{env_id} ({family})" and r["config"]["num_envs"] == 1),
                    None)
        suite.append(common.measurement("raw_env", f"{env_id} ({family})", result["steps_per_s"], "steps/s",
                                        config={"num_envs": num_envs}, baseline="same env, 1 environment",
                                        baseline_value=base, compile_s=result.get("compile_s")))
        table.append([family, env_id, num_envs, f"{result['steps_per_s']:,.0f}",
                      f"{result['steps_per_s'] / base:.1f}×" if base else "1.0×"])
        print(family, env_id, num_envs, f"{result['steps_per_s']:,.0f} steps/s", flush=True)

    for env_id, protocol in ENVPOOL.items():
        slow = env_id == "Pong-v5"
        for n in pool_sizes:
            steps = max(20, (200 if slow else 2_000) // (n if quick else max(1, n // 4)))
            record("envpool", env_id, n, envpool_steps(env_id, n, steps, repeats, protocol=protocol))
    for family, env_id, make in (("gymnax", "Breakout-MinAtar", minatar_rollout("Breakout-MinAtar")),
                                 ("JAX Minigrid", "MiniGrid-Empty-8x8-v0", minigrid_rollout("MiniGrid-Empty-8x8-v0"))):
        for n in jax_sizes:
            steps = 500 if n == 1 else (50 if quick else 200)
            record(family, env_id, n, jax_steps(make, n, steps, repeats))
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}), "
            f"by `python -m benchmarks.bench_envs{' --quick' if quick else ''}`; random actions, envpool with its "
            "default threads, JAX environments vmapped inside one jitted scan.\n\n"
            + common.markdown_table(["family", "environment", "parallel envs", "steps/s", "× 1 env"], table,
                                    align="llrrr"))
    common.write_text(os.path.join(out, "envs.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes, steps and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
