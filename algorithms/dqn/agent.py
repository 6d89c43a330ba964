"""The value-based agent family as pure functions: DQN, Rainbow/DER and DrQ(ε).

One configured agent covers the three baselines the paper directories build on, the way
Dopamine's full Rainbow agent switches its components on and off:

=====================  ==============================  =================================
component              field                           paper
=====================  ==============================  =================================
double Q-learning      ``double_q``                    van Hasselt et al. 2016, arXiv 1509.06461
n-step returns         ``n_step``                      Sutton 1988; Hessel et al. 2018
dueling head           ``dueling``                     Wang et al. 2016, arXiv 1511.06581
C51 distribution       ``num_atoms``, ``v_max``        Bellemare et al. 2017, arXiv 1707.06887
noisy networks         ``noisy``, ``noisy_sigma0``     Fortunato et al. 2018, arXiv 1706.10295
prioritized replay     ``prioritized``, α, β           Schaul et al. 2016, arXiv 1511.05952
random-shift augment.  ``augment_pad``                 Kostrikov et al. 2020, arXiv 2004.13649
=====================  ==============================  =================================

DQN is all of them off but double Q; Rainbow (Hessel et al. 2018, arXiv 1710.02298) is all
on but augmentation; DER (van Hasselt et al. 2019, arXiv 1906.05243) is Rainbow with the
Atari 100k hyperparameters; DrQ(ε) (Agarwal et al. 2021, arXiv 2108.13264) is double DQN
with n = 10, a dueling head and augmentation. The training loops live in
:mod:`algorithms.dqn.loop`; each script's ``PRESETS`` pick the fields.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import optax

import environments
from core import augmentation, cli, losses, parallel, prioritized, replay, schedules
from core.networks import TORSOS, NetworkConfig, QNetwork, make_q_network
from core.types import EnvSpec, StepType, TimeStep, Transition, TrainState

Array = chex.Array


@dataclasses.dataclass(frozen=True)
class Config:
    """Value-based agent configuration; every field is a CLI flag (``--field-name value``)."""

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
    num_atoms: int = 0
    """Atoms of the C51 return distribution (51 in Rainbow); 0 learns scalar Q values."""
    v_max: float = 10.0
    """The C51 support is num_atoms evenly spaced atoms on [−v_max, v_max] (10 in Rainbow and DER)."""
    noisy: bool = False
    """Noisy linear layers in the head (Rainbow); evaluation uses their mean weights."""
    noisy_sigma0: float = 0.5
    """σ0 of the noisy layers: initial noise scale σ0/√fan_in (0.5 in Fortunato et al. and Rainbow)."""

    double_q: bool = True
    """Double Q-learning target (online argmax, target evaluation)."""
    gamma: float = 0.99
    """Discount factor γ."""
    n_step: int = 3
    """Multi-step return horizon n (1 in Nature DQN and Dopamine's DQN)."""
    huber: bool = True
    """Huber loss on the TD error (Nature DQN); otherwise the squared loss (scalar Q values only)."""
    reward_clip: bool = False
    """Learn from rewards clipped to [−1, 1] (Atari agents); returns are always reported unclipped."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    lr_final_fraction: float = 0.0
    """Learning rate decays linearly to this fraction of its initial value by the end of training (1 = constant)."""
    adam_eps: float = 1e-8
    """Adam ε (Dopamine uses 1.5e-4 on Atari)."""
    weight_decay: float = 0.0
    """L2 penalty λ·θ added to the gradient before clipping and Adam (optax.add_decayed_weights); 0 = off."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip; 0 disables it."""
    batch_size: int = 64
    """Transitions per gradient step (split across local devices)."""
    buffer_size: int = 50_000
    """Replay capacity in transitions."""
    prioritized: bool = False
    """Proportional prioritized replay (Schaul et al. 2016) with importance-sampling weights."""
    priority_exponent: float = 0.5
    """α: sampling probability ∝ priority^α (0.5 in Rainbow)."""
    importance_exponent: float = 0.4
    """β of the importance weights at the first gradient step (0.4 in Rainbow; Dopamine fixes 0.5)."""
    importance_exponent_final: float = 1.0
    """β reached linearly at the last gradient step (1 in Rainbow; set equal to importance_exponent to fix it)."""
    augment_pad: int = 0
    """Random-shift augmentation of sampled observations by ±pad pixels with edge padding (DrQ: 4 on 84×84); 0 = off."""
    learning_starts: int = 1_000
    """Environment steps of random acting before learning (min replay history)."""
    train_every: int = 1
    """Environment steps between learning calls (Nature DQN: 4)."""
    gradient_steps: int = 1
    """Gradient steps per learning call: the replay ratio is gradient_steps / train_every updates per env step."""
    target_update_every: int = 500
    """Gradient steps between hard target-network copies (1 = no separate target network, as DrQ(ε))."""
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
            dueling=self.dueling, num_atoms=self.num_atoms, channels_first=self.torso != "minatar",
            noisy=self.noisy, noisy_sigma0=self.noisy_sigma0,
        )

    @property
    def updates_per_call(self) -> int:
        """Gradient steps per agent step (one agent step = ``num_envs`` environment steps)."""
        return max(1, self.num_envs // self.train_every) * self.gradient_steps

    @property
    def replay_ratio(self) -> float:
        """Gradient steps per environment step."""
        return self.gradient_steps / self.train_every

    @property
    def calls_per_update(self) -> int:
        """Agent steps between gradient-step bursts."""
        return max(1, self.train_every // self.num_envs)

    @property
    def total_updates(self) -> int:
        """Gradient steps the run will take (the horizon of the lr and β schedules)."""
        return max(1, (self.total_steps - self.learning_starts) // self.train_every) * self.gradient_steps

    def validate(self) -> None:
        req = cli.require
        for name in ("total_steps", "num_envs", "batch_size", "buffer_size", "train_every",
                     "target_update_every", "eval_every", "eval_episodes", "log_every",
                     "checkpoint_every", "keep_checkpoints", "n_step", "eval_max_steps", "gradient_steps"):
            req(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        req(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        req(self.eps_decay_steps >= 0, "eps_decay_steps", "must be >= 0")
        req(0.0 <= self.gamma <= 1.0, "gamma", f"must lie in [0, 1], got {self.gamma}")
        req(self.learning_rate > 0, "learning_rate", "must be positive")
        req(0.0 <= self.lr_final_fraction <= 1.0, "lr_final_fraction", "must lie in [0, 1]")
        req(self.adam_eps > 0, "adam_eps", "must be positive")
        req(self.weight_decay >= 0, "weight_decay", f"must be >= 0 (0 disables it), got {self.weight_decay}")
        req(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)")
        for name in ("eps_start", "eps_end", "eval_epsilon"):
            req(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        req(self.num_atoms == 0 or self.num_atoms >= 2, "num_atoms",
            f"must be 0 (scalar Q values) or >= 2, got {self.num_atoms}")
        req(self.v_max > 0, "v_max", f"must be positive, got {self.v_max}")
        req(self.noisy_sigma0 >= 0, "noisy_sigma0", "must be >= 0")
        req(self.priority_exponent >= 0, "priority_exponent", "must be >= 0")
        for name in ("importance_exponent", "importance_exponent_final"):
            req(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        req(self.augment_pad >= 0, "augment_pad", "must be >= 0 (0 disables augmentation)")
        req(self.torso in TORSOS, "torso", f"unknown torso {self.torso!r}; choose one of {TORSOS}")
        req(self.augment_pad == 0 or self.torso in ("nature", "minatar", "impala"), "augment_pad",
            f"random shifts need image observations (a conv torso), not torso={self.torso!r}")
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


# --------------------------------------------------------------------------- pure pieces


class LoopState(NamedTuple):
    """Everything the agent step carries (checkpointed as one pytree)."""

    train: TrainState  # learner: params, target params, Adam state, grad steps, key
    replay: Any  # core.replay.ReplayState, or core.prioritized.PrioritizedState
    actor_key: Array  # [2] uint32 exploration key stream
    env_steps: Array  # [] int32 environment steps taken (all envs)
    calls: Array  # [] int32 agent steps taken
    episode_return: Array  # [B] float32 return of the running episodes
    returns_sum: Array  # [] float32 returns of episodes completed since the last log
    returns_count: Array  # [] int32 episodes completed since the last log
    loss_sum: Array  # [] float32 losses of gradient steps since the last log
    loss_count: Array  # [] int32 gradient steps since the last log


class LossOutput(NamedTuple):
    """Per-example loss terms of one batch."""

    loss: Array  # [B] float32 Huber/squared TD loss, or C51 cross-entropy
    priority: Array  # [B] float32 new replay priority before ^α: |δ|, or the cross-entropy


def epsilon_greedy(key: Array, q_values: Array, epsilon: Array) -> Array:
    """a = argmax_a Q(s, a) with probability 1 − ε, uniform otherwise. ``[B, A]`` → ``[B]``."""
    explore_key, action_key = jax.random.split(key)
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    random = jax.random.randint(action_key, greedy.shape, 0, q_values.shape[-1], jnp.int32)
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy)


def support(num_atoms: int, v_max: float) -> Optional[Array]:
    """The C51 atoms z ``[N]`` evenly spaced on [−v_max, v_max]; None for scalar Q values."""
    return jnp.linspace(-v_max, v_max, num_atoms) if num_atoms else None


def value_loss(
    params, target_params, batch: Transition, key: Array, *, apply: Callable, atoms: Optional[Array],
    double_q: bool, huber: bool, augment_pad: int, channels_first: bool,
) -> LossOutput:
    """Per-example (double, n-step, distributional) Q-learning loss of a replay batch.

    Scalar Q values (``atoms is None``), δ = r + γⁿ·q̄(s′, a*) − q(s, a) with a* the online
    argmax (double) or the target argmax, loss ℓ(δ) Huber or squared. C51 (``atoms`` ``[N]``),
    the cross-entropy −Σ_j Φ(r + γⁿ z)_j log p_j(s, a) to the projected target distribution
    (:func:`core.losses.categorical_double_q_loss`). ``r``, ``γⁿ`` come from the replay's
    n-step gather (``batch.reward``, ``batch.discount``).

    Args:
      params, target_params: online and target network parameters.
      batch: :class:`Transition` with ``[B]`` fields and ``[B, *O]`` observations.
      key: PRNG key for the networks' noise and the augmentation (unused when neither is on).
      apply: ``apply(params, observation, key=None)`` of :func:`core.networks.make_q_network`.
      atoms: the C51 support ``[N]``, or None.
      double_q: select a* with the online network.
      huber: Huber rather than squared loss (scalar values only).
      augment_pad: random-shift pad (DrQ), 0 = none; s and s′ get independent shifts.
      channels_first: image layout of the observations.

    Returns:
      :class:`LossOutput` ``[B]`` losses and priorities.
    """
    online_key, target_key, selector_key, shift_key, next_shift_key = jax.random.split(key, 5)
    observation, next_observation = batch.observation, batch.next_observation
    if augment_pad:
        observation = augmentation.random_shift(shift_key, observation, pad=augment_pad,
                                                channels_first=channels_first)
        next_observation = augmentation.random_shift(next_shift_key, next_observation, pad=augment_pad,
                                                     channels_first=channels_first)
    out_tm1 = apply(params, observation, key=online_key)
    out_t = apply(target_params, next_observation, key=target_key)
    out_selector = apply(params, next_observation, key=selector_key) if double_q else out_t
    if atoms is None:
        if double_q:
            td = jax.vmap(losses.double_q_td_error)(out_tm1, batch.action, batch.reward, batch.discount,
                                                    out_t, out_selector)
        else:
            td = jax.vmap(losses.q_learning_td_error)(out_tm1, batch.action, batch.reward, batch.discount, out_t)
        loss = losses.huber_loss(td) if huber else losses.squared_loss(td)
        return LossOutput(loss=loss, priority=jnp.abs(td))
    q_selector = losses.expected_q(out_selector, atoms)
    cross_entropy = jax.vmap(losses.categorical_double_q_loss, in_axes=(None, 0, 0, 0, 0, 0, 0))(
        atoms, out_tm1, batch.action, batch.reward, batch.discount, out_t, q_selector)
    return LossOutput(loss=cross_entropy, priority=cross_entropy)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    lr = optax.linear_schedule(cfg.learning_rate, cfg.learning_rate * cfg.lr_final_fraction, cfg.total_updates)
    chain = [optax.adam(lr, eps=cfg.adam_eps)]
    if cfg.max_grad_norm:
        chain.insert(0, optax.clip_by_global_norm(cfg.max_grad_norm))
    if cfg.weight_decay:
        # ReDo's weight-decay baseline: the L2 gradient λθ ahead of the optimiser (Sokar et al. 2023 code).
        chain.insert(0, optax.add_decayed_weights(cfg.weight_decay))
    return chain[0] if len(chain) == 1 else optax.chain(*chain)


AUX_LOSS_STREAM = 0xA5  # fold_in constant naming the PRNG stream of an auxiliary loss


def make_learner_update(cfg: Config, apply: Callable, optimizer, mesh, *,
                        aux_loss: Optional[Callable] = None) -> Callable:
    """``(train_state, batch, weight [B], key) -> (train_state, loss, priority [B])``, data-parallel.

    The loss is Σ_i w_i ℓ_i / B with the importance weights w (all ones for uniform replay).
    ``aux_loss(params, target_params, batch, key, value_loss) -> []`` replaces it with a
    paper's combined loss (e.g. a representation loss mixed with the value loss; MICo and
    KSMe); its key is a stream of its own, so the value loss keeps its random draws.
    """
    atoms = support(cfg.num_atoms, cfg.v_max)

    def update(params, target_params, opt_state, key, batch, weight):
        def loss_fn(p):
            out = value_loss(p, target_params, batch, key, apply=apply, atoms=atoms, double_q=cfg.double_q,
                             huber=cfg.huber, augment_pad=cfg.augment_pad,
                             channels_first=cfg.network.channels_first)
            loss = jnp.mean(weight * out.loss)
            if aux_loss is not None:
                loss = aux_loss(p, target_params, batch, jax.random.fold_in(key, AUX_LOSS_STREAM), loss)
            return loss, out.priority

        (loss, priority), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        grads, loss = parallel.pmean((grads, loss))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, parallel.all_gather(priority)

    sharded = parallel.data_parallel(update, mesh, num_replicated=4, num_sharded=2)

    def learner_update(train: TrainState, batch: Transition, weight: Array, key: Array):
        params, opt_state, loss, priority = sharded(train.params, train.target_params, train.opt_state, key,
                                                    batch, weight)
        step = train.step + 1
        target = optax.periodic_update(params, train.target_params, step, cfg.target_update_every)
        train = train._replace(params=params, target_params=target, opt_state=opt_state, step=step)
        return train, loss, priority

    return learner_update


class Agent(NamedTuple):
    """The pure functions of one configured value-based agent."""

    init: Callable  # key -> LoopState
    step: Callable  # (LoopState, TimeStep) -> (LoopState, actions [B]): observe, then maybe learn
    observe: Callable  # (LoopState, TimeStep) -> (LoopState, actions [B]): act and store
    should_learn: Callable  # (LoopState) -> bool []: whether this agent step ends with learning
    learn: Callable  # (LoopState) -> LoopState: `updates_per_call` gradient steps
    act_greedy: Callable  # (params, observation [B, *O], key, epsilon) -> actions [B], noise-free
    truncate: Callable  # (LoopState, TimeStep) -> LoopState: end running episodes (segment end)
    learner_update: Callable  # (TrainState, Transition, weight [B], key) -> (TrainState, loss, priority [B])
    sample: Callable  # (LoopState) -> (LoopState, Transition, indices, weight [B], loss key)
    network: QNetwork  # the value network's pure functions
    diagnostics: Optional[Callable] = None  # (LoopState) -> {name: [] float32}, logged with the metrics


def frame_stack_of(cfg: Config, spec: EnvSpec) -> int:
    """Frames per observation that the replay stores once and restacks (Atari's 4, else 1)."""
    image = cfg.torso in ("nature", "impala") and len(spec.observation_shape) == 3
    return spec.observation_shape[0] if image else 1


def make_agent(cfg: Config, spec: EnvSpec, mesh=None, *, network: Optional[QNetwork] = None,
               aux_loss: Optional[Callable] = None) -> Agent:
    """Builds the agent's pure functions for ``spec`` (jit them at the call site).

    ``network`` replaces the value network that ``cfg.network`` describes (a paper's own
    architecture, e.g. a mixture-of-experts head); it keeps :class:`QNetwork`'s contract.
    ``aux_loss`` combines the value loss with a paper's own term (see
    :func:`make_learner_update`).
    """
    network = network if network is not None else make_q_network(cfg.network, spec.num_actions)
    optimizer = make_optimizer(cfg)
    mesh = mesh if mesh is not None else parallel.local_mesh(cfg.num_devices or None)
    learner_update = make_learner_update(cfg, network.apply, optimizer, mesh, aux_loss=aux_loss)
    atoms = support(cfg.num_atoms, cfg.v_max)
    buffer_lib = prioritized if cfg.prioritized else replay

    def q_values(params, observation, key=None):
        out = network.apply(params, observation, key=key)
        return out if atoms is None else losses.expected_q(out, atoms)

    def init(key: Array) -> LoopState:
        net_key, learner_key, actor_key = jax.random.split(key, 3)
        dummy = jnp.zeros((1, *spec.observation_shape), spec.observation_dtype)
        params = network.init(net_key, dummy)
        # A distinct copy: the loop state is donated, and two leaves may not share a buffer.
        target_params = jax.tree.map(lambda x: x.copy(), params)
        train = TrainState(params=params, target_params=target_params, opt_state=optimizer.init(params),
                           step=jnp.zeros((), jnp.int32), key=learner_key)
        storage = dict(capacity=cfg.buffer_size, num_envs=cfg.num_envs, observation_shape=spec.observation_shape,
                       observation_dtype=spec.observation_dtype, frame_stack=frame_stack_of(cfg, spec))
        if cfg.prioritized:
            buffer = prioritized.init(**storage, max_n_step=cfg.n_step)
        else:
            buffer = replay.init(**storage)
        # Every leaf its own buffer: the loop state is donated to the compiled step.
        f32, i32 = (lambda: jnp.zeros((), jnp.float32)), (lambda: jnp.zeros((), jnp.int32))
        return LoopState(train=train, replay=buffer, actor_key=actor_key, env_steps=i32(), calls=i32(),
                         episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
                         returns_sum=f32(), returns_count=i32(), loss_sum=f32(), loss_count=i32())

    def act_greedy(params, observation, key, epsilon):
        """Evaluation policy: ε-greedy in the noise-free values (noisy layers at their means)."""
        return epsilon_greedy(key, q_values(params, observation), epsilon)

    def act(params, observation, key, epsilon):
        """Training policy: ε-greedy in the values of a fresh noise sample when ``noisy``."""
        if not cfg.noisy:
            return act_greedy(params, observation, key, epsilon)
        noise_key, key = jax.random.split(key)
        return epsilon_greedy(key, q_values(params, observation, noise_key), epsilon)

    def sample(state: LoopState):
        key, sample_key = jax.random.split(state.train.key)
        # The loss key derives from the sample key, so DQN (which needs none) keeps its streams.
        loss_key = jax.random.fold_in(sample_key, 1)
        if cfg.prioritized:
            beta = schedules.linear_schedule(state.train.step, start=cfg.importance_exponent,
                                             end=cfg.importance_exponent_final, duration=cfg.total_updates)
            out = prioritized.sample(state.replay, sample_key, batch_size=cfg.batch_size, n_step=cfg.n_step,
                                     gamma=cfg.gamma, beta=beta)
            batch, indices, weight = out.transition, out.indices, out.importance_weight
        else:
            batch, indices = replay.sample(state.replay, sample_key, batch_size=cfg.batch_size,
                                           n_step=cfg.n_step, gamma=cfg.gamma)
            weight = jnp.ones((cfg.batch_size,), jnp.float32)
        return state._replace(train=state.train._replace(key=key)), batch, indices, weight, loss_key

    def learn(state: LoopState) -> LoopState:
        def one_update(_, s: LoopState) -> LoopState:
            s, batch, indices, weight, loss_key = sample(s)
            train, loss, priority = learner_update(s.train, batch, weight, loss_key)
            buffer = s.replay
            if cfg.prioritized:
                buffer = prioritized.update_priorities(buffer, indices, priority, alpha=cfg.priority_exponent)
            return s._replace(train=train, replay=buffer, loss_sum=s.loss_sum + loss, loss_count=s.loss_count + 1)

        if cfg.updates_per_call <= 4:  # unrolled: convolutions inside loops are slow on CPU
            for i in range(cfg.updates_per_call):
                state = one_update(i, state)
            return state
        return jax.lax.fori_loop(0, cfg.updates_per_call, one_update, state)

    def learning_reward(timestep: TimeStep) -> TimeStep:
        """The time step as stored for learning: rewards clipped to [−1, 1] when ``reward_clip``."""
        return timestep._replace(reward=jnp.clip(timestep.reward, -1.0, 1.0)) if cfg.reward_clip else timestep

    def observe(state: LoopState, timestep: TimeStep):
        actor_key, key = jax.random.split(state.actor_key)
        epsilon = schedules.linear_schedule(state.env_steps, start=cfg.eps_start, end=cfg.eps_end,
                                            duration=cfg.eps_decay_steps, begin=cfg.learning_starts)
        actions = act(state.train.params, timestep.observation, key, epsilon)
        # Acting before `learning_starts` is uniform random (ε = eps_start = 1 by default).
        buffer = buffer_lib.add(state.replay, learning_reward(timestep), actions)
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
        return ready & buffer_lib.can_sample(state.replay, n_step=cfg.n_step)

    def step(state: LoopState, timestep: TimeStep):
        state, actions = observe(state, timestep)
        state = jax.lax.cond(should_learn(state), learn, lambda s: s, state)
        return state, actions

    def truncate(state: LoopState, timestep: TimeStep) -> LoopState:
        """Ends every running episode at ``timestep`` as a time-limit truncation (discount 1)."""
        truncated = timestep._replace(step_type=jnp.full_like(timestep.step_type, StepType.LAST))
        buffer = buffer_lib.add(state.replay, learning_reward(truncated), jnp.zeros((cfg.num_envs,), jnp.int32))
        return state._replace(replay=buffer, episode_return=jnp.zeros_like(state.episode_return))

    return Agent(init=init, step=step, observe=observe, should_learn=should_learn, learn=learn,
                 act_greedy=act_greedy, truncate=truncate, learner_update=learner_update, sample=sample,
                 network=network)


def with_learn(agent: Agent, learn: Callable) -> Agent:
    """The agent with ``learn`` replaced, and ``step`` rebuilt around it (for papers that extend learning)."""

    def step(state: LoopState, timestep: TimeStep):
        state, actions = agent.observe(state, timestep)
        state = jax.lax.cond(agent.should_learn(state), learn, lambda s: s, state)
        return state, actions

    return agent._replace(learn=learn, step=step)
