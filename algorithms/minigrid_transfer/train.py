"""PPO on the JAX Minigrid (whole loop in one jit) or on Miniworld (host loop), with transfer.

Paper: Chevalier-Boisvert et al. 2023, "Minigrid & Miniworld: Modular & Customizable
Reinforcement Learning Environments for Goal-Oriented Tasks", arXiv 2306.13831 (Sec. 5,
the agent-transfer case study); PPO: Schulman et al. 2017, arXiv 1707.06347.

* ``MiniGrid-*`` ids (every registered id of ``environments.minigrid`` and the twin task
  ``MiniGrid-GoToObjTwin-11x11-v0``): N vmapped environments, rollout, GAE and the PPO
  epochs all inside one jitted ``lax.scan`` per logging chunk (PureJaxRL style).
* ``MiniWorld-*`` ids (``environments.miniworld``, headless): the same update, jitted; the
  environments step on the host, one policy dispatch per step.
* ``--transfer-from RUN_DIR --transfer-parts actor critic mission_encoder``: start from a
  finished run's parameters for those parts (the rest, e.g. the image encoder, fresh).

Run:
    python -m algorithms.minigrid_transfer.train cpu                      # DoorKey-8x8
Expected on 1 core of the shared 2-core CPU (jax 0.10.2): mean return ≥ 0.9 in a few
minutes (README.md, "PPO on DoorKey-8x8").
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from core import cli, metrics
from core.checkpoint import Checkpointer

from algorithms.minigrid_transfer import networks, ppo, twin
from environments.minigrid import envs as minigrid_envs

MINIGRID_PREFIX, MINIWORLD_PREFIX = "MiniGrid-", "MiniWorld-"
PARAMS_FILE = "params.npz"  # the final parameters, read by --transfer-from


@dataclasses.dataclass(frozen=True)
class Config:
    """One PPO run (every field is a CLI flag)."""

    env_id: str = "MiniGrid-DoorKey-8x8-v0"
    """A MiniGrid id (JAX, jitted loop) or a MiniWorld id (host loop)."""
    total_steps: int = 1_048_576
    """Environment steps of training (all environments together)."""
    num_envs: int = 64
    """Environments stepped together (vmapped for Minigrid, one after the other on the host for Miniworld)."""
    num_steps: int = 128
    """Rollout length per environment between updates (batch = num_envs × num_steps)."""
    update_epochs: int = 4
    """Passes over each batch."""
    num_minibatches: int = 8
    """Minibatches per epoch."""
    learning_rate: float = 1e-3
    """Adam step size (linearly annealed to 0 when anneal_lr)."""
    anneal_lr: bool = True
    """Anneal the step size linearly to 0 over the run."""
    gamma: float = 0.99
    """Discount γ."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip_eps: float = 0.2
    """PPO clip ε."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient c₂."""
    vf_coef: float = 0.5
    """Value loss coefficient c₁."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip."""
    num_actions: int = 0
    """Actions the agent uses (the first k of the environment's); 0 = all of them."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden units of the actor and of the critic MLP."""
    channels: tuple[int, ...] = (16, 32, 64)
    """Channels of the Minigrid image encoder's 2×2 convolutions."""
    obs_height: int = 60
    """Miniworld: height of the rendered view (Miniworld's default 60)."""
    obs_width: int = 80
    """Miniworld: width of the rendered view (Miniworld's default 80)."""
    log_every: int = 65_536
    """Environment steps between metric records (a multiple of num_envs × num_steps)."""
    eval_episodes: int = 32
    """Episodes of the evaluation (sampled actions) at every record (Minigrid) or at the end (Miniworld)."""
    checkpoint_every: int = 262_144
    """Environment steps between checkpoints (a multiple of log_every)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk."""
    transfer_from: str = ""
    """A finished run's out dir whose params.npz seeds the parts in transfer_parts ("" = train from scratch)."""
    transfer_parts: tuple[str, ...] = ("actor", "critic", "mission_encoder")
    """Parts copied with --transfer-from (of image_encoder, mission_encoder, actor, critic)."""
    seed: int = 0
    """Seed of initialisation, environments and actions."""
    out_dir: str = "runs/minigrid_transfer"
    """Output directory (holding a checkpoint: the run resumes)."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def updates_per_log(self) -> int:
        return self.log_every // self.batch_size

    @property
    def is_miniworld(self) -> bool:
        return self.env_id.startswith(MINIWORLD_PREFIX)

    def validate(self) -> None:
        require = cli.require
        check_env_id(self.env_id)
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "log_every",
                     "checkpoint_every", "keep_checkpoints", "obs_height", "obs_width"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        require(self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}")
        require(self.batch_size % self.num_minibatches == 0, "num_minibatches",
                f"must divide num_envs × num_steps = {self.batch_size}")
        require(self.log_every % self.batch_size == 0, "log_every",
                f"must be a multiple of num_envs × num_steps = {self.batch_size}, got {self.log_every}")
        require(self.total_steps % self.log_every == 0, "total_steps",
                f"must be a multiple of log_every = {self.log_every}, got {self.total_steps}")
        require(self.checkpoint_every % self.log_every == 0, "checkpoint_every",
                f"must be a multiple of log_every = {self.log_every}")
        require(0 < self.learning_rate, "learning_rate", f"must be > 0, got {self.learning_rate}")
        require(0 <= self.gamma <= 1, "gamma", f"must be in [0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1], got {self.gae_lambda}")
        require(self.clip_eps > 0, "clip_eps", f"must be > 0, got {self.clip_eps}")
        require(0 <= self.num_actions <= 7, "num_actions", f"must be in [0, 7], got {self.num_actions}")
        require(len(self.hidden) > 0 and all(h > 0 for h in self.hidden), "hidden", "must be positive sizes")
        require(len(self.channels) > 0 and all(c > 0 for c in self.channels), "channels", "must be positive sizes")
        bad = [p for p in self.transfer_parts if p not in networks.PARTS]
        require(not bad, "transfer_parts", f"unknown parts {bad}; choose from {list(networks.PARTS)}")
        if self.transfer_from:
            path = os.path.join(self.transfer_from, PARAMS_FILE)
            require(os.path.isfile(path), "transfer_from", f"{path} does not exist (train the source run first)")


PRESETS = {
    "smoke": ("DoorKey-5x5, 32k steps (tests; about a minute of compilation)",
              Config(env_id="MiniGrid-DoorKey-5x5-v0", total_steps=32_768, num_envs=32, num_steps=64, log_every=16_384,
                     checkpoint_every=16_384, eval_episodes=16, out_dir="runs/minigrid_transfer/smoke")),
    "cpu": ("DoorKey-8x8 solved on one CPU core: 64 envs × 128 steps, 1M steps",
            Config()),
    "twin_minigrid": ("the transfer source: the Minigrid twin task, 3 actions, 131k steps",
                      Config(env_id=twin.ENV_ID, num_actions=3, total_steps=131_072, log_every=16_384,
                             checkpoint_every=65_536, out_dir="runs/minigrid_transfer/twin_minigrid")),
    "twin_miniworld": ("the transfer target: the Miniworld twin task (host loop), 4 envs × 128 steps, 6k steps",
                       Config(env_id="MiniWorld-GoToObjTwin-v0", num_actions=3, total_steps=6_144, num_envs=4,
                              num_steps=128, num_minibatches=8, update_epochs=4, learning_rate=3e-4,
                              anneal_lr=False, ent_coef=0.0, log_every=512, checkpoint_every=3_072,
                              eval_episodes=20, out_dir="runs/minigrid_transfer/twin_miniworld")),
    "paper": ("the paper's: Stable-Baselines3 PPO defaults (2048 steps, 64 per minibatch, 10 epochs, 3e-4), "
              "Minigrid twin 2M steps (Miniworld: --env-id MiniWorld-GoToObjTwin-v0 --total-steps 196608)",
              Config(env_id=twin.ENV_ID, num_actions=3, total_steps=2_015_232, num_envs=1, num_steps=2048,
                     num_minibatches=32, update_epochs=10, learning_rate=3e-4, anneal_lr=False, ent_coef=0.0,
                     log_every=16_384, checkpoint_every=163_840, out_dir="runs/minigrid_transfer/paper")),
}


# --------------------------------------------------------------------------- environments


def check_env_id(env_id: str) -> None:
    """Raises ``environments.UnknownEnvironmentError``-style ConfigError naming the closest ids."""
    if env_id.startswith(MINIWORLD_PREFIX):
        from environments import miniworld

        try:
            miniworld.check_env_id(env_id)
        except miniworld.UnknownMiniworldError as error:
            raise cli.ConfigError(f"--env-id: {error}") from None
        return
    from environments import minigrid

    if env_id != twin.ENV_ID and env_id not in minigrid.ENV_IDS:
        import difflib

        known = list(minigrid.ENV_IDS) + [twin.ENV_ID]
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        raise cli.ConfigError(f"--env-id: unknown environment {env_id!r}; closest: {close or known[:3]} "
                              f"(MiniGrid-* ids of environments.minigrid, MiniWorld-* ids of environments.miniworld)")


def make_minigrid(env_id: str):
    from environments import minigrid

    return twin.make() if env_id == twin.ENV_ID else minigrid.make(env_id)


# --------------------------------------------------------------------------- network and update


class Trajectory(NamedTuple):
    """A rollout, time-major ``[T, B]``."""

    image: Any  # [T, B, ...] observation the action was taken from
    mission: jax.Array  # [T, B, L] int32
    next_image: Any  # [T, B, ...] the observation the transition led to (the episode's last one when it ended)
    next_mission: jax.Array  # [T, B, L] int32
    action: jax.Array  # [T, B] int32
    log_prob: jax.Array  # [T, B] float32 log π_old(a|s)
    reward: jax.Array  # [T, B] float32
    discount: jax.Array  # [T, B] float32 γ, 0 on termination
    lambda_: jax.Array  # [T, B] float32 λ, 0 at any episode end


class UpdateMetrics(NamedTuple):
    policy_loss: jax.Array  # [] float32
    value_loss: jax.Array  # [] float32
    entropy: jax.Array  # [] float32
    approx_kl: jax.Array  # [] float32
    clip_fraction: jax.Array  # [] float32


def make_network(cfg: Config, num_actions: int) -> hk.Transformed:
    from environments.minigrid import missions

    encoder = "pixels" if cfg.is_miniworld else "grid"
    forward = functools.partial(networks.actor_critic, encoder=encoder, num_actions=num_actions,
                                vocab_size=len(missions.VOCABULARY), hidden=cfg.hidden, channels=cfg.channels)
    return hk.without_apply_rng(hk.transform(forward))


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    steps = cfg.num_updates * cfg.update_epochs * cfg.num_minibatches
    lr = optax.linear_schedule(cfg.learning_rate, 0.0, steps) if cfg.anneal_lr else cfg.learning_rate
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))


def sample_action(logits: jax.Array, key: jax.Array):
    """``(action [B] int32, log π(action) [B])`` sampled from ``logits [B, A]``."""
    action = jax.random.categorical(key, logits).astype(jnp.int32)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=-1)[:, 0]
    return action, log_prob


def ppo_update(params, opt_state, traj: Trajectory, key: jax.Array, *, network: hk.Transformed,
               optimizer: optax.GradientTransformation, cfg: Config):
    """GAE over the rollout, then ``update_epochs`` × ``num_minibatches`` Adam steps on the PPO loss."""
    steps, envs = traj.reward.shape
    flat = lambda x: x.reshape((steps * envs,) + x.shape[2:])  # noqa: E731
    value = network.apply(params, flat(traj.image), flat(traj.mission)).value.reshape(steps, envs)
    bootstrap = network.apply(params, flat(traj.next_image), flat(traj.next_mission)).value.reshape(steps, envs)
    advantage = jax.vmap(ppo.generalized_advantage_estimation, in_axes=1, out_axes=1)(
        value, bootstrap, traj.reward, traj.discount, traj.lambda_)
    batch = (flat(traj.image), flat(traj.mission), flat(traj.action), flat(traj.log_prob), flat(advantage),
             flat(advantage + value))

    def loss_fn(p, minibatch):
        image, mission, action, old_log_prob, adv, target = minibatch
        out = network.apply(p, image, mission)
        loss = ppo.ppo_loss(out.logits, out.value, action, old_log_prob, adv, target, epsilon=cfg.clip_eps,
                            vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef)
        return loss.total, loss

    def minibatch_step(carry, minibatch):
        p, o = carry
        (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, minibatch)
        updates, o = optimizer.update(grads, o, p)
        return (optax.apply_updates(p, updates), o), UpdateMetrics(loss.policy, loss.value, loss.entropy,
                                                                   loss.approx_kl, loss.clip_fraction)

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, steps * envs)
        shuffled = jax.tree.map(lambda x: x[order].reshape((cfg.num_minibatches, -1) + x.shape[1:]), batch)
        return jax.lax.scan(minibatch_step, carry, shuffled)

    (params, opt_state), stats = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, cfg.update_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, stats)


def init_params(cfg: Config, network: hk.Transformed, key: jax.Array, image: np.ndarray, mission: np.ndarray):
    """Fresh parameters, with the parts of ``--transfer-from`` copied in."""
    params = network.init(key, jnp.asarray(image)[None], jnp.asarray(mission)[None])
    if cfg.transfer_from:
        params = networks.copy_parts(params, load_params(os.path.join(cfg.transfer_from, PARAMS_FILE)),
                                     cfg.transfer_parts)
    return params


def save_params(path: str, params) -> None:
    flat = {f"{module}::{name}": np.asarray(value) for module, p in params.items() for name, value in p.items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def load_params(path: str) -> dict:
    out: dict = {}
    with np.load(path) as data:
        for key in data.files:
            module, name = key.split("::")
            out.setdefault(module, {})[name] = data[key]
    return out


# --------------------------------------------------------------------------- the jitted Minigrid loop


class TrainState(NamedTuple):
    params: Any  # haiku params
    opt_state: Any  # optax state
    env_state: Any  # environments.minigrid.State [B]
    obs: Any  # environments.minigrid.Observation [B]
    episode_return: jax.Array  # [B] float32 return of the running episodes
    key: jax.Array  # [2] uint32
    update: jax.Array  # [] int32 updates done


class ChunkMetrics(NamedTuple):
    return_sum: jax.Array  # [] float32 returns of the episodes that ended in the chunk, summed
    episodes: jax.Array  # [] int32 episodes that ended in the chunk
    update: UpdateMetrics  # means over the chunk's updates


def rollout_step(carry, _, *, env, network, params, cfg: Config, num_actions: int):
    env_state, obs, episode_return, key = carry
    key, action_key, reset_key = jax.random.split(key, 3)
    logits = network.apply(params, obs.image, obs.mission).logits
    action, log_prob = sample_action(logits[:, :num_actions], action_key)
    next_state, out = jax.vmap(env.step)(env_state, action)
    fresh_state, fresh_obs = jax.vmap(env.reset)(jax.random.split(reset_key, cfg.num_envs))
    done = out.terminated | out.truncated
    episode_return = episode_return + out.reward
    transition = Trajectory(image=obs.image, mission=obs.mission, next_image=out.observation.image,
                            next_mission=out.observation.mission, action=action, log_prob=log_prob,
                            reward=out.reward, discount=cfg.gamma * (1.0 - out.terminated.astype(jnp.float32)),
                            lambda_=cfg.gae_lambda * (1.0 - done.astype(jnp.float32)))
    ended = (jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done.astype(jnp.int32)))
    select = functools.partial(minigrid_envs.select, done)  # a finished episode continues from a fresh layout
    carry = (select(fresh_state, next_state), select(fresh_obs, out.observation), jnp.where(done, 0.0, episode_return),
             key)
    return carry, (transition, ended)


def train_iteration(state: TrainState, _, *, env, network, optimizer, cfg: Config, num_actions: int):
    """One rollout of ``num_steps`` × ``num_envs`` and one PPO update."""
    key, rollout_key, update_key = jax.random.split(state.key, 3)
    step = functools.partial(rollout_step, env=env, network=network, params=state.params, cfg=cfg,
                             num_actions=num_actions)
    (env_state, obs, episode_return, _), (traj, (return_sum, episodes)) = jax.lax.scan(
        step, (state.env_state, state.obs, state.episode_return, rollout_key), None, length=cfg.num_steps)
    params, opt_state, stats = ppo_update(state.params, state.opt_state, traj, update_key, network=network,
                                          optimizer=optimizer, cfg=cfg)
    state = TrainState(params, opt_state, env_state, obs, episode_return, key, state.update + 1)
    return state, ChunkMetrics(return_sum.sum(), episodes.sum(), stats)


def evaluate(params, key: jax.Array, *, env, network, num_episodes: int, num_actions: int) -> jax.Array:
    """``[]`` mean return of the first episode of ``num_episodes`` environments (sampled actions)."""
    reset_key, key = jax.random.split(key)
    env_state, obs = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))

    def body(carry, step_key):
        env_state, obs, total, running = carry
        logits = network.apply(params, obs.image, obs.mission).logits[:, :num_actions]
        action, _ = sample_action(logits, step_key)
        env_state, out = jax.vmap(env.step)(env_state, action)
        total = total + jnp.where(running, out.reward, 0.0)
        running = running & ~(out.terminated | out.truncated)
        return (env_state, out.observation, total, running), None

    init = (env_state, obs, jnp.zeros(num_episodes), jnp.ones(num_episodes, bool))
    (_, _, total, _), _ = jax.lax.scan(body, init, jax.random.split(key, env.spec.max_steps))
    return total.mean()


def make_trainer(cfg: Config, env, num_actions: int):
    """``init(key) -> TrainState``, ``chunk(state) -> (state, ChunkMetrics)`` and ``evaluate(params, key)``."""
    network, optimizer = make_network(cfg, num_actions), make_optimizer(cfg)

    def init(key: jax.Array) -> TrainState:
        param_key, env_key, key = jax.random.split(key, 3)
        env_state, obs = jax.vmap(env.reset)(jax.random.split(env_key, cfg.num_envs))
        params = init_params(cfg, network, param_key, obs.image[0], obs.mission[0])
        return TrainState(params, optimizer.init(params), env_state, obs, jnp.zeros(cfg.num_envs), key,
                          jnp.zeros((), jnp.int32))

    iteration = functools.partial(train_iteration, env=env, network=network, optimizer=optimizer, cfg=cfg,
                                  num_actions=num_actions)

    def chunk(state: TrainState):
        state, stats = jax.lax.scan(iteration, state, None, length=cfg.updates_per_log)
        return state, ChunkMetrics(stats.return_sum.sum(), stats.episodes.sum(), jax.tree.map(jnp.mean, stats.update))

    evaluate_fn = functools.partial(evaluate, env=env, network=network, num_episodes=max(cfg.eval_episodes, 1),
                                    num_actions=num_actions)
    return network, init, chunk, evaluate_fn


# --------------------------------------------------------------------------- main


COLUMNS = ("env_steps", "episode_return", "episodes", "eval_return", "policy_loss", "value_loss", "entropy",
           "approx_kl", "clip_fraction", "sps", "wall_s")


def _record(env_steps: int, return_sum, episodes, stats: UpdateMetrics, eval_return, sps, wall_s) -> dict:
    episodes = int(episodes)
    return {"env_steps": env_steps, "episode_return": float(return_sum) / episodes if episodes else None,
            "episodes": episodes, "eval_return": None if eval_return is None else float(eval_return),
            **{k: float(v) for k, v in stats._asdict().items()}, "sps": sps, "wall_s": wall_s}


def main(cfg: Config, *, preset: str = "custom") -> dict:
    cfg.validate()
    return main_miniworld(cfg, preset=preset) if cfg.is_miniworld else main_minigrid(cfg, preset=preset)


def _finish(cfg: Config, preset: str, params, headline, env_steps, wall_s, compile_s, sps_steady, extra) -> dict:
    save_params(os.path.join(cfg.out_dir, PARAMS_FILE), jax.device_get(params))
    metrics.plot_learning_curve(cfg.out_dir, os.path.join(cfg.out_dir, "learning_curve.png"), y="episode_return",
                                title=f"PPO on {cfg.env_id}")
    out = cli.summary(algorithm="ppo", preset=preset, cfg=cfg, headline_name="mean_return", headline_value=headline,
                      env_steps=env_steps, wall_s=wall_s, compile_s=compile_s, sps_steady=sps_steady, extra=extra)
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    return out


def _storable(x):
    """Orbax refuses zero-size arrays (the obstacle list of families without obstacles): a 1-element stand-in."""
    return np.zeros((1,), np.asarray(x).dtype) if np.size(x) == 0 else x


def main_minigrid(cfg: Config, *, preset: str) -> dict:
    start = time.perf_counter()
    env = make_minigrid(cfg.env_id)
    num_actions = cfg.num_actions or 7
    network, init, chunk, evaluate_fn = make_trainer(cfg, env, num_actions)
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=checkpointer.latest_step() is not None)
    writer = metrics.MetricsWriter(cfg.out_dir, COLUMNS)
    key = jax.random.PRNGKey(cfg.seed)
    init_key, eval_key = jax.random.split(key)
    state = jax.jit(init)(init_key)
    done_steps = 0
    if checkpointer.latest_step() is not None:
        done_steps = checkpointer.latest_step()
        restored = checkpointer.restore(done_steps, jax.tree.map(_storable, state))
        state = jax.tree.map(lambda r, t: t if np.size(t) == 0 else jnp.asarray(r), restored, state)
        writer.truncate(done_steps)
    else:
        writer.reset()
    compile_start = time.perf_counter()
    chunk_c = jax.jit(chunk, donate_argnums=0).lower(state).compile()
    eval_c = jax.jit(evaluate_fn).lower(state.params, eval_key).compile()
    compile_s = time.perf_counter() - compile_start
    bar = metrics.progress_bar(cfg.total_steps, initial=done_steps, desc=cfg.env_id, disable=not cfg.progress)
    eval_return, sps_list = None, []
    while done_steps < cfg.total_steps:
        tick = time.perf_counter()
        state, stats = chunk_c(state)
        stats = jax.device_get(stats)
        sps = cfg.log_every / (time.perf_counter() - tick)
        sps_list.append(sps)
        done_steps += cfg.log_every
        eval_return = float(eval_c(state.params, jax.random.fold_in(eval_key, done_steps))) if cfg.eval_episodes else None
        writer.write(_record(done_steps, stats.return_sum, stats.episodes, stats.update, eval_return, sps,
                             time.perf_counter() - start))
        bar.update(cfg.log_every)
        bar.set_postfix(ret=f"{eval_return if eval_return is not None else float('nan'):.3f}")
        if done_steps % cfg.checkpoint_every == 0 or done_steps == cfg.total_steps:
            checkpointer.save(done_steps, jax.tree.map(_storable, state))
    bar.close()
    checkpointer.close()
    if eval_return is None and cfg.eval_episodes:  # a finished run resumed: the last record's evaluation again
        eval_return = float(eval_c(state.params, jax.random.fold_in(eval_key, done_steps)))
    steady = float(np.median(sps_list[1:] if len(sps_list) > 1 else sps_list)) if sps_list else None
    return _finish(cfg, preset, state.params, eval_return, done_steps, time.perf_counter() - start, compile_s, steady,
                   {"num_actions": num_actions})


# --------------------------------------------------------------------------- the Miniworld host loop


class HostState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array  # [2] uint32


def main_miniworld(cfg: Config, *, preset: str) -> dict:
    from environments import miniworld

    start = time.perf_counter()
    obs_size = (cfg.obs_height, cfg.obs_width)
    probe = miniworld.DmEnv(cfg.env_id, seed=cfg.seed, obs_size=obs_size)
    num_actions = cfg.num_actions or int(probe.action_spec().num_values)
    first = probe.reset().observation
    network, optimizer = make_network(cfg, num_actions), make_optimizer(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    param_key, key = jax.random.split(key)
    params = init_params(cfg, network, param_key, first["image"], first["mission"])
    state = HostState(params, optimizer.init(params), key)
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=checkpointer.latest_step() is not None)
    writer = metrics.MetricsWriter(cfg.out_dir, COLUMNS)
    done_steps = 0
    if checkpointer.latest_step() is not None:
        done_steps = checkpointer.latest_step()
        state = jax.tree.map(jnp.asarray, checkpointer.restore(done_steps, state))
        writer.truncate(done_steps)
    else:
        writer.reset()
    # Environment state cannot be checkpointed: each segment between checkpoints runs in fresh
    # environments seeded from (seed, segment), in a resumed run as in an uninterrupted one.
    envs: list = []

    def fresh_envs(segment: int):
        for e in envs:
            e.close()
        envs[:] = [miniworld.DmEnv(cfg.env_id, seed=int(np.random.SeedSequence([cfg.seed, segment, i]).generate_state(1)[0]),
                                   obs_size=obs_size) for i in range(cfg.num_envs)]
        return [e.reset() for e in envs]

    probe.close()

    @jax.jit
    def act(params, image, mission, key):
        logits = network.apply(params, image, mission).logits[:, :num_actions]
        return sample_action(logits, key)

    update = jax.jit(functools.partial(ppo_update, network=network, optimizer=optimizer, cfg=cfg))
    steps_per_segment = cfg.checkpoint_every
    timesteps = fresh_envs(done_steps // steps_per_segment)
    episode_return = np.zeros(cfg.num_envs)
    bar = metrics.progress_bar(cfg.total_steps, initial=done_steps, desc=cfg.env_id, disable=not cfg.progress)
    compile_s, sps_list, recent = None, [], []
    return_sum, episodes, chunk_stats, chunk_start = 0.0, 0, [], time.perf_counter()
    while done_steps < cfg.total_steps:
        buf = {k: [] for k in Trajectory._fields}
        for _ in range(cfg.num_steps):
            image = np.stack([t.observation["image"] for t in timesteps])
            mission = np.stack([t.observation["mission"] for t in timesteps])
            key, action_key = jax.random.split(state.key)
            state = state._replace(key=key)
            action, log_prob = jax.device_get(act(state.params, image, mission, action_key))
            next_ts = [e.step(a) for e, a in zip(envs, action)]
            reward = np.array([t.reward for t in next_ts], np.float32)
            terminated = np.array([t.last() and t.discount == 0.0 for t in next_ts])
            ended = np.array([t.last() for t in next_ts])
            episode_return += reward
            for i in np.flatnonzero(ended):
                return_sum += episode_return[i]
                episodes += 1
                recent.append(episode_return[i])
                episode_return[i] = 0.0
            for name, value in (("image", image), ("mission", mission),
                                ("next_image", np.stack([t.observation["image"] for t in next_ts])),
                                ("next_mission", np.stack([t.observation["mission"] for t in next_ts])),
                                ("action", action), ("log_prob", log_prob), ("reward", reward),
                                ("discount", cfg.gamma * (1.0 - terminated.astype(np.float32))),
                                ("lambda_", cfg.gae_lambda * (1.0 - ended.astype(np.float32)))):
                buf[name].append(value)
            timesteps = [e.reset() if t.last() else t for e, t in zip(envs, next_ts)]
        traj = Trajectory(**{k: np.stack(v).astype(np.float32) if k in ("reward", "discount", "lambda_", "log_prob")
                             else np.stack(v) for k, v in buf.items()})
        key, update_key = jax.random.split(state.key)
        tick = time.perf_counter()
        params, opt_state, stats = update(state.params, state.opt_state, traj, update_key)
        stats = jax.device_get(stats)
        if compile_s is None:
            compile_s = time.perf_counter() - tick
        state = HostState(params, opt_state, key)
        chunk_stats.append(stats)
        done_steps += cfg.batch_size
        bar.update(cfg.batch_size)
        if done_steps % cfg.log_every == 0:
            sps = cfg.log_every / (time.perf_counter() - chunk_start)
            sps_list.append(sps)
            mean_stats = UpdateMetrics(*[np.mean([getattr(s, f) for s in chunk_stats]) for f in UpdateMetrics._fields])
            writer.write(_record(done_steps, return_sum, episodes, mean_stats, None, sps, time.perf_counter() - start))
            bar.set_postfix(ret=f"{return_sum / max(episodes, 1):.3f}")
            return_sum, episodes, chunk_stats, chunk_start = 0.0, 0, [], time.perf_counter()
        if done_steps % cfg.checkpoint_every == 0 or done_steps == cfg.total_steps:
            checkpointer.save(done_steps, state)
            if done_steps < cfg.total_steps:
                timesteps = fresh_envs(done_steps // steps_per_segment)
                episode_return[:] = 0.0
    bar.close()
    checkpointer.close()
    for e in envs:
        e.close()
    headline = evaluate_host(cfg, state.params, act, num_actions) if cfg.eval_episodes else None
    steady = float(np.median(sps_list)) if sps_list else None
    return _finish(cfg, preset, state.params, headline, done_steps, time.perf_counter() - start, compile_s, steady,
                   {"num_actions": num_actions, "eval_episodes": cfg.eval_episodes})


def evaluate_host(cfg: Config, params, act, num_actions: int) -> float:
    """Mean return of ``eval_episodes`` Miniworld episodes with sampled actions (seeded apart from training)."""
    from environments import miniworld

    env = miniworld.DmEnv(cfg.env_id, seed=cfg.seed + 10_000, obs_size=(cfg.obs_height, cfg.obs_width))
    key = jax.random.PRNGKey(cfg.seed + 10_000)
    returns = []
    for _ in range(cfg.eval_episodes):
        ts, total = env.reset(), 0.0
        while True:
            key, action_key = jax.random.split(key)
            action, _ = act(params, ts.observation["image"][None], ts.observation["mission"][None], action_key)
            ts = env.step(int(action[0]))
            total += ts.reward
            if ts.last():
                break
        returns.append(total)
    env.close()
    return float(np.mean(returns))


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.minigrid_transfer.train")
