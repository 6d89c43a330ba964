"""Collect an offline dataset of transitions with a random or ε-greedy DQN behaviour policy.

Paper: Farebrother et al. 2023, "Proto-Value Networks", ICLR, arXiv 2304.12567, pretrain on
the DQN Replay Dataset (Agarwal et al. 2020), which cannot be downloaded here; this
script makes the same kind of dataset: time steps of ``num_envs`` parallel streams written
in the chunked, checksummed, memory-mapped format of :mod:`core.transition_dataset`.

Run:
    python -m algorithms.pvn.dataset cpu --env-id Breakout-MinAtar --behaviour mixed \
        --dqn-dir runs/dqn_minatar --out-dir runs/pvn_data/breakout
Expected on one CPU core: a 100k-transition MinAtar dataset in well under a minute (the
environments and the policy step inside one jitted scan; gymnax MinAtar).

Behaviour policies (``--behaviour``): ``random`` (uniform actions), ``dqn`` (ε-greedy in
the Q-values of the latest checkpoint of an :mod:`algorithms.dqn.train` run,
``--dqn-dir``), ``mixed`` (the first half of the streams random, the second half DQN).
JAX environments (gymnax MinAtar) run in a jitted scan; envpool environments in a host
loop (Atari frames are stored once, newest frame only, and restacked by the reader).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

import environments
from core import cli, metrics
from core import transition_dataset as td
from core.checkpoint import Checkpointer
from core.types import StepType

BEHAVIOURS = ("random", "dqn", "mixed")


@dataclasses.dataclass(frozen=True)
class Config:
    """Dataset collection (every field is a CLI flag)."""

    env_id: str = "Breakout-MinAtar"
    """Environment: a JAX id (Breakout-MinAtar, ...; jitted collection) or an envpool id (host loop)."""
    total_steps: int = 100_000
    """Time steps to record (summed over the parallel streams); transitions ≈ this minus episode ends."""
    seed: int = 0
    """Seed of the environments and the behaviour policy's randomness."""
    out_dir: str = "runs/pvn_data"
    """The dataset directory (manifest.json, chunk files, config.json, summary.json); must not hold a dataset."""
    num_envs: int = 16
    """Parallel environment streams."""
    behaviour: str = "random"
    """Behaviour policy: "random", "dqn" (ε-greedy DQN checkpoint) or "mixed" (half the streams each)."""
    dqn_dir: str = ""
    """Out dir of an algorithms.dqn.train run whose latest checkpoint gives the DQN policy (dqn/mixed)."""
    epsilon: float = 0.1
    """ε of the ε-greedy DQN behaviour policy."""
    chunk_rows: int = 1024
    """Time rows per chunk file (each row holds num_envs time steps)."""
    atari_protocol: str = "atari200m"
    """Atari protocol of envpool Atari ids (environments/atari.py)."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self) -> None:
        req = cli.require
        environments.check_env_id(self.env_id)
        req(self.total_steps > 0, "total_steps", f"must be positive, got {self.total_steps}")
        req(self.num_envs > 0, "num_envs", f"must be positive, got {self.num_envs}")
        req(self.total_steps % self.num_envs == 0, "total_steps", f"must be a multiple of num_envs={self.num_envs}")
        req(self.behaviour in BEHAVIOURS, "behaviour", f"unknown {self.behaviour!r}; choose one of {BEHAVIOURS}")
        req(self.behaviour != "mixed" or self.num_envs >= 2, "num_envs", "mixed behaviour needs at least 2 streams")
        req(0.0 <= self.epsilon <= 1.0, "epsilon", f"must lie in [0, 1], got {self.epsilon}")
        req(self.chunk_rows > 0, "chunk_rows", "must be positive")
        if self.behaviour != "random":
            req(bool(self.dqn_dir) and os.path.exists(os.path.join(self.dqn_dir, "config.json")), "dqn_dir",
                f"{self.dqn_dir!r} is not a DQN run directory (no config.json); train one with "
                "`python -m algorithms.dqn.train cpu --env-id ...`")
        req(not os.path.exists(os.path.join(self.out_dir, td.MANIFEST)), "out_dir",
            f"{self.out_dir} already holds a dataset; choose a new --out-dir")


PRESETS = {
    "smoke": ("Breakout-MinAtar, 2,048 random-policy steps in 4 streams: seconds, used by the tests.",
              Config(total_steps=2_048, num_envs=4, chunk_rows=128, out_dir="runs/pvn_data_smoke")),
    "cpu": ("MinAtar, 100k steps in 16 streams (use --behaviour mixed --dqn-dir for the study's datasets).",
            Config()),
    "paper": ("Atari (envpool, atari200m): 1M steps of an ε-greedy DQN checkpoint, like one DQN Replay Dataset "
              "checkpoint slice (the paper pretrains on the DQN Replay Dataset itself).",
              Config(env_id="Pong-v5", total_steps=1_000_000, num_envs=8, behaviour="dqn", epsilon=0.01,
                     chunk_rows=4096, out_dir="runs/pvn_data_atari")),
}


# --------------------------------------------------------------------------- the DQN behaviour policy


def load_dqn_policy(dqn_dir: str):
    """``(act(params, observation, key, epsilon) -> actions, params, dqn Config)`` of a DQN run's latest checkpoint."""
    from algorithms.dqn import agent as dqn_agent
    from algorithms.dqn import loop

    with open(os.path.join(dqn_dir, "config.json")) as f:
        saved = json.load(f)
    fields = {f.name: f for f in dataclasses.fields(dqn_agent.Config)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in fields}
    cfg = dataclasses.replace(dqn_agent.Config(**kwargs), progress=False)
    checkpointer = Checkpointer(os.path.join(dqn_dir, "checkpoints"))
    step = checkpointer.latest_step()
    if step is None:
        raise cli.ConfigError(f"--dqn-dir: {dqn_dir} holds no checkpoint to take the DQN policy from")
    trainer = loop.make_trainer(cfg)
    state = trainer.init(jax.random.PRNGKey(cfg.seed))
    saved_state = checkpointer.restore(step, {"state": state, "last_eval": np.zeros(2, np.float64)})["state"]
    checkpointer.close()
    trainer.close()
    return trainer.agent.act_greedy, saved_state[0].train.params, cfg


# --------------------------------------------------------------------------- collection


def _stored_observation(obs, frame_stack: int):
    """MinAtar's 0/1 float32 planes as uint8; Atari's stacked uint8 frames as the newest frame only."""
    if frame_stack > 1:
        return obs[:, -1:]
    return obs.astype(jnp.uint8) if obs.dtype != jnp.uint8 else obs


def make_behaviour(cfg: Config, num_actions: int):
    """``policy(key, observation [B, *O]) -> actions [B]`` and a description for the metadata."""
    dqn_streams = np.zeros(cfg.num_envs, bool)
    if cfg.behaviour == "dqn":
        dqn_streams[:] = True
    elif cfg.behaviour == "mixed":
        dqn_streams[cfg.num_envs // 2:] = True
    act, params, dqn_cfg = (None, None, None) if cfg.behaviour == "random" else load_dqn_policy(cfg.dqn_dir)
    if dqn_cfg is not None and dqn_cfg.env_id != cfg.env_id:
        raise cli.ConfigError(f"--dqn-dir: the DQN run played {dqn_cfg.env_id}, not --env-id {cfg.env_id}")
    mask = jnp.asarray(dqn_streams)

    def policy(key, observation):
        k_rand, k_dqn = jax.random.split(key)
        actions = jax.random.randint(k_rand, (cfg.num_envs,), 0, num_actions)
        if act is not None:
            actions = jnp.where(mask, act(params, observation, k_dqn, cfg.epsilon), actions)
        return actions.astype(jnp.int32)

    return policy, dqn_streams


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Collects ``total_steps`` time steps and writes the dataset, config.json and summary.json."""
    cfg.validate()
    start = time.perf_counter()
    jax_env = environments.is_jax_env(cfg.env_id)
    env = environments.make_jax(cfg.env_id) if jax_env else environments.make(
        cfg.env_id, num_envs=cfg.num_envs, seed=cfg.seed,
        protocol=cfg.atari_protocol if environments.is_atari(cfg.env_id) else None)
    spec = env.spec
    frame_stack = spec.observation_shape[0] if (not jax_env and len(spec.observation_shape) == 3) else 1
    policy, dqn_streams = make_behaviour(cfg, spec.num_actions)
    os.makedirs(cfg.out_dir, exist_ok=True)
    cli.write_json(os.path.join(cfg.out_dir, "config.json"), cli.config_dict(cfg))
    stored_shape = ((1, *spec.observation_shape[1:]) if frame_stack > 1 else spec.observation_shape)
    metadata = {"env_id": cfg.env_id, "num_actions": spec.num_actions, "behaviour": cfg.behaviour,
                "epsilon": cfg.epsilon, "dqn_dir": cfg.dqn_dir or None, "dqn_streams": dqn_streams.tolist(),
                "seed": cfg.seed, "frame_stack": frame_stack,
                "observation_cast": "float32" if jax_env else None, "paper": "arXiv 2304.12567"}
    writer = td.DatasetWriter(cfg.out_dir, num_streams=cfg.num_envs, observation_shape=stored_shape,
                              observation_dtype=np.uint8, chunk_rows=cfg.chunk_rows, metadata=metadata)
    rows_total = cfg.total_steps // cfg.num_envs
    key = jax.random.PRNGKey(cfg.seed)
    returns = {True: [], False: []}
    running = np.zeros(cfg.num_envs)
    bar = metrics.progress_bar(cfg.total_steps, desc=f"dataset {cfg.env_id}", disable=not cfg.progress)

    def record(rows):
        nonlocal running
        step_type, reward = np.asarray(rows["step_type"]), np.asarray(rows["reward"])
        for t in range(step_type.shape[0]):
            running = np.where(step_type[t] == StepType.FIRST, 0.0, running + reward[t])
            for b in np.flatnonzero(step_type[t] == StepType.LAST):
                returns[bool(dqn_streams[b])].append(float(running[b]))
        writer.append(**{k: np.asarray(v) for k, v in rows.items()})
        bar.update(step_type.size)

    if jax_env:
        reset_key, key = jax.random.split(key)
        env_state, timestep = env.reset(reset_key, cfg.num_envs)

        def body(carry, _):
            env_state, timestep, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            actions = policy(k_act, timestep.observation)
            row = dict(step_type=timestep.step_type, reward=timestep.reward, discount=timestep.discount,
                       observation=_stored_observation(timestep.observation, 1), action=actions)
            env_state, timestep = env.step(k_env, env_state, actions)
            return (env_state, timestep, key), row

        carry, done = (env_state, timestep, key), 0
        chunk = jax.jit(lambda c, n: jax.lax.scan(body, c, None, length=n), static_argnums=1)
        while done < rows_total:
            n = min(cfg.chunk_rows, rows_total - done)
            carry, rows = chunk(carry, n)
            record(rows)
            done += n
    else:
        act = jax.jit(policy)
        timestep = env.reset()
        buffer = []
        for t in range(rows_total):
            key, k_act = jax.random.split(key)
            actions = np.asarray(act(k_act, timestep.observation))
            buffer.append(dict(step_type=timestep.step_type, reward=timestep.reward, discount=timestep.discount,
                               observation=np.asarray(_stored_observation(np.asarray(timestep.observation),
                                                                          frame_stack)), action=actions))
            timestep = env.step(actions)
            if len(buffer) == cfg.chunk_rows or t == rows_total - 1:
                record({k: np.stack([b[k] for b in buffer]) for k in buffer[0]})
                buffer = []
        env.close()
    bar.close()
    writer.close()
    dataset = td.TransitionDataset(cfg.out_dir)
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    out = cli.summary(algorithm="pvn_dataset", preset=preset, cfg=cfg, headline_name="transitions",
                      headline_value=dataset.num_transitions, env_steps=cfg.total_steps,
                      wall_s=time.perf_counter() - start, compile_s=None, sps_steady=None,
                      extra={"episode_return_random": mean(returns[False]), "episode_return_dqn": mean(returns[True]),
                             "episodes_random": len(returns[False]), "episodes_dqn": len(returns[True])})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(dataset.describe())
    print(f"episode returns: random {out['episode_return_random']}, DQN {out['episode_return_dqn']}")
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.pvn.dataset")
