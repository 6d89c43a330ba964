"""DQN with double Q-learning: the baseline every paper directory compares against.

Papers: Mnih et al. 2015, "Human-level control through deep reinforcement learning"
(Nature 518); van Hasselt, Guez & Silver 2016, "Deep RL with Double Q-learning"
(arXiv 1509.06461). Hyperparameters of the ``paper`` preset follow Dopamine's JAX DQN
(Castro et al. 2018, arXiv 1812.06110) on the 200M-frame protocol of Machado et al. 2018.

Run:
    python -m algorithms.dqn.train cartpole --seed 0
Expected on 2 CPU cores (jax 0.10.2): final greedy evaluation return ≥ 475 over 10
episodes after 100k CartPole-v1 environment steps, in about 5 minutes (see README.md).

Environments from envpool run in a host loop (one jitted agent step per environment
step); environments written in JAX (gymnax MinAtar) run the whole loop inside ``jit`` as a
``lax.scan`` over chunks of ``log_every`` steps. Both share the same agent step.
"""
from __future__ import annotations

import dataclasses
import os
import time
import zlib
from typing import Any, Callable, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import environments
from core import cli, losses, metrics, parallel, replay, schedules
from core.checkpoint import Checkpointer
from core.networks import TORSOS, NetworkConfig, make_q_network
from core.types import EnvSpec, StepType, TimeStep, TrainState

Array = chex.Array


@dataclasses.dataclass(frozen=True)
class Config:
    """DQN configuration; every field is a CLI flag (``--field-name value``)."""

    env_id: str = "CartPole-v1"
    """Environment id: an envpool id (CartPole-v1, Pong-v5, ...) or a JAX one (Breakout-MinAtar, ...)."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over parallel environments)."""
    seed: int = 0
    """Seed of every random stream in the run (networks, exploration, environments, replay)."""
    out_dir: str = "runs/dqn"
    """Where config.json, metrics, the figure, checkpoints and summary.json go; a dir holding checkpoints resumes."""
    num_envs: int = 1
    """Parallel training environments (one agent step acts in all of them)."""
    atari_protocol: str = "atari200m"
    """Atari protocol (ignored elsewhere): "atari200m" (sticky actions, Dopamine) or "atari100k"."""

    torso: str = "mlp"
    """Network torso: "mlp", "nature" (Nature CNN), "minatar" (Young & Tian), "impala"."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the MLP torso."""
    head_hidden: int = 0
    """Hidden ReLU layer before the Q outputs (512 in Nature DQN, 128 for MinAtar)."""
    dueling: bool = False
    """Dueling head (Wang et al. 2016)."""

    double_q: bool = True
    """Double Q-learning target (online argmax, target evaluation)."""
    gamma: float = 0.99
    """Discount factor γ."""
    n_step: int = 3
    """Multi-step return horizon n (1 in Nature DQN and Dopamine's DQN)."""
    huber: bool = True
    """Huber loss on the TD error (Nature DQN); otherwise the squared loss."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    lr_final_fraction: float = 0.0
    """Learning rate decays linearly to this fraction of its initial value by the end of training (1 = constant)."""
    adam_eps: float = 1e-8
    """Adam ε (Dopamine uses 1.5e-4 on Atari)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip; 0 disables it."""
    batch_size: int = 64
    """Transitions per gradient step (split across local devices)."""
    buffer_size: int = 50_000
    """Replay capacity in transitions."""
    learning_starts: int = 1_000
    """Environment steps of random acting before learning (min replay history)."""
    train_every: int = 1
    """Environment steps per gradient step (the inverse replay ratio; Nature DQN: 4)."""
    target_update_every: int = 500
    """Gradient steps between hard target-network copies."""
    eps_start: float = 1.0
    """ε of ε-greedy exploration at the start of the decay."""
    eps_end: float = 0.05
    """ε after the decay."""
    eps_decay_steps: int = 10_000
    """Environment steps over which ε decays linearly, starting at ``learning_starts``."""

    eval_every: int = 10_000
    """Environment steps between greedy evaluations (a multiple of log_every)."""
    eval_episodes: int = 10
    """Evaluation episodes (run in parallel environments)."""
    eval_epsilon: float = 0.0
    """ε of the evaluation policy (Dopamine: 0.001 on Atari)."""
    eval_max_steps: int = 27_000
    """Cap on agent steps of one evaluation episode."""
    log_every: int = 1_000
    """Environment steps between metric records (and the JAX loop's chunk length)."""
    checkpoint_every: int = 25_000
    """Environment steps between checkpoints (a multiple of log_every)."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep."""
    num_devices: int = 0
    """Local devices the learner update is split across; 0 = all."""
    progress: bool = True
    """Show a progress bar."""

    @property
    def network(self) -> NetworkConfig:
        return NetworkConfig(
            torso=self.torso, hidden_sizes=tuple(self.hidden_sizes), head_hidden=self.head_hidden,
            dueling=self.dueling, channels_first=self.torso != "minatar",
        )

    @property
    def updates_per_call(self) -> int:
        """Gradient steps per agent step (one agent step = ``num_envs`` environment steps)."""
        return max(1, self.num_envs // self.train_every)

    @property
    def calls_per_update(self) -> int:
        """Agent steps between gradient-step bursts."""
        return max(1, self.train_every // self.num_envs)

    def validate(self) -> None:
        req = cli.require
        for name in ("total_steps", "num_envs", "batch_size", "buffer_size", "train_every",
                     "target_update_every", "eval_every", "eval_episodes", "log_every",
                     "checkpoint_every", "keep_checkpoints", "n_step", "eval_max_steps"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        req(self.eps_decay_steps >= 0, "eps_decay_steps", "must be >= 0")
        req(0.0 <= self.gamma <= 1.0, "gamma", f"must lie in [0, 1], got {self.gamma}")
        req(self.learning_rate > 0, "learning_rate", "must be positive")
        req(0.0 <= self.lr_final_fraction <= 1.0, "lr_final_fraction", "must lie in [0, 1]")
        req(self.adam_eps > 0, "adam_eps", "must be positive")
        req(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)")
        for name in ("eps_start", "eps_end", "eval_epsilon"):
            req(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        req(self.torso in TORSOS, "torso", f"unknown torso {self.torso!r}; choose one of {TORSOS}")
        req(self.atari_protocol in ("atari200m", "atari100k"), "atari_protocol",
            f"choose 'atari200m' or 'atari100k', got {self.atari_protocol!r}")
        req(self.batch_size <= self.buffer_size, "batch_size",
            f"batch size {self.batch_size} exceeds the replay capacity {self.buffer_size}")
        req(self.buffer_size >= 2 * self.num_envs * (self.n_step + 1), "buffer_size",
            f"must hold at least {2 * self.num_envs * (self.n_step + 1)} transitions")
        req(self.learning_starts <= self.total_steps, "learning_starts",
            f"{self.learning_starts} exceeds total_steps {self.total_steps}: the agent would never learn")
        req(self.num_envs % self.train_every == 0 or self.train_every % self.num_envs == 0,
            "train_every", f"must divide or be a multiple of num_envs={self.num_envs}")
        req(self.log_every % self.num_envs == 0, "log_every",
            f"must be a multiple of num_envs={self.num_envs}")
        for name in ("eval_every", "checkpoint_every", "total_steps"):
            req(getattr(self, name) % self.log_every == 0, name,
                f"must be a multiple of log_every={self.log_every}, got {getattr(self, name)}")
        req(self.num_devices >= 0, "num_devices", "must be >= 0")
        devices = self.num_devices or jax.local_device_count()
        req(devices <= jax.local_device_count(), "num_devices",
            f"{devices} requested, {jax.local_device_count()} available")
        req(self.batch_size % devices == 0, "batch_size",
            f"{self.batch_size} is not divisible by the {devices} local devices")
        environments.check_env_id(self.env_id)


PRESETS = {
    "smoke": (
        "CartPole-v1, 6k steps, several checkpoints: under a minute, used by the tests.",
        Config(total_steps=6_000, learning_starts=500, eps_decay_steps=2_000, buffer_size=5_000,
               batch_size=32, hidden_sizes=(64, 64), target_update_every=100, eval_every=2_000,
               eval_episodes=4, log_every=500, checkpoint_every=1_500, keep_checkpoints=5,
               out_dir="runs/dqn_smoke"),
    ),
    "cartpole": (
        "The demo: CartPole-v1, 100k steps, greedy evaluation ≥ 475 on 2 CPU cores in ~5 min.",
        Config(),
    ),
    "cpu": (
        "MinAtar Breakout (gymnax, whole loop in jit) at a CPU budget; Young & Tian 2019 network.",
        Config(env_id="Breakout-MinAtar", total_steps=1_000_000, num_envs=1, torso="minatar",
               head_hidden=128, learning_rate=2.5e-4, adam_eps=3.125e-4, max_grad_norm=0.0,
               batch_size=32, buffer_size=100_000, learning_starts=5_000, train_every=1, n_step=1,
               lr_final_fraction=1.0,
               target_update_every=1_000, eps_end=0.1, eps_decay_steps=100_000,
               eval_every=50_000, eval_episodes=32, eval_epsilon=0.0, log_every=10_000,
               checkpoint_every=100_000, out_dir="runs/dqn_minatar"),
    ),
    "paper": (
        "Nature DQN network, Dopamine JAX DQN hyperparameters, Atari 200M frames (50M agent steps).",
        Config(env_id="Pong-v5", total_steps=50_000_000, num_envs=1, atari_protocol="atari200m",
               torso="nature", head_hidden=512, learning_rate=6.25e-5, adam_eps=1.5e-4,
               max_grad_norm=0.0, batch_size=32, buffer_size=1_000_000, learning_starts=20_000, n_step=1,
               lr_final_fraction=1.0,
               train_every=4, target_update_every=2_000, eps_end=0.01, eps_decay_steps=250_000,
               eval_every=250_000, eval_episodes=32, eval_epsilon=0.001, log_every=10_000,
               checkpoint_every=1_000_000, out_dir="runs/dqn_atari"),
    ),
}


# --------------------------------------------------------------------------- agent pieces


class LoopState(NamedTuple):
    """Everything the agent step carries (checkpointed as one pytree)."""

    train: TrainState  # learner: params, target params, Adam state, grad steps, key
    replay: Any  # core.replay.ReplayState
    actor_key: Array  # [2] uint32 exploration key stream
    env_steps: Array  # [] int32 environment steps taken (all envs)
    calls: Array  # [] int32 agent steps taken
    episode_return: Array  # [B] float32 return of the running episodes
    returns_sum: Array  # [] float32 returns of episodes completed since the last log
    returns_count: Array  # [] int32 episodes completed since the last log
    loss_sum: Array  # [] float32 losses of gradient steps since the last log
    loss_count: Array  # [] int32 gradient steps since the last log


def epsilon_greedy(key: Array, q_values: Array, epsilon: Array) -> Array:
    """a = argmax_a Q(s, a) with probability 1 − ε, uniform otherwise. ``[B, A]`` → ``[B]``."""
    explore_key, action_key = jax.random.split(key)
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    random = jax.random.randint(action_key, greedy.shape, 0, q_values.shape[-1], jnp.int32)
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy)


def dqn_loss(params, target_params, batch, *, apply: Callable, double_q: bool, huber: bool):
    """Mean over the batch of ℓ(δ) with δ the (double) Q-learning TD error."""
    q_tm1 = apply(params, batch.observation)
    q_t_value = apply(target_params, batch.next_observation)
    if double_q:
        q_t_selector = apply(params, batch.next_observation)
        td = jax.vmap(losses.double_q_td_error)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value, q_t_selector)
    else:
        td = jax.vmap(losses.q_learning_td_error)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value)
    per_example = losses.huber_loss(td) if huber else losses.squared_loss(td)
    return jnp.mean(per_example), jnp.mean(jnp.abs(td))


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    total_updates = max(1, (cfg.total_steps - cfg.learning_starts) // cfg.train_every)
    lr = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.lr_final_fraction, total_updates)
    adam = optax.adam(lr, eps=cfg.adam_eps)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adam) if cfg.max_grad_norm else adam


def make_learner_update(cfg: Config, apply: Callable, optimizer, mesh) -> Callable:
    """``(train_state, batch) -> (train_state, loss)``, data-parallel over ``mesh``."""

    def update(params, target_params, opt_state, batch):
        (loss, _), grads = jax.value_and_grad(
            lambda p: dqn_loss(p, target_params, batch, apply=apply, double_q=cfg.double_q, huber=cfg.huber),
            has_aux=True)(params)
        grads, loss = parallel.pmean((grads, loss))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    sharded = parallel.data_parallel(update, mesh, num_replicated=3, num_sharded=1)

    def learner_update(train: TrainState, batch) -> tuple[TrainState, Array]:
        params, opt_state, loss = sharded(train.params, train.target_params, train.opt_state, batch)
        step = train.step + 1
        target = optax.periodic_update(params, train.target_params, step, cfg.target_update_every)
        return train._replace(params=params, target_params=target, opt_state=opt_state, step=step), loss

    return learner_update


class Agent(NamedTuple):
    """The pure functions of one configured DQN agent."""

    init: Callable  # key -> LoopState
    step: Callable  # (LoopState, TimeStep) -> (LoopState, actions [B]): observe, then maybe learn
    observe: Callable  # (LoopState, TimeStep) -> (LoopState, actions [B]): act and store
    should_learn: Callable  # (LoopState) -> bool []: whether this agent step ends with learning
    learn: Callable  # (LoopState) -> LoopState: `updates_per_call` gradient steps
    act_greedy: Callable  # (params, observation [B, *O], key, epsilon) -> actions [B]
    truncate: Callable  # (LoopState, TimeStep) -> LoopState: end running episodes (segment end)
    learner_update: Callable  # (TrainState, Transition) -> (TrainState, loss)
    sample: Callable  # (LoopState) -> (LoopState, Transition)


def make_agent(cfg: Config, spec: EnvSpec, mesh=None) -> Agent:
    """Builds the agent's pure functions for ``spec`` (jit them at the call site)."""
    network = make_q_network(cfg.network, spec.num_actions)
    optimizer = make_optimizer(cfg)
    mesh = mesh if mesh is not None else parallel.local_mesh(cfg.num_devices or None)
    learner_update = make_learner_update(cfg, network.apply, optimizer, mesh)
    frame_stack = spec.observation_shape[0] if cfg.torso in ("nature", "impala") and len(spec.observation_shape) == 3 else 1

    def init(key: Array) -> LoopState:
        net_key, learner_key, actor_key = jax.random.split(key, 3)
        dummy = jnp.zeros((1, *spec.observation_shape), spec.observation_dtype)
        params = network.init(net_key, dummy)
        # A distinct copy: the loop state is donated, and two leaves may not share a buffer.
        target_params = jax.tree.map(lambda x: x.copy(), params)
        train = TrainState(params=params, target_params=target_params, opt_state=optimizer.init(params),
                           step=jnp.zeros((), jnp.int32), key=learner_key)
        buffer = replay.init(capacity=cfg.buffer_size, num_envs=cfg.num_envs,
                             observation_shape=spec.observation_shape,
                             observation_dtype=spec.observation_dtype, frame_stack=frame_stack)
        # Every leaf its own buffer: the loop state is donated to the compiled step.
        f32, i32 = (lambda: jnp.zeros((), jnp.float32)), (lambda: jnp.zeros((), jnp.int32))
        return LoopState(train=train, replay=buffer, actor_key=actor_key, env_steps=i32(), calls=i32(),
                         episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
                         returns_sum=f32(), returns_count=i32(), loss_sum=f32(), loss_count=i32())

    def act_greedy(params, observation, key, epsilon):
        return epsilon_greedy(key, network.apply(params, observation), epsilon)

    def sample(state: LoopState):
        key, sample_key = jax.random.split(state.train.key)
        batch, _ = replay.sample(state.replay, sample_key, batch_size=cfg.batch_size,
                                 n_step=cfg.n_step, gamma=cfg.gamma)
        return state._replace(train=state.train._replace(key=key)), batch

    def learn(state: LoopState) -> LoopState:
        def one_update(_, s: LoopState) -> LoopState:
            s, batch = sample(s)
            train, loss = learner_update(s.train, batch)
            return s._replace(train=train, loss_sum=s.loss_sum + loss, loss_count=s.loss_count + 1)

        if cfg.updates_per_call <= 4:  # unrolled: convolutions inside loops are slow on CPU
            for i in range(cfg.updates_per_call):
                state = one_update(i, state)
            return state
        return jax.lax.fori_loop(0, cfg.updates_per_call, one_update, state)

    def observe(state: LoopState, timestep: TimeStep):
        actor_key, key = jax.random.split(state.actor_key)
        epsilon = schedules.linear_schedule(state.env_steps, start=cfg.eps_start, end=cfg.eps_end,
                                            duration=cfg.eps_decay_steps, begin=cfg.learning_starts)
        actions = act_greedy(state.train.params, timestep.observation, key, epsilon)
        # Acting before `learning_starts` is uniform random (ε = eps_start = 1 by default).
        buffer = replay.add(state.replay, timestep, actions)
        # Episode bookkeeping: the reward of a time step belongs to the running episode.
        episode_return = state.episode_return + timestep.reward
        done = timestep.last()
        state = state._replace(
            replay=buffer, actor_key=actor_key, env_steps=state.env_steps + cfg.num_envs,
            calls=state.calls + 1,
            episode_return=jnp.where(done, 0.0, episode_return),
            returns_sum=state.returns_sum + jnp.sum(jnp.where(done, episode_return, 0.0)),
            returns_count=state.returns_count + jnp.sum(done).astype(jnp.int32),
        )
        return state, actions

    def should_learn(state: LoopState) -> Array:
        ready = (state.env_steps >= cfg.learning_starts) & (state.calls % cfg.calls_per_update == 0)
        return ready & replay.can_sample(state.replay, n_step=cfg.n_step)

    def step(state: LoopState, timestep: TimeStep):
        state, actions = observe(state, timestep)
        state = jax.lax.cond(should_learn(state), learn, lambda s: s, state)
        return state, actions

    def truncate(state: LoopState, timestep: TimeStep) -> LoopState:
        """Ends every running episode at ``timestep`` as a time-limit truncation (discount 1)."""
        truncated = timestep._replace(step_type=jnp.full_like(timestep.step_type, StepType.LAST))
        buffer = replay.add(state.replay, truncated, jnp.zeros((cfg.num_envs,), jnp.int32))
        return state._replace(replay=buffer, episode_return=jnp.zeros_like(state.episode_return))

    return Agent(init=init, step=step, observe=observe, should_learn=should_learn, learn=learn,
                 act_greedy=act_greedy, truncate=truncate,
                 learner_update=learner_update, sample=sample)


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


def env_spec(cfg: Config) -> EnvSpec:
    """The training environment's spec (an envpool env is opened and closed to read it)."""
    if environments.is_jax_env(cfg.env_id):
        return environments.make_jax(cfg.env_id).spec
    protocol = cfg.atari_protocol if environments.is_atari(cfg.env_id) else None
    with environments.make(cfg.env_id, num_envs=1, seed=0, protocol=protocol) as env:
        return env.spec


def make_trainer(cfg: Config) -> Trainer:
    """Wires the agent to its environment (JAX loop for JAX envs, host loop for envpool)."""
    if environments.is_jax_env(cfg.env_id):
        return _make_jax_trainer(cfg)
    return _make_host_trainer(cfg)


def _make_jax_trainer(cfg: Config) -> Trainer:
    env = environments.make_jax(cfg.env_id)
    agent = make_agent(cfg, env.spec)
    compile_time = [0.0]
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

    compiled = {}

    def run_chunk(state):
        if "chunk" not in compiled:
            start = time.perf_counter()
            compiled["chunk"] = jax.jit(chunk, donate_argnums=0).lower(state).compile()
            compile_time[0] += time.perf_counter() - start
        return compiled["chunk"](state)

    evaluate_fn = jax.jit(make_evaluate_jax(cfg, env, agent.act_greedy))

    def evaluate(state, index):
        key = jax.random.PRNGKey(_derived_seed(cfg.seed, "eval", index))
        return np.asarray(evaluate_fn(state[0].train.params, key))

    return Trainer(init=init, run_chunk=run_chunk, end_segment=lambda state: state, evaluate=evaluate,
                   compile_s=lambda: compile_time[0], close=lambda: None)


def _make_host_trainer(cfg: Config) -> Trainer:
    protocol = cfg.atari_protocol if environments.is_atari(cfg.env_id) else None
    env_holder = {}

    def open_env(segment: int):
        if "env" in env_holder:
            env_holder["env"].close()
        env_holder["env"] = environments.make(
            cfg.env_id, num_envs=cfg.num_envs, seed=_derived_seed(cfg.seed, "train", segment), protocol=protocol)
        return env_holder["env"]

    agent = make_agent(cfg, env_spec(cfg))
    compile_time = [0.0]
    compiled = {}
    pending = {}  # the time step received but not yet acted upon, and its segment

    def init(key):
        return agent.init(key), None

    def run_chunk(state):
        loop, _ = state
        if "timestep" not in pending:
            # Each checkpoint segment runs in freshly seeded environments, so that a run
            # resumed from a checkpoint sees exactly the environments of an uninterrupted one.
            pending["timestep"] = open_env(int(loop.env_steps) // cfg.checkpoint_every).reset()
        if "observe" not in compiled:
            start = time.perf_counter()
            compiled["observe"] = jax.jit(agent.observe, donate_argnums=0).lower(loop, pending["timestep"]).compile()
            compiled["learn"] = jax.jit(agent.learn, donate_argnums=0).lower(loop).compile()
            compiled["should_learn"] = jax.jit(agent.should_learn)
            compile_time[0] += time.perf_counter() - start
        observe, learn, env = compiled["observe"], compiled["learn"], env_holder["env"]
        timestep = pending["timestep"]
        # The same schedule as `agent.step`, decided on the host so that the learner runs as
        # its own compiled program (a Nature-CNN update inside `lax.cond` is ~7x slower on CPU).
        calls, can_learn = int(loop.calls), bool(pending.get("can_learn", False))
        for _ in range(cfg.log_every // cfg.num_envs):
            loop, actions = observe(loop, timestep)
            timestep = env.step(np.asarray(actions))
            calls += 1
            if calls * cfg.num_envs >= cfg.learning_starts and calls % cfg.calls_per_update == 0:
                can_learn = can_learn or bool(compiled["should_learn"](loop))
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
                   compile_s=lambda: compile_time[0], close=close)


# --------------------------------------------------------------------------- main


METRIC_COLUMNS = ("env_steps", "grad_steps", "episodes", "train_return", "loss", "epsilon",
                  "eval_return", "eval_return_std", "sps", "wall_s")


def main(cfg: Config, *, preset: str = "custom") -> dict:
    """Trains (or resumes) one run and writes every output of the CLI contract."""
    cfg.validate()
    start_wall = time.perf_counter()
    checkpointer = Checkpointer(os.path.join(cfg.out_dir, "checkpoints"), max_to_keep=cfg.keep_checkpoints)
    resuming = checkpointer.latest_step() is not None
    cli.prepare_out_dir(cfg.out_dir, cfg, resumable=resuming)
    writer = metrics.MetricsWriter(cfg.out_dir, METRIC_COLUMNS)
    trainer = make_trainer(cfg)

    state = trainer.init(jax.random.PRNGKey(cfg.seed))
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
    bar = metrics.progress_bar(cfg.total_steps, initial=env_steps, desc=f"dqn {cfg.env_id}",
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
                                         title=f"DQN on {cfg.env_id} (seed {cfg.seed})")
    final = None if np.isnan(last_eval[0]) else float(last_eval[0])
    out = cli.summary(
        algorithm="dqn", preset=preset, cfg=cfg, headline_name="eval_return", headline_value=final,
        env_steps=env_steps, wall_s=time.perf_counter() - start_wall, compile_s=trainer.compile_s(),
        sps_steady=steady_steps / steady_time if steady_time else None,
        extra={"eval_episodes": cfg.eval_episodes},
    )
    cli.write_json(os.path.join(cfg.out_dir, "summary.json"), out)
    print(f"final evaluation return {final} over {cfg.eval_episodes} episodes after {env_steps} steps")
    print(f"metrics: {writer.jsonl_path}  plot: {figure}  checkpoints: {checkpointer.directory}")
    return out


if __name__ == "__main__":
    cli.cli_main(PRESETS, main, prog="python -m algorithms.dqn.train")
