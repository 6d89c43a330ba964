"""Training loops of the value-based agents (:mod:`algorithms.dqn.agent`) and their ``main``.

Environments from envpool run in a host loop: one compiled agent step per environment
step, and the learner called as its own compiled program on the schedule of
``agent.step`` (a Nature-CNN update inside ``lax.cond`` is several times slower on
XLA:CPU). Environments written in JAX (gymnax MinAtar) run the whole loop inside ``jit``
as a ``lax.scan`` over chunks of ``log_every`` steps. Both share the same agent step.

``main(cfg, preset=..., algorithm=...)`` keeps the CLI contract (WORKSPACE.md): config.json,
metrics.jsonl/csv, a learning-curve figure, orbax checkpoints it resumes from, summary.json.
"""
from __future__ import annotations

import os
import time
import zlib
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import environments
from core import cli, metrics, schedules
from core.aot import Compiler
from core.checkpoint import Checkpointer
from core.types import EnvSpec, StepType

from algorithms.dqn.agent import Agent, Config, make_agent


# --------------------------------------------------------------------------- evaluation


def _derived_seed(seed: int, label: str, index: int) -> int:
    return zlib.crc32(f"{seed}/{label}/{index}".encode()) & 0x7FFFFFFF


def evaluate_host(cfg: Config, act_greedy: Callable, params, index: int) -> np.ndarray:
    """Greedy returns of ``eval_episodes`` episodes, one per parallel envpool environment."""
    atari = environments.is_atari(cfg.env_id)
    env = environments.make(cfg.env_id, num_envs=cfg.eval_episodes, seed=_derived_seed(cfg.seed, "eval", index),
                            protocol=cfg.atari_protocol if atari else None, evaluation=atari)
    key = jax.random.PRNGKey(_derived_seed(cfg.seed, "eval_key", index))
    returns = np.zeros(cfg.eval_episodes, np.float64)
    finished = np.zeros(cfg.eval_episodes, bool)
    timestep = env.reset()
    for _ in range(cfg.eval_max_steps + 1):
        key, act_key = jax.random.split(key)
        actions = np.asarray(act_greedy(params, timestep.observation, act_key, cfg.eval_epsilon))
        timestep = env.step(actions)
        returns += np.where(finished, 0.0, timestep.reward)
        finished |= np.asarray(timestep.step_type) == StepType.LAST
        if finished.all():
            break
    env.close()
    return returns


def make_evaluate_jax(cfg: Config, env, act_greedy: Callable) -> Callable:
    """``(params, key) -> returns [eval_episodes]`` for a JAX environment, all inside jit."""

    def evaluate(params, key):
        reset_key, key = jax.random.split(key)
        env_state, timestep = env.reset(reset_key, cfg.eval_episodes)

        def cond(carry):
            _, _, _, finished, t, _ = carry
            return (~jnp.all(finished)) & (t < cfg.eval_max_steps)

        def body(carry):
            env_state, timestep, returns, finished, t, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            actions = act_greedy(params, timestep.observation, act_key, cfg.eval_epsilon)
            env_state, timestep = env.step(step_key, env_state, actions)
            returns = returns + jnp.where(finished, 0.0, timestep.reward)
            finished = finished | timestep.last()
            return env_state, timestep, returns, finished, t + 1, key

        carry = (env_state, timestep, jnp.zeros(cfg.eval_episodes), jnp.zeros(cfg.eval_episodes, bool), 0, key)
        return jax.lax.while_loop(cond, body, carry)[2]

    return evaluate


# --------------------------------------------------------------------------- trainer


class Trainer(NamedTuple):
    """A configured run: ``init(key)`` → state, ``run_chunk(state)`` advances ``log_every`` steps."""

    init: Callable
    run_chunk: Callable  # (state) -> state, where state = (LoopState, env carry)
    end_segment: Callable  # (state) -> state, called before each checkpoint
    evaluate: Callable  # (state, index) -> returns
    compile_s: Callable  # () -> seconds spent compiling so far
    close: Callable
    agent: Agent


def env_spec(cfg: Config) -> EnvSpec:
    """The training environment's spec (an envpool env is opened and closed to read it)."""
    if environments.is_jax_env(cfg.env_id):
        return environments.make_jax(cfg.env_id).spec
    protocol = cfg.atari_protocol if environments.is_atari(cfg.env_id) else None
    with environments.make(cfg.env_id, num_envs=1, seed=0, protocol=protocol) as env:
        return env.spec


AgentFactory = Callable[[Config, EnvSpec], Agent]
"""``(cfg, spec) -> Agent``: :func:`algorithms.dqn.agent.make_agent`, or a paper's extension of it."""


def make_trainer(cfg: Config, agent_fn: AgentFactory = make_agent) -> Trainer:
    """Wires the agent to its environment (JAX loop for JAX envs, host loop for envpool)."""
    if environments.is_jax_env(cfg.env_id):
        return _make_jax_trainer(cfg, agent_fn)
    return _make_host_trainer(cfg, agent_fn)


def _make_jax_trainer(cfg: Config, agent_fn: AgentFactory) -> Trainer:
    env = environments.make_jax(cfg.env_id)
    agent = agent_fn(cfg, env.spec)
    compiler = Compiler()
    steps_per_chunk = cfg.log_every // cfg.num_envs

    def init(key):
        agent_key, env_key = jax.random.split(key)
        env_state, timestep = env.reset(env_key, cfg.num_envs)
        return agent.init(agent_key), (env_state, timestep, jax.random.fold_in(env_key, 1))

    def chunk(state):
        loop, (env_state, timestep, env_key) = state

        def body(carry, _):
            loop, env_state, timestep, env_key = carry
            loop, actions = agent.step(loop, timestep)
            env_key, step_key = jax.random.split(env_key)
            env_state, timestep = env.step(step_key, env_state, actions)
            return (loop, env_state, timestep, env_key), None

        (loop, env_state, timestep, env_key), _ = jax.lax.scan(
            body, (loop, env_state, timestep, env_key), None, length=steps_per_chunk)
        return loop, (env_state, timestep, env_key)

    run_chunk = compiler(chunk, donate_argnums=0)

    evaluate_fn = jax.jit(make_evaluate_jax(cfg, env, agent.act_greedy))

    def evaluate(state, index):
        key = jax.random.PRNGKey(_derived_seed(cfg.seed, "eval", index))
        return np.asarray(evaluate_fn(state[0].train.params, key))

    return Trainer(init=init, run_chunk=run_chunk, end_segment=lambda state: state, evaluate=evaluate,
                   compile_s=lambda: compiler.seconds, close=lambda: None, agent=agent)


def _make_host_trainer(cfg: Config, agent_fn: AgentFactory) -> Trainer:
    protocol = cfg.atari_protocol if environments.is_atari(cfg.env_id) else None
    env_holder = {}

    def open_env(segment: int):
        if "env" in env_holder:
            env_holder["env"].close()
        env_holder["env"] = environments.make(
            cfg.env_id, num_envs=cfg.num_envs, seed=_derived_seed(cfg.seed, "train", segment), protocol=protocol)
        return env_holder["env"]

    agent = agent_fn(cfg, env_spec(cfg))
    compiler = Compiler()
    observe = compiler(agent.observe, donate_argnums=0)
    learn = compiler(agent.learn, donate_argnums=0)
    should_learn = jax.jit(agent.should_learn)
    pending = {}  # the time step received but not yet acted upon, and its segment

    def init(key):
        return agent.init(key), None

    def run_chunk(state):
        loop, _ = state
        if "timestep" not in pending:
            # Each checkpoint segment runs in freshly seeded environments, so that a run
            # resumed from a checkpoint sees exactly the environments of an uninterrupted one.
            pending["timestep"] = open_env(int(loop.env_steps) // cfg.checkpoint_every).reset()
        env = env_holder["env"]
        timestep = pending["timestep"]
        # The same schedule as `agent.step`, decided on the host so that the learner runs as
        # its own compiled program (a Nature-CNN update inside `lax.cond` is ~7x slower on CPU).
        calls, can_learn = int(loop.calls), bool(pending.get("can_learn", False))
        for _ in range(cfg.log_every // cfg.num_envs):
            loop, actions = observe(loop, timestep)
            timestep = env.step(np.asarray(actions))
            calls += 1
            if calls * cfg.num_envs >= cfg.learning_starts and calls % cfg.calls_per_update == 0:
                can_learn = can_learn or bool(should_learn(loop))
                if can_learn:
                    loop = learn(loop)
        pending["can_learn"] = can_learn
        pending["timestep"] = timestep
        return loop, None

    truncate = jax.jit(agent.truncate)

    def end_segment(state):
        """Ends the running episodes as truncations; the next chunk opens fresh environments."""
        loop, env_carry = state
        if "timestep" in pending:
            loop = truncate(loop, pending.pop("timestep"))
        return loop, env_carry

    act = jax.jit(agent.act_greedy)

    def evaluate(state, index):
        return evaluate_host(cfg, act, state[0].train.params, index)

    def close():
        if "env" in env_holder:
            env_holder["env"].close()

    return Trainer(init=init, run_chunk=run_chunk, end_segment=end_segment, evaluate=evaluate,
                   compile_s=lambda: compiler.seconds, close=close, agent=agent)


# --------------------------------------------------------------------------- main


METRIC_COLUMNS = ("env_steps", "grad_steps", "episodes", "train_return", "loss", "epsilon",
                  "eval_return", "eval_return_std", "sps", "wall_s")


def main(cfg: Config, *, preset: str = "custom", algorithm: str = "dqn", title: str = "DQN",
         agent_fn: AgentFactory = make_agent) -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract.

    ``agent_fn`` builds the agent (a paper's extension of :func:`make_agent`); when the
    agent has ``diagnostics``, they are computed at every log step and written as extra
    metric columns.
    """
    cfg.validate()
    start_wall = time.perf_counter()
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    resuming = checkpointer.latest_step() is not None
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=resuming)
    trainer = make_trainer(cfg, agent_fn)

    state = trainer.init(jax.random.PRNGKey(cfg.seed))
    diagnostics = jax.jit(trainer.agent.diagnostics) if trainer.agent.diagnostics else None
    extra_columns = tuple(jax.eval_shape(diagnostics, state[0])) if diagnostics else ()
    writer = metrics.MetricsWriter(cfg.out_dir, METRIC_COLUMNS[:-2] + extra_columns + METRIC_COLUMNS[-2:])
    last_eval = np.full(2, np.nan)  # mean and std of the latest evaluation
    if resuming:
        step = checkpointer.latest_step()
        saved = checkpointer.restore(step, {"state": state, "last_eval": np.zeros(2, np.float64)})
        state, last_eval = saved["state"], saved["last_eval"]
        writer.truncate(step)
        print(f"resuming {cfg.out_dir} from its checkpoint at {step} environment steps")
    else:
        writer.reset()
    env_steps = int(state[0].env_steps)
    bar = metrics.progress_bar(cfg.total_steps, initial=env_steps, desc=f"{algorithm} {cfg.env_id}",
                               disable=not cfg.progress)
    steady_time, steady_steps = 0.0, 0
    try:
        while env_steps < cfg.total_steps:
            chunk_start = time.perf_counter()
            compile_before = trainer.compile_s()
            state = trainer.run_chunk(state)
            loop = jax.block_until_ready(state[0])
            chunk_s = time.perf_counter() - chunk_start - (trainer.compile_s() - compile_before)
            env_steps = int(loop.env_steps)
            if trainer.compile_s() == compile_before:
                steady_time, steady_steps = steady_time + chunk_s, steady_steps + cfg.log_every
            record = {
                "env_steps": env_steps,
                "grad_steps": int(loop.train.step),
                "episodes": int(loop.returns_count),
                "train_return": float(loop.returns_sum / loop.returns_count) if int(loop.returns_count) else None,
                "loss": float(loop.loss_sum / loop.loss_count) if int(loop.loss_count) else None,
                "epsilon": float(schedules.linear_schedule(env_steps, start=cfg.eps_start, end=cfg.eps_end,
                                                           duration=cfg.eps_decay_steps, begin=cfg.learning_starts)),
            }
            if diagnostics is not None:
                record.update({name: float(value) for name, value in diagnostics(loop).items()})
            if env_steps % cfg.eval_every == 0 or env_steps >= cfg.total_steps:
                returns = trainer.evaluate(state, env_steps // cfg.log_every)
                last_eval = np.array([returns.mean(), returns.std()])
                record.update(eval_return=float(last_eval[0]), eval_return_std=float(last_eval[1]))
            record.update(sps=round(cfg.log_every / max(chunk_s, 1e-9), 1),
                          wall_s=round(time.perf_counter() - start_wall, 2))
            writer.write(record)
            state = (loop._replace(returns_sum=jnp.zeros((), jnp.float32), returns_count=jnp.zeros((), jnp.int32),
                                   loss_sum=jnp.zeros((), jnp.float32), loss_count=jnp.zeros((), jnp.int32)),
                     state[1])
            bar.update(cfg.log_every)
            bar.set_postfix(ret=record["train_return"], eval=round(float(last_eval[0]), 1))
            if env_steps % cfg.checkpoint_every == 0 or env_steps >= cfg.total_steps:
                state = trainer.end_segment(state)
                checkpointer.save(env_steps, {"state": state, "last_eval": last_eval})
    finally:
        bar.close()
        trainer.close()
        checkpointer.close()

    figure = metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"),
                                         title=f"{title} on {cfg.env_id} (seed {cfg.seed})")
    final = None if np.isnan(last_eval[0]) else float(last_eval[0])
    out = cli.summary(
        algorithm=algorithm, preset=preset, cfg=cfg, headline_name="eval_return", headline_value=final,
        env_steps=env_steps, wall_s=time.perf_counter() - start_wall, compile_s=trainer.compile_s(),
        sps_steady=steady_steps / steady_time if steady_time else None,
        extra={"eval_episodes": cfg.eval_episodes},
    )
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(f"final evaluation return {final} over {cfg.eval_episodes} episodes after {env_steps} steps")
    print(f"metrics: {writer.jsonl_path}  plot: {figure}  checkpoints: {checkpointer.directory}")
    return out
