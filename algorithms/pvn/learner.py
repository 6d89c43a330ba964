"""The PVN learner as pure functions: state, one update (thresholds, then the successor-measure TD step), EMA target.

Shared by the offline pretraining script (:mod:`algorithms.pvn.pretrain`, batches from a
dataset on disk) and the gridworld study (:mod:`algorithms.pvn.gridworld`, batches drawn
on the device from the whole transition table).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from algorithms.pvn import networks, pvn

INDICATORS = ("random_network", "hash")


class LearnerConfig(NamedTuple):
    """Static hyperparameters of one PVN learner."""

    encoder: networks.EncoderConfig
    num_actions: int
    num_tasks: int = 100
    indicator: str = "random_network"
    proportion: float = 0.01
    hash_scale: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 1.05e-4
    adam_eps: float = 1.5e-4
    threshold_learning_rate: float = 1e-2
    ema_decay: float = 0.99
    warmup_updates: int = 0


class Batch(NamedTuple):
    """A batch of transitions."""

    observation: chex.Array  # [B, *O]
    action: chex.Array  # [B] int32
    discount: chex.Array  # [B] float32 (0 on termination)
    next_observation: chex.Array  # [B, *O]


class LearnerState(NamedTuple):
    params: Any  # PVN network (encoder + task heads)
    target_params: Any  # EMA of params
    opt_state: Any  # Adam state of params
    thresholds: chex.Array  # [T] float32 θ of the random-network indicators (unused for hash)
    threshold_opt_state: Any  # Adam state of the thresholds
    indicator_params: Any  # frozen random networks f (random_network) or pvn.HashParams (hash)
    step: chex.Array  # [] int32 updates done


class Metrics(NamedTuple):
    td_loss: chex.Array  # [] float32
    threshold_loss: chex.Array  # [] float32 pinball loss (0 for hash indicators)
    firing_rate: chex.Array  # [] float32 mean of r_i(x) over batch and tasks


class Learner(NamedTuple):
    init: Callable  # (key, example observation [1, *O]) -> LearnerState
    update: Callable  # (LearnerState, Batch) -> (LearnerState, Metrics)
    features: Callable  # (params, observation [B, *O]) -> [B, D]
    indicators: Callable  # (LearnerState, observation [B, *O]) -> [B, T]
    network: networks.PVNNetwork


def make_learner(cfg: LearnerConfig) -> Learner:
    if cfg.indicator not in INDICATORS:
        raise ValueError(f"unknown indicator {cfg.indicator!r}; choose one of {INDICATORS}")
    net = networks.make_pvn_network(cfg.encoder, num_actions=cfg.num_actions, num_tasks=cfg.num_tasks)
    random_net = networks.make_random_indicator_network(cfg.encoder, num_tasks=cfg.num_tasks)
    optimizer = optax.adam(cfg.learning_rate, eps=cfg.adam_eps)
    threshold_optimizer = optax.adam(cfg.threshold_learning_rate)
    num_bits = pvn.num_hash_bits(cfg.proportion)

    def init(key, observation):
        k_net, k_ind = jax.random.split(key)
        params = net.init(k_net, observation)
        if cfg.indicator == "random_network":
            indicator_params = random_net.init(k_ind, observation)
        else:
            indicator_params = pvn.hash_params(k_ind, num_tasks=cfg.num_tasks, input_size=observation[0].size)
        thresholds = jnp.zeros((cfg.num_tasks,), jnp.float32)
        return LearnerState(params=params, target_params=jax.tree.map(jnp.copy, params),
                            opt_state=optimizer.init(params), thresholds=thresholds,
                            threshold_opt_state=threshold_optimizer.init(thresholds),
                            indicator_params=indicator_params, step=jnp.zeros((), jnp.int32))

    def indicators(state: LearnerState, observation):
        if cfg.indicator == "hash":
            return jax.vmap(lambda o: pvn.hash_indicators(o, state.indicator_params, num_bits=num_bits,
                                                          scale=cfg.hash_scale))(observation)
        values = random_net.apply(state.indicator_params, observation)
        return jax.vmap(pvn.threshold_indicators, in_axes=(0, None))(values, state.thresholds)

    def update(state: LearnerState, batch: Batch):
        # 1. thresholds: one pinball-regression step (random-network indicators only).
        if cfg.indicator == "random_network":
            values = random_net.apply(state.indicator_params, batch.observation)
            threshold_loss, grad = jax.value_and_grad(
                lambda th: pvn.quantile_threshold_loss(values, th, proportion=cfg.proportion))(state.thresholds)
            updates, threshold_opt_state = threshold_optimizer.update(grad, state.threshold_opt_state)
            state = state._replace(thresholds=optax.apply_updates(state.thresholds, updates),
                                   threshold_opt_state=threshold_opt_state)
        else:
            threshold_loss = jnp.zeros((), jnp.float32)
        # 2. the successor-measure TD step (skipped during the threshold-only warm-up).
        r = indicators(state, batch.observation)
        q_target_t = net.task_values(state.target_params, batch.next_observation)

        def loss_fn(params):
            q_tm1 = net.task_values(params, batch.observation)
            per_example = jax.vmap(lambda q, a, ind, d, qt: pvn.successor_measure_td_loss(
                q, a, ind, d, qt, gamma=cfg.gamma))(q_tm1, batch.action, r, batch.discount, q_target_t)
            return jnp.mean(per_example)

        td_loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        active = state.step >= cfg.warmup_updates
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)  # noqa: E731
        params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
        target = keep(pvn.ema(params, state.target_params, decay=cfg.ema_decay), state.target_params)
        state = state._replace(params=params, target_params=target, opt_state=opt_state, step=state.step + 1)
        return state, Metrics(td_loss=td_loss, threshold_loss=threshold_loss, firing_rate=jnp.mean(r))

    return Learner(init=init, update=update, features=net.features, indicators=indicators, network=net)
