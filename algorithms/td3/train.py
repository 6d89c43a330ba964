"""TD3 online on envpool MuJoCo: the agent that makes the D4RL-style medium and medium-replay datasets.

Paper: Fujimoto, van Hoof & Meger 2018, "Addressing Function Approximation Error in
Actor-Critic Methods", ICML, arXiv 1802.09477 (clipped double-Q, delayed policy updates,
target policy smoothing). Environment steps are taken one at a time from Python (envpool,
one environment); every ``train_every`` steps the same number of gradient steps run in one
jitted ``lax.scan`` (replay ratio 1, as TD3's own code trains once per step).

Run:
    python -m algorithms.td3.train cpu --env-id HalfCheetah-v4 --total-steps 300000
Measured on one pinned core of this 2-core CPU, the other core busy (jax 0.10.2), env steps/s
once learning: ~770 with (64, 64) networks and batch 128, ~290 with (128, 128) and batch 256
(the ``cpu`` preset; HalfCheetah-v4 reached return 4,105 after 110k steps, 6.7 min), ~100 with
(256, 256) and batch 256 (``paper``).

The out dir receives, besides the CLI contract's files, ``policy.npz`` (the final actor,
loadable by :class:`environments.d4rl_style.MLPPolicy` → the ``medium`` dataset) and
``replay.hdf5`` (every transition seen: the ``medium-replay`` dataset, D4RL layout with
``next_actions``).

Presets: ``smoke`` (tests), ``cpu`` (128-128 networks, the data-collection agent of
``algorithms/offline_qreg``), ``paper`` (TD3's own: 256-256, 1M steps, 25k random steps).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from core import checkpoint, cli, metrics
from environments import d4rl_style
from environments.envpool_env import make
from environments.registry import check_env_id

from algorithms.td3 import learner as td3_learner
from algorithms.td3 import networks


@dataclasses.dataclass(frozen=True)
class Config:
    """Online TD3 (every field is a CLI flag)."""

    env_id: str = "Hopper-v4"
    """envpool MuJoCo id with actions in [-1, 1] (Hopper-v4, HalfCheetah-v4, Walker2d-v4, ...)."""
    seed: int = 0
    """Seed of the networks, the exploration noise and the environments."""
    total_steps: int = 1_000_000
    """Environment steps."""
    out_dir: str = "runs/td3"
    """Where the run's files go; an out dir with checkpoints resumes that run."""
    hidden: Tuple[int, ...] = (256, 256)
    """Hidden units of the actor and of each critic."""
    batch_size: int = 256
    """Transitions per gradient step."""
    start_steps: int = 25_000
    """Uniform random actions for the first steps; gradient steps start after them."""
    train_every: int = 50
    """Environment steps between learner calls; each call takes as many gradient steps (one lax.scan)."""
    learning_rate: float = 3e-4
    """Adam step size of actor and critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """σ of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""
    policy_delay: int = 2
    """Critic steps per actor (and target) step."""
    expl_noise: float = 0.1
    """σ of the Gaussian exploration noise added to the actor's action."""
    eval_every: int = 10_000
    """Environment steps between deterministic evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation (one envpool environment each, run at once)."""
    checkpoint_every: int = 50_000
    """Environment steps between checkpoints (each a fresh environment segment)."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self) -> None:
        req = cli.require
        check_env_id(self.env_id)
        with make(self.env_id) as env:
            req(env.action_bounds is not None, "env_id", f"{self.env_id!r} has discrete actions; TD3 needs continuous")
            low, high = env.action_bounds
            req(bool(np.all(low == -1) and np.all(high == 1)), "env_id", "actions must lie in [-1, 1]")
        req(self.total_steps >= 1, "total_steps", f"must be >= 1, got {self.total_steps}")
        req(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden", f"positive sizes, got {self.hidden}")
        req(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        req(0 <= self.start_steps, "start_steps", f"must be >= 0, got {self.start_steps}")
        req(self.train_every >= 1, "train_every", f"must be >= 1, got {self.train_every}")
        req(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        req(0 <= self.gamma < 1, "gamma", f"must lie in [0, 1), got {self.gamma}")
        req(0 < self.tau <= 1, "tau", f"must lie in (0, 1], got {self.tau}")
        req(self.policy_noise >= 0 and self.noise_clip >= 0, "policy_noise", "noise and clip must be >= 0")
        req(self.policy_delay >= 1, "policy_delay", f"must be >= 1, got {self.policy_delay}")
        req(self.expl_noise >= 0, "expl_noise", f"must be >= 0, got {self.expl_noise}")
        for name in ("eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints"):
            req(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        req(self.checkpoint_every % self.train_every == 0, "checkpoint_every",
            f"must be a multiple of --train-every ({self.train_every})")
        req(self.eval_every % self.train_every == 0, "eval_every", f"must be a multiple of --train-every ({self.train_every})")


PRESETS = {
    "smoke": ("Hopper-v4, 2k steps, tiny networks: used by the tests.",
              Config(total_steps=2_000, hidden=(32, 32), batch_size=64, start_steps=500, eval_every=1_000,
                     eval_episodes=2, checkpoint_every=1_000, keep_checkpoints=3, out_dir="runs/td3_smoke")),
    "cpu": ("(128, 128) networks, batch 256, 10k random steps, a checkpoint every 10k steps (30 kept, so the "
            "'medium' policy can be exported from any of them): the data-collection agent on one CPU core.",
            Config(total_steps=300_000, hidden=(128, 128), batch_size=256, start_steps=10_000, eval_every=5_000,
                   eval_episodes=10, checkpoint_every=10_000, keep_checkpoints=30, out_dir="runs/td3_cpu")),
    "paper": ("TD3's own hyperparameters (arXiv 1802.09477): 256-256, batch 256, 25k random steps, 1M steps.",
              Config(out_dir="runs/td3_paper")),
}


def empty_rows(capacity: int, obs_dim: int, act_dim: int) -> dict:
    """Preallocated D4RL-style rows (the replay buffer and the medium-replay dataset at once)."""
    return {"observations": np.zeros((capacity, obs_dim), np.float32),
            "actions": np.zeros((capacity, act_dim), np.float32),
            "rewards": np.zeros((capacity,), np.float32),
            "next_observations": np.zeros((capacity, obs_dim), np.float32),
            "next_actions": np.zeros((capacity, act_dim), np.float32),
            "terminals": np.zeros((capacity,), np.bool_),
            "timeouts": np.zeros((capacity,), np.bool_)}


def sample_batches(rows: dict, count: int, rng: np.random.Generator, *, num: int, batch_size: int) -> td3_learner.Batch:
    """``num`` batches ``[num, B, ...]`` of uniform indices into the first ``count`` rows."""
    idx = rng.integers(0, count, size=(num, batch_size))
    return td3_learner.Batch(observation=rows["observations"][idx], action=rows["actions"][idx],
                             reward=rows["rewards"][idx], discount=(~rows["terminals"][idx]).astype(np.float32),
                             next_observation=rows["next_observations"][idx], next_action=rows["next_actions"][idx])


def evaluate(actor_fn, params, env_id: str, *, episodes: int, seed: int, obs_transform=None) -> np.ndarray:
    """Undiscounted returns of ``episodes`` deterministic episodes run at once (one envpool env each)."""
    with make(env_id, num_envs=episodes, seed=seed) as env:
        ts = env.reset()
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            obs = np.asarray(ts.observation, np.float32)
            if obs_transform is not None:
                obs = obs_transform(obs)
            ts = env.step(np.asarray(actor_fn(params, obs), np.float64))
            returns += np.where(done, 0.0, ts.reward)
            done |= ts.step_type == 2
    return returns


def make_trainer(cfg: Config, obs_dim: int, act_dim: int):
    net = networks.make_actor_critic(act_dim, cfg.hidden)
    learn = td3_learner.make_learner(
        net, learning_rate=cfg.learning_rate, tau=cfg.tau, policy_delay=cfg.policy_delay,
        critic_loss_fn=td3_learner.td3_critic_loss(net, gamma=cfg.gamma, policy_noise=cfg.policy_noise,
                                                   noise_clip=cfg.noise_clip),
        actor_loss_fn=td3_learner.td3_actor_loss(net))
    init = lambda key: learn.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))  # noqa: E731
    return net, init, jax.jit(learn.update_many, donate_argnums=0), jax.jit(net.actor)


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    start_wall = time.perf_counter()
    with make(cfg.env_id) as probe:
        obs_dim, act_dim = probe.spec.observation_shape[0], probe.action_bounds[0].shape[0]
    ckpt_dir = os.path.join(cfg.out_dir, "checkpoints")
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=os.path.isdir(ckpt_dir))
    net, init, update_many, actor = make_trainer(cfg, obs_dim, act_dim)
    writer = metrics.MetricsWriter(cfg.out_dir, ["env_steps", "eval_return", "eval_normalized", "critic_loss",
                                                 "actor_loss", "q_mean", "sps", "wall_s"])
    ckpt = checkpoint.Checkpointer(ckpt_dir, max_to_keep=cfg.keep_checkpoints)
    state = init(jax.random.PRNGKey(cfg.seed))
    rows = empty_rows(cfg.total_steps, obs_dim, act_dim)
    count = np.zeros((), np.int64)
    env_steps = 0
    template = {"state": state, "rows": rows, "count": count, "env_steps": np.zeros((), np.int64)}
    latest = ckpt.latest_step()
    if latest is not None:
        restored = ckpt.restore(latest, template)
        state, rows = restored["state"], {k: np.array(v) for k, v in restored["rows"].items()}
        count, env_steps = np.array(restored["count"]), int(restored["env_steps"])
        writer.truncate(env_steps)
    else:
        writer.reset()
    compile_s = None
    sps_samples = []
    bar = metrics.progress_bar(cfg.total_steps, initial=env_steps, desc=f"TD3 {cfg.env_id}", disable=not cfg.progress)
    last = {}
    while env_steps < cfg.total_steps:
        segment = env_steps // cfg.checkpoint_every
        seg_end = min(cfg.total_steps, (segment + 1) * cfg.checkpoint_every)
        rng = np.random.default_rng([cfg.seed, segment, 1])
        env = make(cfg.env_id, seed=cfg.seed * 100_003 + segment)
        obs = np.asarray(env.reset().observation[0], np.float32)
        pending = skip = False
        n = int(count)
        seg_start_t = time.perf_counter()
        seg_start_steps = env_steps
        while env_steps < seg_end:
            if env_steps < cfg.start_steps:
                action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                mean = np.asarray(actor(state.actor, obs[None]))[0]
                action = np.clip(mean + cfg.expl_noise * rng.standard_normal(act_dim), -1, 1).astype(np.float32)
            if pending:
                rows["next_actions"][n - 1] = action
                pending = False
            ts = env.step(action[None].astype(np.float64))
            next_obs = np.asarray(ts.observation[0], np.float32)
            if skip:  # this step reset the environment: no transition
                skip = False
            else:
                is_last = bool(ts.step_type[0] == 2)
                terminal = is_last and float(ts.discount[0]) == 0.0
                rows["observations"][n], rows["actions"][n] = obs, action
                rows["rewards"][n], rows["next_observations"][n] = ts.reward[0], next_obs
                rows["terminals"][n], rows["timeouts"][n] = terminal, is_last and not terminal
                n += 1
                pending, skip = True, is_last
            obs = next_obs
            env_steps += 1
            if env_steps % cfg.train_every == 0 and env_steps > cfg.start_steps:
                batches = sample_batches(rows, n, np.random.default_rng([cfg.seed, env_steps, 2]),
                                         num=cfg.train_every, batch_size=cfg.batch_size)
                t0 = time.perf_counter()
                state, out = update_many(state, batches)
                if compile_s is None:
                    jax.block_until_ready(state)
                    compile_s = time.perf_counter() - t0
                last = {k: float(np.nanmean(np.asarray(v))) for k, v in out.items()}
            if env_steps % cfg.eval_every == 0 or env_steps == cfg.total_steps:
                returns = evaluate(actor, state.actor, cfg.env_id, episodes=cfg.eval_episodes, seed=10**6 + cfg.seed)
                sps = (env_steps - seg_start_steps) / max(time.perf_counter() - seg_start_t, 1e-9)
                sps_samples.append(sps)
                record = {"env_steps": env_steps, "eval_return": float(returns.mean()),
                          "eval_normalized": _normalized(cfg.env_id, returns.mean()), **last, "sps": sps,
                          "wall_s": time.perf_counter() - start_wall}
                writer.write(record)
                bar.set_postfix(ret=f"{returns.mean():.0f}")
            bar.update(1)
        # segment end: the open episode is cut (timeout) and its next action drawn at the current observation
        if pending:
            mean = np.asarray(actor(state.actor, obs[None]))[0]
            rows["next_actions"][n - 1] = np.clip(mean + cfg.expl_noise * rng.standard_normal(act_dim), -1, 1)
            if not (rows["terminals"][n - 1] or rows["timeouts"][n - 1]):
                rows["timeouts"][n - 1] = True
        env.close()
        count = np.asarray(n, np.int64)
        ckpt.save(env_steps, {"state": state, "rows": rows, "count": count, "env_steps": np.asarray(env_steps, np.int64)})
    bar.close()
    n = int(count)
    policy_path = os.path.join(cfg.out_dir, "policy.npz")
    np.savez(policy_path, **networks.actor_to_numpy(jax.device_get(state.actor)))
    d4rl_style.save(os.path.join(cfg.out_dir, "replay.hdf5"), {k: v[:n] for k, v in rows.items()},
                    env_id=cfg.env_id, kind="medium-replay",
                    attrs={"agent": "TD3 (algorithms/td3)", "seed": cfg.seed, "env_steps": env_steps})
    records = metrics.read_jsonl(writer.jsonl_path)
    metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"),
                                title=f"TD3 {cfg.env_id}")
    final = records[-1]["eval_return"] if records else None
    out = cli.summary(algorithm="td3", preset=preset, cfg=cfg, headline_name="eval_return", headline_value=final,
                      env_steps=env_steps, wall_s=time.perf_counter() - start_wall, compile_s=compile_s,
                      sps_steady=float(np.median(sps_samples)) if sps_samples else None,
                      extra={"eval_normalized": _normalized(cfg.env_id, final) if final is not None else None,
                             "replay_transitions": n, "policy": policy_path})
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    ckpt.close()
    return out


def _normalized(env_id: str, value) -> float | None:
    try:
        return float(d4rl_style.normalized_score(env_id, value))
    except ValueError:
        return None


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.td3.train")
