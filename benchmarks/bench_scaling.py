"""Data-parallel learner updates over 1, 2, 4 devices: same parameters, and updates/s.

    python -m benchmarks.bench_scaling [--quick] [--devices 1 2 4] [--out benchmarks/results]

The learner update of the value-based agents (:func:`algorithms.dqn.agent.make_learner_update`,
a ``jax.shard_map`` over a 1-D mesh, the batch split, gradients ``pmean``'d) is run on
meshes of 1, 2 and 4 devices in one child process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (on a machine with accelerators
the child uses the real local devices). For DQN, Rainbow and DER (the Rainbow agent
with the Atari-100k settings), from the same initial state and on the same batches, it

* checks that the parameters (and Rainbow's replay priorities) after ``updates`` steps on
  D devices equal those of the 1-device update within float tolerance;
* times steady-state updates/s on each mesh, beside the 1-device figure of the same run.

Simulated CPU devices share the machine's cores, so on a CPU the "scaling" measures the
overhead of splitting a batch (a ratio ≤ 1 is expected); on D real accelerators it is the
data-parallel speed-up. BBF (``algorithms/bbf``, issue 11, landed during this work) is not covered yet.

``--child`` runs the measurement itself in the current process (the suite and the tests
start it with the XLA flag set in the child's environment, before jax is imported).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")


def agent_configs(quick: bool, tiny: bool) -> dict:
    """name -> (Config, observation shape, dtype, actions). ``tiny``: MLPs on CartPole-sized inputs."""
    from algorithms.dqn import train as dqn
    from algorithms.rainbow import train as rainbow

    if tiny:
        return {
            "dqn": (dqn.PRESETS["smoke"][1], (4,), "float32", 2),
            "rainbow": (rainbow.PRESETS["smoke"][1], (4,), "float32", 2),
        }
    out = {
        "dqn": (dqn.PRESETS["cpu"][1], (10, 10, 4), "float32", 6),
        "rainbow": (rainbow.PRESETS["cpu"][1], (10, 10, 4), "float32", 6),
    }
    if not quick:  # Rainbow's C51 update compiles slowly on XLA:CPU; the Nature CNN at Atari 100k settings
        out["der"] = (rainbow.PRESETS["der"][1], (4, 84, 84), "uint8", 6)
    else:
        del out["rainbow"]
    return out


def child(device_counts: list[int], *, quick: bool, tiny: bool, batch_size: int, updates: int,
          timing_updates: int, agents: tuple[str, ...] = ()) -> list[dict]:
    """Runs in the process that holds the devices: equality check and timing per agent and mesh."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from algorithms.dqn.agent import make_agent
    from core import parallel
    from core.types import EnvSpec, Transition

    rows = []
    for name, (cfg, shape, dtype, actions) in agent_configs(quick, tiny).items():
        if agents and name not in agents:
            continue
        cfg = dataclasses.replace(cfg, batch_size=batch_size)
        spec = EnvSpec(env_id=cfg.env_id, observation_shape=shape, observation_dtype=np.dtype(dtype),
                       num_actions=actions)
        keys = jax.random.split(jax.random.PRNGKey(7), 6)
        if dtype == "uint8":
            obs = jax.random.randint(keys[0], (updates, batch_size, *shape), 0, 255).astype(jnp.uint8)
            next_obs = jax.random.randint(keys[1], (updates, batch_size, *shape), 0, 255).astype(jnp.uint8)
        else:
            obs = jax.random.uniform(keys[0], (updates, batch_size, *shape))
            next_obs = jax.random.uniform(keys[1], (updates, batch_size, *shape))
        batches = Transition(
            observation=obs, action=jax.random.randint(keys[2], (updates, batch_size), 0, actions),
            reward=jax.random.normal(keys[3], (updates, batch_size)),
            discount=jnp.full((updates, batch_size), cfg.gamma ** cfg.n_step),
            next_observation=next_obs, next_action=jnp.zeros((updates, batch_size), jnp.int32))
        weights = jax.random.uniform(keys[4], (updates, batch_size), minval=0.5, maxval=1.0)
        reference = None
        for devices in device_counts:
            agent = make_agent(dataclasses.replace(cfg, num_devices=devices), spec, mesh=parallel.local_mesh(devices))
            train = agent.init(jax.random.PRNGKey(0)).train
            update = jax.jit(agent.learner_update)
            start = time.perf_counter()
            compiled = update.lower(train, jax.tree.map(lambda x: x[0], batches), weights[0], keys[5]).compile()
            compile_s = time.perf_counter() - start
            priorities = []
            for i in range(updates):
                batch = jax.tree.map(lambda x: x[i], batches)
                train, loss, priority = compiled(train, batch, weights[i], jax.random.fold_in(keys[5], i))
                priorities.append(priority)
            params = jax.tree.map(np.asarray, jax.device_get(train.params))
            priorities = np.asarray(jnp.stack(priorities))
            if reference is None:
                reference = (params, priorities)
                max_diff = 0.0
            else:
                diffs = [float(np.max(np.abs(a - b))) for a, b in
                         zip(jax.tree.leaves(reference[0]), jax.tree.leaves(params))]
                max_diff = max(diffs + [float(np.max(np.abs(reference[1] - priorities)))])
                for a, b in zip(jax.tree.leaves(reference[0]), jax.tree.leaves(params)):
                    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"{name} on {devices} devices")
                np.testing.assert_allclose(priorities, reference[1], rtol=1e-4, atol=1e-5)
            row = {"agent": name, "devices": devices, "batch_size": batch_size, "torso": cfg.torso,
                   "updates_checked": updates, "max_abs_diff_vs_1_device": max_diff, "compile_s": compile_s,
                   "local_devices": jax.local_device_count(), "platform": jax.devices()[0].platform}
            if timing_updates:
                batch = jax.tree.map(lambda x: x[0], batches)
                jax.block_until_ready(compiled(train, batch, weights[0], keys[5]))
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    for i in range(timing_updates):
                        train, loss, _ = compiled(train, batch, weights[0], keys[5])
                    jax.block_until_ready(loss)
                    times.append(time.perf_counter() - start)
                row["updates_per_s"] = timing_updates / sorted(times)[1]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def spawn_child(device_counts: list[int], *, quick: bool, tiny: bool, batch_size: int, updates: int,
                timing_updates: int, agents: tuple[str, ...] = (), timeout: float = 900) -> list[dict]:
    """Runs :func:`child` in a fresh process with ``max(device_counts)`` simulated CPU devices."""
    import jax

    env = dict(os.environ)
    if jax.devices()[0].platform == "cpu":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={max(device_counts)}").strip()
        env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "benchmarks.bench_scaling", "--child", "--devices", *map(str, device_counts),
               "--batch-size", str(batch_size), "--updates", str(updates), "--timing-updates", str(timing_updates)]
    command += ["--quick"] if quick else []
    command += ["--tiny"] if tiny else []
    command += ["--agents", *agents] if agents else []
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"scaling child failed:\n{out.stderr[-4000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run(quick: bool, out: str = RESULTS, device_counts=(1, 2, 4)) -> list[dict]:
    """Measures in a child process; JSON lines and ``scaling.md`` in ``out``; suite rows back."""
    from benchmarks import common

    device_counts = list(device_counts)
    rows = spawn_child(device_counts, quick=quick, tiny=False, batch_size=32 if quick else 64,
                       updates=3, timing_updates=10 if quick else 50)
    path = common.results_path(out, "scaling")
    meta = common.meta(child_xla_flags=f"--xla_force_host_platform_device_count={max(device_counts)}")
    suite, table = [], []
    for r in rows:
        common.append_jsonl(path, {**r, **meta})
        base = next(b for b in rows if b["agent"] == r["agent"] and b["devices"] == 1)["updates_per_s"]
        suite.append(common.measurement(
            "scaling", f"{r['agent']} learner, {r['devices']} device(s)", r["updates_per_s"], "updates/s",
            config={"devices": r["devices"], "batch": r["batch_size"], "torso": r["torso"]},
            baseline="same update on 1 device", baseline_value=base,
            max_abs_diff_vs_1_device=r["max_abs_diff_vs_1_device"]))
        table.append([r["agent"], r["torso"], r["batch_size"], r["devices"], f"{r['updates_per_s']:,.1f}",
                      f"{r['updates_per_s'] / base:.2f}", f"{r['max_abs_diff_vs_1_device']:.1e}"])
    text = (f"Measured {common.today()} on `{meta['device']}` ({rows[0]['platform']}, "
            f"{rows[0]['local_devices']} local devices in the child), by "
            f"`python -m benchmarks.bench_scaling{' --quick' if quick else ''}`.\n\n"
            + common.markdown_table(["agent", "torso", "global batch", "devices", "updates/s", "× 1 device",
                                     "max abs Δθ vs 1 device"], table, align="llrrrrr"))
    common.write_text(os.path.join(out, "scaling.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer updates; DQN on the MinAtar network only")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4], help="mesh sizes (first is the baseline)")
    parser.add_argument("--child", action="store_true", help="measure in this process (devices already set up)")
    parser.add_argument("--tiny", action="store_true", help="MLPs on CartPole-sized inputs (tests)")
    parser.add_argument("--agents", nargs="+", default=[], help="only these agents (dqn, rainbow, der)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--updates", type=int, default=3, help="updates compared against the 1-device run")
    parser.add_argument("--timing-updates", type=int, default=0, help="updates per timed repeat; 0 = no timing")
    args = parser.parse_args()
    if args.child:
        child(args.devices, quick=args.quick, tiny=args.tiny, batch_size=args.batch_size, updates=args.updates,
              timing_updates=args.timing_updates, agents=tuple(args.agents))
    else:
        run(args.quick, args.out, args.devices)


if __name__ == "__main__":
    main()
