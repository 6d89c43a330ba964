"""Throughput of the foundation: raw environments, the learner alone, the DQN loops.

Every figure is measured in this run beside its baseline:

* raw environment steps/s with random actions (envpool CartPole-v1 and Pong-v5 in the
  host loop; gymnax Breakout-MinAtar, 256 envs, inside a jitted ``lax.scan``);
* learner updates/s alone (Nature CNN and MinAtar network, batch 32);
* DQN end-to-end environment steps/s (host loop on CartPole-v1 and Pong-v5; the fully
  jitted loop on Breakout-MinAtar) and two ratios:
  - host-loop overhead: time per environment step of the host loop against
    (raw environment time per step + agent time per step, the compiled agent step
    called alone), target ≤ 1.10;
  - jitted loop speed-up: the fully jitted MinAtar DQN loop against the same agent and
    environment step functions driven from a Python loop, target ≥ 10×.

Run:  python -m benchmarks.throughput [--quick]
Writes one JSON line per measurement to benchmarks/results/throughput_<date>_<device>.jsonl
and the markdown table benchmarks/results/throughput.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import environments
from algorithms.dqn import train as dqn
from benchmarks import common
from benchmarks.common import RESULTS, timed  # noqa: F401  (timed re-exported for older callers)
from core.types import Transition


def raw_envpool(env_id: str, steps: int, repeats: int, protocol=None) -> dict:
    env = environments.make(env_id, num_envs=1, seed=0, protocol=protocol)
    env.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.spec.num_actions, size=(steps, 1)).astype(np.int32)

    def run():
        for a in actions:
            env.step(a)

    run()  # warm-up
    t = timed(run, repeats=repeats)
    env.close()
    return {**t, "steps_per_s": steps / t["median_s"], "s_per_step": t["median_s"] / steps}


def raw_minatar(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    env = environments.make_jax(env_id)

    @jax.jit
    def rollout(key):
        state, _ = env.reset(key, num_envs)

        def body(carry, _):
            state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = jax.random.randint(act_key, (num_envs,), 0, env.spec.num_actions)
            state, ts = env.step(step_key, state, actions)
            return (state, key), ts.reward.sum()

        return jax.lax.scan(body, (state, key), None, length=steps)[1].sum()

    start = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.PRNGKey(0)))
    compile_s = time.perf_counter() - start
    t = timed(lambda: jax.block_until_ready(rollout(jax.random.PRNGKey(1))), repeats=repeats)
    return {**t, "compile_s": compile_s, "steps_per_s": steps * num_envs / t["median_s"]}


def learner_alone(cfg: dqn.Config, env_id: str, updates: int, repeats: int) -> dict:
    spec = dqn.env_spec(dataclasses.replace(cfg, env_id=env_id))
    agent = dqn.make_agent(cfg, spec)
    state = agent.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    obs = jax.random.randint(key, (cfg.batch_size, *spec.observation_shape), 0, 255).astype(spec.observation_dtype)
    batch = Transition(observation=obs, action=jnp.zeros(cfg.batch_size, jnp.int32),
                       reward=jnp.ones(cfg.batch_size), discount=jnp.full(cfg.batch_size, 0.99),
                       next_observation=obs, next_action=jnp.zeros(cfg.batch_size, jnp.int32))
    weight = jnp.ones(cfg.batch_size, jnp.float32)
    update = jax.jit(agent.learner_update, donate_argnums=0)
    train_state = jax.block_until_ready(update(state.train, batch, weight, key)[0])

    def run():
        nonlocal train_state
        for _ in range(updates):
            train_state, loss, _ = update(train_state, batch, weight, key)
        jax.block_until_ready(loss)

    t = timed(run, repeats=repeats)
    return {**t, "updates_per_s": updates / t["median_s"], "s_per_update": t["median_s"] / updates,
            "batch_size": cfg.batch_size, "torso": cfg.torso}


def trainer_chunks(cfg: dqn.Config, chunks: int):
    """Runs the DQN trainer past ``learning_starts``, then times ``chunks`` chunks (median s)."""
    trainer = dqn.make_trainer(cfg)
    state = trainer.init(jax.random.PRNGKey(cfg.seed))
    # Fill past learning_starts so every timed chunk includes learning.
    while int(state[0].env_steps) < cfg.learning_starts:
        state = jax.block_until_ready(trainer.run_chunk(state))
    times = []
    for _ in range(chunks):
        start = time.perf_counter()
        state = jax.block_until_ready(trainer.run_chunk(state))
        times.append(time.perf_counter() - start)
    return trainer, state, statistics.median(times)


def host_loop(cfg: dqn.Config, chunks: int) -> dict:
    """End-to-end host loop on envpool, plus its two components measured alone."""
    trainer, state, chunk_s = trainer_chunks(cfg, chunks)
    loop_s_per_step = chunk_s / cfg.log_every
    trainer.close()

    # The agent step alone: the same compiled step fed a fixed time step, no environment.
    spec_env = environments.make(cfg.env_id, num_envs=cfg.num_envs, seed=1,
                                 protocol=cfg.atari_protocol if environments.is_atari(cfg.env_id) else None)
    timestep = spec_env.reset()
    timestep = timestep._replace(step_type=np.ones_like(timestep.step_type))
    spec_env.close()
    agent = dqn.make_agent(cfg, dqn.env_spec(cfg))
    loop = state[0]
    observe = jax.jit(agent.observe, donate_argnums=0)
    learn = jax.jit(agent.learn, donate_argnums=0)
    loop, actions = observe(loop, timestep)
    loop = learn(loop)
    calls = cfg.log_every // cfg.num_envs

    def run_agent():  # the host loop's schedule, without the environment
        nonlocal loop
        for call in range(1, calls + 1):
            loop, actions = observe(loop, timestep)
            np.asarray(actions)
            if call % cfg.calls_per_update == 0:
                loop = learn(loop)
        jax.block_until_ready(loop)

    agent_t = timed(run_agent, repeats=3)
    agent_s_per_step = agent_t["median_s"] / cfg.log_every
    env_t = raw_envpool(cfg.env_id, steps=min(2000, cfg.log_every), repeats=3,
                        protocol=cfg.atari_protocol if environments.is_atari(cfg.env_id) else None)
    env_s_per_step = env_t["s_per_step"] / cfg.num_envs
    return {
        "loop_steps_per_s": 1.0 / loop_s_per_step,
        "loop_s_per_step": loop_s_per_step,
        "env_s_per_step": env_s_per_step,
        "agent_s_per_step": agent_s_per_step,
        "overhead_ratio": loop_s_per_step / (env_s_per_step + agent_s_per_step),
        "chunk_steps": cfg.log_every,
        "chunks": chunks,
        "train_every": cfg.train_every,
        "torso": cfg.torso,
    }


def jax_loop_vs_python(cfg: dqn.Config, chunks: int, python_steps: int) -> dict:
    """The fully jitted MinAtar loop against the same step functions called from Python."""
    _, state, chunk_s = trainer_chunks(cfg, chunks)
    jit_sps = cfg.log_every / chunk_s

    env = environments.make_jax(cfg.env_id)
    agent = dqn.make_agent(cfg, env.spec)
    agent_step = jax.jit(agent.step, donate_argnums=0)
    env_step = jax.jit(env.step)
    loop, (env_state, timestep, key) = state

    def run_python():
        nonlocal loop, env_state, timestep, key
        for _ in range(python_steps):
            loop, actions = agent_step(loop, timestep)
            key, step_key = jax.random.split(key)
            env_state, timestep = env_step(step_key, env_state, actions)
        jax.block_until_ready(timestep)

    python_steps_run = python_steps
    run_python()  # compile + warm-up
    t = timed(run_python, repeats=3)
    python_sps = python_steps_run * cfg.num_envs / t["median_s"]
    return {"jit_steps_per_s": jit_sps, "python_steps_per_s": python_sps, "speedup": jit_sps / python_sps,
            "num_envs": cfg.num_envs, "train_every": cfg.train_every, "chunk_steps": cfg.log_every}


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement of this module; JSON lines and ``throughput.md`` in ``out``; suite rows back."""
    reps = 2 if quick else 5
    path = common.results_path(out, "throughput")
    meta = common.meta()
    rows = []

    def record(name, shapes, result):
        line = {"benchmark": name, "shapes": shapes, **result, **meta}
        rows.append(line)
        common.append_jsonl(path, line)
        print(name, shapes, common.rounded(result), flush=True)

    record("raw_env/CartPole-v1", {"num_envs": 1}, raw_envpool("CartPole-v1", 5_000 if quick else 20_000, reps))
    record("raw_env/Pong-v5", {"num_envs": 1, "protocol": "atari200m"},
           raw_envpool("Pong-v5", 500 if quick else 3_000, reps, protocol="atari200m"))
    record("raw_env/Breakout-MinAtar", {"num_envs": 256, "scan": 1000},
           raw_minatar("Breakout-MinAtar", 256, 200 if quick else 1000, reps))

    paper = dqn.PRESETS["paper"][1]
    cpu = dqn.PRESETS["cpu"][1]
    record("learner/nature_cnn", {"batch": 32, "obs": [4, 84, 84]},
           learner_alone(paper, "Pong-v5", 5 if quick else 30, reps))
    record("learner/minatar_cnn", {"batch": 32, "obs": [10, 10, 4]},
           learner_alone(cpu, "Breakout-MinAtar", 100 if quick else 500, reps))

    cartpole = dataclasses.replace(dqn.PRESETS["cartpole"][1], learning_starts=1_000, log_every=2_000,
                                   progress=False)
    record("dqn_host_loop/CartPole-v1", {"num_envs": 1, "batch": cartpole.batch_size},
           host_loop(cartpole, chunks=reps))
    if not quick:  # the Nature-CNN loop: ~1 min of updates
        pong = dataclasses.replace(paper, buffer_size=20_000, learning_starts=400, log_every=400,
                                   checkpoint_every=1_000_000, progress=False)
        record("dqn_host_loop/Pong-v5", {"num_envs": 1, "batch": 32, "train_every": 4}, host_loop(pong, chunks=3))
    minatar = dataclasses.replace(cpu, learning_starts=1_000, log_every=2_000, buffer_size=20_000, train_every=1,
                                  progress=False)
    record("dqn_jit_loop_vs_python/Breakout-MinAtar", {"num_envs": 1, "batch": 32, "train_every": 1},
           jax_loop_vs_python(minatar, chunks=reps, python_steps=300 if quick else 1_000))
    minatar_vec = dataclasses.replace(minatar, num_envs=16, train_every=16, log_every=16_000)
    if not quick:
        record("dqn_jit_loop_vs_python/Breakout-MinAtar", {"num_envs": 16, "batch": 32, "train_every": 16},
               jax_loop_vs_python(minatar_vec, chunks=reps, python_steps=500))
    write_table(rows, os.path.join(out, "throughput.md"), quick=quick)
    print(f"results: {path}")
    return [suite_row(r) for r in rows]


def suite_row(r: dict) -> dict:
    """One of this module's results as a :func:`benchmarks.common.measurement`."""
    name, shapes = r["benchmark"], r["shapes"]
    if name.startswith("raw_env"):
        return common.measurement("raw_env", name.split("/", 1)[1] + " (throughput.py)", r["steps_per_s"], "steps/s",
                                  config=shapes)
    if name.startswith("learner"):
        return common.measurement("learner", name, r["updates_per_s"], "updates/s", config=shapes)
    if name.startswith("dqn_host_loop"):
        base = r["env_s_per_step"] + r["agent_s_per_step"]
        return common.measurement("loop_overhead", name, r["loop_steps_per_s"], "steps/s", config=shapes,
                                  baseline="raw env + agent step alone", baseline_value=1.0 / base)
    return common.measurement("loop_overhead", name + " (jitted scan)", r["jit_steps_per_s"], "steps/s", config=shapes,
                              baseline="same agent, Python-driven loop", baseline_value=r["python_steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (CPU smoke run)")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


def write_table(rows: list[dict], out_path: str, *, quick: bool = False) -> None:
    device = rows[0]["device"]
    lines = [f"Measured {rows[0]['date']} on `{device}` (jax {rows[0]['versions']['jax']}), "
             f"by `python -m benchmarks.throughput{' --quick' if quick else ''}`.", "",
             "| benchmark | shapes | result | baseline (same run) | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        shapes = ", ".join(f"{k}={v}" for k, v in r["shapes"].items())
        name = r["benchmark"]
        if name.startswith("raw_env"):
            lines.append(f"| {name} | {shapes} | {r['steps_per_s']:,.0f} steps/s | — | — |")
        elif name.startswith("learner"):
            lines.append(f"| {name} | {shapes} | {r['updates_per_s']:,.1f} updates/s ({1e3 * r['s_per_update']:.1f} ms) | — | — |")
        elif name.startswith("dqn_host_loop"):
            base = r["env_s_per_step"] + r["agent_s_per_step"]
            lines.append(
                f"| {name} | {shapes} | {r['loop_steps_per_s']:,.0f} steps/s ({1e6 * r['loop_s_per_step']:.0f} µs/step) "
                f"| env {1e6 * r['env_s_per_step']:.0f} + agent {1e6 * r['agent_s_per_step']:.0f} = {1e6 * base:.0f} µs/step "
                f"| {r['overhead_ratio']:.3f} (target ≤ 1.10) |")
        else:
            lines.append(f"| {name} | {shapes} | jitted loop {r['jit_steps_per_s']:,.0f} steps/s "
                         f"| Python-driven loop {r['python_steps_per_s']:,.0f} steps/s | {r['speedup']:.1f}× (target ≥ 10×) |")
    common.write_text(out_path, "\n".join(lines))


if __name__ == "__main__":
    main()
