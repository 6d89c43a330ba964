"""TD3's learner as pure functions over one state pytree, with its two losses as hooks.

``make_learner(net, ...)`` returns ``init(key, obs, act) -> TD3State`` and
``update(state, batch) -> (TD3State, metrics)`` (one gradient step: critics every step,
actor and Polyak-averaged targets every ``policy_delay`` steps, as in TD3), and
``update_many(state, batches)``: ``lax.scan`` of ``update`` over ``[K, B, ...]`` batches,
so K gradient steps cost one dispatch. The offline learners of
``algorithms/offline_qreg`` pass their own ``critic_loss_fn``/``actor_loss_fn``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from algorithms.td3 import td3
from algorithms.td3.networks import ActorCritic


class Batch(NamedTuple):
    """A batch of transitions (batch-first)."""

    observation: jax.Array  # [B, D] float32 s
    action: jax.Array  # [B, A] float32 a
    reward: jax.Array  # [B] float32 r
    discount: jax.Array  # [B] float32 0 at termination, 1 otherwise (timeouts bootstrap)
    next_observation: jax.Array  # [B, D] float32 s'
    next_action: jax.Array  # [B, A] float32 a' of the behaviour policy (SARSA targets)


class TD3State(NamedTuple):
    actor: dict  # actor parameters
    critic: dict  # twin critic parameters
    actor_target: dict  # Polyak-averaged actor
    critic_target: dict  # Polyak-averaged critics
    actor_opt: optax.OptState  # Adam state of the actor
    critic_opt: optax.OptState  # Adam state of the critics
    step: jax.Array  # [] int32 gradient steps taken
    key: jax.Array  # [2] uint32 the learner's key stream
    extra: dict  # frozen extra parameters a loss may read (e.g. Q_sarsa), {} for TD3


class Learner(NamedTuple):
    init: Callable  # (key, obs [1, D], act [1, A], extra=None) -> TD3State
    update: Callable  # (state, batch) -> (state, metrics)
    update_many: Callable  # (state, batches [K, B, ...]) -> (state, metrics [K])


def td3_critic_loss(net: ActorCritic, *, gamma: float, policy_noise: float, noise_clip: float):
    """TD3's critic loss hook: clipped double-Q target with target policy smoothing."""
    def loss(critic_params, state: TD3State, batch: Batch, key):
        next_action = td3.smoothed_target_action(key, net.actor(state.actor_target, batch.next_observation),
                                                 noise_std=policy_noise, noise_clip=noise_clip)
        q_next = net.critic(state.critic_target, batch.next_observation, next_action)
        target = td3.clipped_double_q_target(batch.reward, batch.discount, q_next[:, 0], q_next[:, 1], gamma=gamma)
        q = net.critic(critic_params, batch.observation, batch.action)
        return td3.critic_loss(q[:, 0], q[:, 1], target), {"q_mean": jnp.mean(q[:, 0])}
    return loss


def td3_actor_loss(net: ActorCritic):
    """TD3's actor loss hook: −E[Q₁(s, π(s))]."""
    def loss(actor_params, critic_params, state: TD3State, batch: Batch):
        q = net.critic(critic_params, batch.observation, net.actor(actor_params, batch.observation))
        return td3.actor_loss(q[:, 0]), {}
    return loss


def make_learner(net: ActorCritic, *, learning_rate: float, tau: float, policy_delay: int,
                 critic_loss_fn: Callable, actor_loss_fn: Callable,
                 actor_learning_rate: Optional[float] = None) -> Learner:
    actor_opt = optax.adam(actor_learning_rate or learning_rate)
    critic_opt = optax.adam(learning_rate)

    def init(key, obs, act, extra=None) -> TD3State:
        k_actor, k_critic, k_state = jax.random.split(key, 3)
        actor = net.actor_init(k_actor, obs)
        critic = net.critic_init(k_critic, obs, act)
        return TD3State(actor=actor, critic=critic, actor_target=jax.tree.map(jnp.copy, actor),
                        critic_target=jax.tree.map(jnp.copy, critic),
                        actor_opt=actor_opt.init(actor), critic_opt=critic_opt.init(critic),
                        step=jnp.zeros((), jnp.int32), key=k_state, extra=extra or {})

    def update(state: TD3State, batch: Batch):
        key, k_critic = jax.random.split(state.key)
        (c_loss, c_aux), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic, state, batch, k_critic)
        updates, c_opt = critic_opt.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, updates)
        state = state._replace(critic=critic, critic_opt=c_opt, key=key)

        def actor_step(state: TD3State):
            (a_loss, a_aux), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
                state.actor, state.critic, state, batch)
            updates, a_opt = actor_opt.update(grads, state.actor_opt, state.actor)
            actor = optax.apply_updates(state.actor, updates)
            return state._replace(actor=actor, actor_opt=a_opt,
                                  actor_target=td3.polyak(state.actor_target, actor, tau=tau),
                                  critic_target=td3.polyak(state.critic_target, state.critic, tau=tau)), a_loss

        def skip(state: TD3State):
            return state, jnp.float32(jnp.nan)

        state, a_loss = jax.lax.cond(state.step % policy_delay == 0, actor_step, skip, state)
        state = state._replace(step=state.step + 1)
        return state, {"critic_loss": c_loss, "actor_loss": a_loss, **c_aux}

    def update_many(state: TD3State, batches: Batch):
        return jax.lax.scan(update, state, batches)

    return Learner(init=init, update=update, update_many=update_many)
