"""The BBF agent: the value-based agent of :mod:`algorithms.dqn.agent` with BBF's learner.

What is reused from the baseline agent: ε-greedy acting, storing steps in (prioritized)
replay, episode bookkeeping, the learning schedule (``should_learn``), truncation at
checkpoint segments, the training loops and ``main`` of :mod:`algorithms.dqn.loop`.
What BBF replaces (Schwarzer et al. 2023, arXiv 2305.19452):

* the network (:mod:`algorithms.bbf.networks`) and the loss: C51 double-Q with n-step
  returns for an annealed n and γ, plus 5 × SPR (:func:`algorithms.bbf.bbf.spr_loss`);
* sampling: n-step returns for the current (traced) n ≤ ``n_step_max`` and the K future
  observations, actions and episode masks SPR needs, from the same single-step storage;
* the optimiser (AdamW, no decay on biases), an EMA target (τ = 0.005) updated after every
  gradient step, acting with the target network;
* shrink-and-perturb resets every ``reset_every`` environment steps (the optimizer state
  re-initialised), restarting the n/γ annealing.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

import environments
from core import augmentation, losses, parallel, prioritized, replay, target
from core.types import EnvSpec, StepType, TrainState

from algorithms.bbf import bbf
from algorithms.bbf.networks import BBFNetwork, BBFNetworkConfig, make_bbf_network
from algorithms.dqn.agent import Agent, make_agent, support

Array = chex.Array
RESET_STREAM = 0x5E7  # fold_in constant naming the PRNG stream of the resets


class LoopState(NamedTuple):
    """The baseline agent's loop state plus BBF's reset bookkeeping (checkpointed as one pytree)."""

    train: TrainState  # params, EMA target params, AdamW state, grad steps, learner key
    replay: Any  # core.prioritized.PrioritizedState or core.replay.ReplayState
    actor_key: Array  # [2] uint32 exploration key stream
    env_steps: Array  # [] int32 environment steps taken (all envs)
    calls: Array  # [] int32 agent steps taken
    episode_return: Array  # [B] float32 return of the running episodes
    returns_sum: Array  # [] float32 returns of episodes completed since the last log
    returns_count: Array  # [] int32 episodes completed since the last log
    loss_sum: Array  # [] float32 losses of gradient steps since the last log
    loss_count: Array  # [] int32 gradient steps since the last log
    cycle_start: Array  # [] int32 gradient step of the last reset (0 before the first): annealing origin
    resets: Array  # [] int32 resets done


class Batch(NamedTuple):
    """One BBF training batch (``B`` examples, ``K`` SPR steps)."""

    observation: Array  # [B, *O] s_t
    action: Array  # [B] int32 a_t
    reward: Array  # [B] float32 n-step return for the current n, γ
    discount: Array  # [B] float32 γ^m ∏ d (0 past a termination)
    next_observation: Array  # [B, *O] s_{t+m}
    future_observation: Array  # [B, K, *O] s_{t+1..t+K}
    future_action: Array  # [B, K] int32 a_t..a_{t+K−1}
    future_mask: Array  # [B, K] float32 1 while s_{t+k} belongs to the episode of s_t


def network_config(cfg) -> BBFNetworkConfig:
    return BBFNetworkConfig(
        encoder=cfg.encoder, impala_width=cfg.impala_width, impala_channels=tuple(cfg.impala_channels),
        impala_blocks=cfg.impala_blocks, hidden_dim=cfg.hidden_dim, num_atoms=cfg.num_atoms,
        matmul_convs=cfg.matmul_convs, renormalize=cfg.renormalize, channels_first=channels_first(cfg))


def channels_first(cfg) -> bool:
    """envpool images are [C, H, W] (frame stack first); JAX environments (MinAtar) are [H, W, C]."""
    return not environments.is_jax_env(cfg.env_id)


def replay_horizon(cfg) -> int:
    """H: rows that must follow a starting slot (largest n the schedule reaches, and SPR's K)."""
    n_max = cfg.n_step_max if cfg.anneal_n else cfg.n_step
    return max(n_max, cfg.n_step, cfg.spr_steps)


def make_optimizer(cfg) -> optax.GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019) with decoupled decay on every non-1-D parameter."""
    tx = optax.adamw(cfg.learning_rate, b1=0.9, b2=0.999, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                     mask=bbf.weight_decay_mask)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), tx) if cfg.max_grad_norm else tx


def current_n_and_gamma(cfg, cycle_step: Array):
    """(n [] int32, γ [] float32) at ``cycle_step`` gradient steps after the last reset."""
    n = (bbf.update_horizon(cycle_step, n_max=cfg.n_step_max, n_min=cfg.n_step, duration=cfg.anneal_steps)
         if cfg.anneal_n else jnp.asarray(cfg.n_step, jnp.int32))
    gamma = (bbf.discount_schedule(cycle_step, gamma_min=cfg.gamma_min, gamma_max=cfg.gamma,
                                   duration=cfg.anneal_steps)
             if cfg.anneal_gamma else jnp.asarray(cfg.gamma, jnp.float32))
    return n, gamma


def gather_batch(storage: replay.ReplayState, indices: replay.Indices, *, horizon: int, spr_steps: int,
                 n: Array, gamma: Array) -> Batch:
    """n-step transitions for a traced n ≤ ``horizon`` and K = ``spr_steps`` future steps.

    The window of ``horizon`` rows after each start is gathered once; steps past ``n`` or
    past the episode end are masked (:func:`algorithms.bbf.bbf.n_step_return`), so one
    compiled program serves every n of the annealing schedule.
    """
    rows = storage.step_type.shape[0]
    row, env = indices.row, indices.env
    future = (row[:, None] + jnp.arange(1, horizon + 1, dtype=jnp.int32)[None, :]) % rows  # [B, H]
    step_type = storage.step_type[future, env[:, None]]
    last = step_type == StepType.LAST
    ret, discount, m = jax.vmap(lambda r, d, l: bbf.n_step_return(r, d, l, n=n, gamma=gamma))(
        storage.reward[future, env[:, None]], storage.discount[future, env[:, None]], last)
    # s_{t+k} is in s_t's episode while no LAST came before it (the LAST observation itself is).
    ended_before = jnp.concatenate([jnp.zeros_like(last[:, :1]), jnp.cumsum(last[:, :-1], axis=1) > 0], axis=1)
    offsets = jnp.arange(spr_steps, dtype=jnp.int32)
    future_observation = jnp.stack(
        [replay.stacked_observation(storage, (row + k) % rows, env) for k in range(1, spr_steps + 1)], axis=1)
    return Batch(
        observation=replay.stacked_observation(storage, row, env),
        action=storage.action[row, env],
        reward=ret,
        discount=discount,
        next_observation=replay.stacked_observation(storage, (row + m) % rows, env),
        future_observation=future_observation,
        future_action=storage.action[(row[:, None] + offsets[None, :]) % rows, env[:, None]],
        future_mask=(~ended_before[:, :spr_steps]).astype(jnp.float32),
    )


def augment(key: Array, images: Array, *, pad: int, intensity: float, channels_first: bool) -> Array:
    """Random shift by ±pad pixels, then intensity ×(1 + intensity·clip(N(0,1), −2, 2)) (SPR, BBF)."""
    shift_key, intensity_key = jax.random.split(key)
    images = augmentation.random_shift(shift_key, images, pad=pad, channels_first=channels_first)
    if intensity:
        images = augmentation.random_intensity(intensity_key, images, scale=intensity)
    return images


def augment_each(keys: Array, images: Array, *, pad: int, intensity: float, channels_first: bool) -> Array:
    """:func:`augment` with one key per image (``keys [B, 2]``, ``images [B, *O]``).

    Each image's draw depends on its own key only, so a batch split across devices
    (data-parallel learner) is augmented exactly as the whole batch on one device.
    """
    one = lambda k, x: augment(k, x[None], pad=pad, intensity=intensity, channels_first=channels_first)[0]  # noqa: E731
    return jax.vmap(one)(keys, images)


class LossOutput(NamedTuple):
    loss: Array  # [] float32 Σ_i w_i (CE_i + λ·SPR_i) / B
    cross_entropy: Array  # [B] float32 C51 loss (replay priorities)
    spr: Array  # [B] float32 SPR loss


def bbf_loss(params, target_params, batch: Batch, weight: Array, keys: Array, *, net: BBFNetwork,
             atoms: Array, spr_weight: float, augment_pad: int, intensity: float, channels_first: bool
             ) -> LossOutput:
    """L = Σ_i w_i [CE(Φ(r + γ^m z), p_θ(s, a)) + λ·SPR] / B (BBF Sec. 3; SPR Eq. 1–2; C51 double-Q).

    The target distribution uses the target network at a* = argmax of the online values
    (double Q), the SPR targets the target network's projections of s_{t+1..t+K}.
    ``keys [B, 2]``: one PRNG key per example (its augmentations), so that the loss of a
    batch shard is the loss of those examples in the whole batch.
    """
    aug = lambda k, x: augment_each(k, x, pad=augment_pad, intensity=intensity,  # noqa: E731
                                    channels_first=channels_first)
    split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)  # [B, 3, 2]
    obs_key, next_key, future_key = split[:, 0], split[:, 1], split[:, 2]
    observation, next_observation = aug(obs_key, batch.observation), aug(next_key, batch.next_observation)
    latent = net.encode(params, observation)
    logits = net.q_logits(params, latent)
    target_logits = net.q_network.apply(target_params, next_observation)
    selector = losses.expected_q(net.q_network.apply(params, next_observation), atoms)
    cross_entropy = jax.vmap(losses.categorical_double_q_loss, in_axes=(None, 0, 0, 0, 0, 0, 0))(
        atoms, logits, batch.action, batch.reward, batch.discount, target_logits, selector)
    if spr_weight:
        size, steps = batch.future_action.shape
        future = batch.future_observation.reshape(size * steps, *batch.future_observation.shape[2:])
        future_key = jax.vmap(lambda k: jax.random.split(k, steps))(future_key).reshape(size * steps, -1)
        target_projection = net.project(target_params, net.encode(target_params, aug(future_key, future)))
        target_projection = jax.lax.stop_gradient(target_projection).reshape(size, steps, -1)
        predicted = net.rollout(params, latent, batch.future_action)  # [B, K, h, w, C]
        prediction = net.predict(params, predicted.reshape(size * steps, *predicted.shape[2:]))
        spr = jax.vmap(bbf.spr_loss)(prediction.reshape(size, steps, -1), target_projection, batch.future_mask)
    else:
        spr = jnp.zeros_like(cross_entropy)
    loss = jnp.mean(weight * (cross_entropy + spr_weight * spr))
    return LossOutput(loss=loss, cross_entropy=cross_entropy, spr=spr)


def make_learner_update(cfg, net: BBFNetwork, optimizer, mesh=None) -> Callable:
    """``(train, batch, weight [B], key) -> (train, loss [], priority [B])``: one AdamW step, then the EMA target.

    With a ``mesh`` of D > 1 devices (:mod:`core.parallel`) the loss and gradients are
    computed data-parallel: the batch, its weights and its per-example keys are split
    across the devices, gradients and loss ``pmean``'d, the per-example C51 losses
    (priorities) all-gathered; the optimizer and EMA steps then run on the replicated
    result. Same update as on one device up to float reassociation.
    """
    atoms = support(cfg.num_atoms, cfg.v_max)
    first = channels_first(cfg)

    def gradients(params, target_params, batch: Batch, weight: Array, keys: Array):
        def loss_fn(p):
            out = bbf_loss(p, target_params, batch, weight, keys, net=net, atoms=atoms,
                           spr_weight=cfg.spr_weight, augment_pad=cfg.augment_pad, intensity=cfg.intensity_scale,
                           channels_first=first)
            return out.loss, out.cross_entropy

        (loss, cross_entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        grads, loss = parallel.pmean((grads, loss))
        return grads, loss, parallel.all_gather(cross_entropy)

    if mesh is not None and mesh.size > 1:
        gradients = parallel.data_parallel(gradients, mesh, num_replicated=2, num_sharded=3)

    def learner_update(train: TrainState, batch: Batch, weight: Array, key: Array):
        keys = jax.random.split(key, weight.shape[0])  # [B, 2] one augmentation key per example
        grads, loss, cross_entropy = gradients(train.params, train.target_params, batch, weight, keys)
        updates, opt_state = optimizer.update(grads, train.opt_state, train.params)
        params = optax.apply_updates(train.params, updates)
        target_params = target.ema_update(params, train.target_params, tau=cfg.target_tau)
        train = train._replace(params=params, target_params=target_params, opt_state=opt_state, step=train.step + 1)
        # Priorities: Dopamine's sqrt(loss) is (CE + ε)^α with α = priority_exponent = 0.5.
        return train, loss, cross_entropy

    return learner_update


RESET_KEEP = ("encoder", "transition_model")
"""Groups shrunk and perturbed at a reset; every other group (projection, predictor, head) is re-initialised."""


def reset_networks(train: TrainState, fresh_online, fresh_target, *, cfg, optimizer) -> TrainState:
    """BBF's reset of the learner (reference: ``reset_head/projection/target = True``, keys "encoder,transition_model").

        θ_g ← α θ_g + β θ₀_g (g ∈ encoder, transition_model),  θ_g ← θ₀_g otherwise;
        θ⁻ likewise with its own fresh θ₀⁻ when ``reset_target``;  optimizer state ← init(θ).
    """
    keep = dict(keep_keys=RESET_KEEP, shrink=cfg.shrink_factor, perturb=cfg.perturb_factor)
    params = bbf.shrink_and_perturb(train.params, fresh_online, **keep)
    target_params = bbf.shrink_and_perturb(train.target_params, fresh_target, **keep) if cfg.reset_target \
        else train.target_params
    return train._replace(params=params, target_params=target_params, opt_state=optimizer.init(params))


def make_bbf_agent(cfg, spec: EnvSpec, mesh=None) -> Agent:
    """The BBF agent's pure functions (same contract as :func:`algorithms.dqn.agent.make_agent`).

    ``mesh``: the devices of the data-parallel learner (default: ``cfg.num_devices`` local
    devices, 0 = all); one device runs the plain update.
    """
    net = make_bbf_network(network_config(cfg), spec.num_actions)
    mesh = mesh if mesh is not None else parallel.local_mesh(cfg.num_devices or None)
    base = make_agent(cfg, spec, mesh, network=net.q_network)
    optimizer = make_optimizer(cfg)
    learner_update = make_learner_update(cfg, net, optimizer, mesh)
    horizon = replay_horizon(cfg)
    first = channels_first(cfg)
    frame_stack = spec.observation_shape[0] if first and len(spec.observation_shape) == 3 else 1
    dummy_obs = jnp.zeros((1, *spec.observation_shape), spec.observation_dtype)
    dummy_actions = jnp.zeros((1, cfg.spr_steps), jnp.int32)

    def fresh_params(key):
        return net.init(key, dummy_obs, dummy_actions)

    def init(key: Array) -> LoopState:
        net_key, learner_key, actor_key = jax.random.split(key, 3)
        params = fresh_params(net_key)
        target_params = jax.tree.map(lambda x: x.copy(), params)  # distinct buffers (the state is donated)
        train = TrainState(params=params, target_params=target_params, opt_state=optimizer.init(params),
                           step=jnp.zeros((), jnp.int32), key=learner_key)
        storage = dict(capacity=cfg.buffer_size, num_envs=cfg.num_envs, observation_shape=spec.observation_shape,
                       observation_dtype=spec.observation_dtype, frame_stack=frame_stack)
        buffer = prioritized.init(**storage, max_n_step=horizon) if cfg.prioritized else replay.init(**storage)
        f32, i32 = (lambda: jnp.zeros((), jnp.float32)), (lambda: jnp.zeros((), jnp.int32))
        return LoopState(train=train, replay=buffer, actor_key=actor_key, env_steps=i32(), calls=i32(),
                         episode_return=jnp.zeros((cfg.num_envs,), jnp.float32), returns_sum=f32(),
                         returns_count=i32(), loss_sum=f32(), loss_count=i32(), cycle_start=i32(), resets=i32())

    def sample(state: LoopState):
        key, sample_key = jax.random.split(state.train.key)
        loss_key = jax.random.fold_in(sample_key, 1)
        n, gamma = current_n_and_gamma(cfg, state.train.step - state.cycle_start)
        if cfg.prioritized:
            # The transition prioritized.sample also builds is unused (dead code under jit).
            out = prioritized.sample(state.replay, sample_key, batch_size=cfg.batch_size, n_step=horizon,
                                     gamma=gamma, beta=cfg.importance_exponent)
            storage, indices, weight = state.replay.replay, out.indices, out.importance_weight
        else:
            storage = state.replay
            indices = replay.sample_indices(storage, sample_key, batch_size=cfg.batch_size, n_step=horizon)
            weight = jnp.ones((cfg.batch_size,), jnp.float32)
        batch = gather_batch(storage, indices, horizon=horizon, spr_steps=cfg.spr_steps, n=n, gamma=gamma)
        return state._replace(train=state.train._replace(key=key)), batch, indices, weight, loss_key

    def one_update(state: LoopState) -> LoopState:
        state, batch, indices, weight, loss_key = sample(state)
        train, loss, priority = learner_update(state.train, batch, weight, loss_key)
        buffer = state.replay
        if cfg.prioritized:
            buffer = prioritized.update_priorities(buffer, indices, priority, alpha=cfg.priority_exponent)
        return state._replace(train=train, replay=buffer, loss_sum=state.loss_sum + loss,
                              loss_count=state.loss_count + 1)

    def learn(state: LoopState) -> LoopState:
        """``updates_per_call`` gradient steps, grouped in one ``lax.scan`` (or unrolled)."""
        if cfg.scan_updates and cfg.updates_per_call > 1:
            return jax.lax.scan(lambda s, _: (one_update(s), None), state, None, length=cfg.updates_per_call)[0]
        for _ in range(cfg.updates_per_call):
            state = one_update(state)
        return state

    def reset(state: LoopState) -> LoopState:
        """Shrink-and-perturb of the online (and target) network, fresh optimizer state, annealing restarted."""
        key = jax.random.fold_in(jax.random.fold_in(state.train.key, RESET_STREAM), state.resets)
        online_key, target_key = jax.random.split(key)
        train = reset_networks(state.train, fresh_params(online_key), fresh_params(target_key), cfg=cfg,
                               optimizer=optimizer)
        return state._replace(train=train, cycle_start=state.train.step, resets=state.resets + 1)

    def reset_due(state: LoopState) -> Array:
        """True at the agent step that reaches a multiple of ``reset_every`` with room left to recover."""
        if not cfg.resets:
            return jnp.zeros((), bool)
        crossed = state.env_steps // cfg.reset_every > (state.env_steps - cfg.num_envs) // cfg.reset_every
        return crossed & (state.env_steps + cfg.reset_every <= cfg.no_resets_after)

    def observe(state: LoopState, timestep):
        """Acts (with the target network when ``act_with_target``) and stores; then maybe resets."""
        acting = state
        if cfg.act_with_target:
            acting = state._replace(train=state.train._replace(params=state.train.target_params))
        acting, actions = base.observe(acting, timestep)
        state = acting._replace(train=state.train)
        if cfg.resets:
            state = jax.lax.cond(reset_due(state), reset, lambda s: s, state)
        return state, actions

    def step(state: LoopState, timestep):
        state, actions = observe(state, timestep)
        state = jax.lax.cond(base.should_learn(state), learn, lambda s: s, state)
        return state, actions

    def diagnostics(state: LoopState) -> dict:
        n, gamma = current_n_and_gamma(cfg, state.train.step - state.cycle_start)
        return {"n_step": n.astype(jnp.float32), "gamma": gamma, "resets": state.resets.astype(jnp.float32)}

    return base._replace(init=init, step=step, observe=observe, learn=learn, learner_update=learner_update,
                         sample=sample, diagnostics=diagnostics)
