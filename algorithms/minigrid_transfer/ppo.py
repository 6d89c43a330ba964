"""PPO's math as pure functions: generalized advantage estimation and the clipped loss.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv 1707.06347; GAE from
Schulman et al. 2016, arXiv 1506.02438. The agent of the Minigrid/Miniworld transfer case
study (Chevalier-Boisvert et al. 2023, arXiv 2306.13831) is trained with it. Written for one
trajectory / one batch of samples (callers vmap); imports nothing of this repository.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


def generalized_advantage_estimation(value_t: jax.Array, bootstrap_value_t: jax.Array, reward_t: jax.Array,
                                     discount_t: jax.Array, lambda_t: jax.Array) -> jax.Array:
    """GAE advantages of one time-major trajectory.

    Implements Eq. (11)–(16) of Schulman et al. 2016 (arXiv 1506.02438) with dm-env episode
    semantics: δ_t = r_t + discount_t · bootstrap_value_t − value_t and
    A_t = δ_t + discount_t · lambda_t · A_{t+1} (A_T = 0).

    Args:
      value_t: ``[T]`` V(s_t), the value of the observation the action was taken from.
      bootstrap_value_t: ``[T]`` V(s_{t+1}) of the observation the transition led to — the
        episode's last observation when it ended at t (not the next episode's first).
      reward_t: ``[T]`` r_t.
      discount_t: ``[T]`` γ, or 0 when the episode terminated at t (1·γ on truncation).
      lambda_t: ``[T]`` λ, or 0 when an episode ended (terminated or truncated) at t, so that
        advantages do not leak across episodes.

    Returns:
      ``[T]`` advantages A_t; the value targets are A_t + value_t.
    """
    chex.assert_rank([value_t, bootstrap_value_t, reward_t, discount_t, lambda_t], 1)
    chex.assert_equal_shape([value_t, bootstrap_value_t, reward_t, discount_t, lambda_t])
    delta_t = reward_t + discount_t * bootstrap_value_t - value_t

    def backwards(advantage_tp1, inputs):
        delta, discount, lam = inputs
        advantage = delta + discount * lam * advantage_tp1
        return advantage, advantage

    _, advantage_t = jax.lax.scan(backwards, jnp.zeros((), delta_t.dtype), (delta_t, discount_t, lambda_t),
                                  reverse=True)
    return advantage_t


class PPOLoss(NamedTuple):
    total: jax.Array  # [] policy + vf_coef · value − ent_coef · entropy
    policy: jax.Array  # [] clipped surrogate loss (to minimise)
    value: jax.Array  # [] 0.5 · mean squared error of the value
    entropy: jax.Array  # [] mean policy entropy
    approx_kl: jax.Array  # [] mean (r − 1) − log r, an estimate of KL(old ‖ new)
    clip_fraction: jax.Array  # [] share of samples with |r − 1| > ε


def clipped_surrogate_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, *,
                           epsilon: float) -> jax.Array:
    """PPO's clipped policy loss (to minimise), mean over the batch.

    Implements Eq. (7) of Schulman et al. 2017 (arXiv 1707.06347):
    L = −mean min(r·A, clip(r, 1 − ε, 1 + ε)·A) with r = exp(log_prob − old_log_prob).

    Args:
      log_prob: ``[B]`` log π(a|s) under the parameters being optimised.
      old_log_prob: ``[B]`` log π_old(a|s) when the data was collected.
      advantage: ``[B]`` advantage estimates (normalised by the caller, if wanted).
      epsilon: ε.
    """
    chex.assert_rank([log_prob, old_log_prob, advantage], 1)
    ratio = jnp.exp(log_prob - old_log_prob)
    return -jnp.mean(jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon) * advantage))


def ppo_loss(logits: jax.Array, value: jax.Array, action: jax.Array, old_log_prob: jax.Array,
             advantage: jax.Array, value_target: jax.Array, *, epsilon: float, vf_coef: float,
             ent_coef: float, normalize_advantage: bool = True) -> PPOLoss:
    """The PPO objective of a minibatch: clipped surrogate + vf_coef·value loss − ent_coef·entropy.

    Implements Eq. (9) of Schulman et al. 2017 (arXiv 1707.06347):
    L = L_clip + c₁·½(V(s) − V_target)² − c₂·H[π(·|s)].

    Args:
      logits: ``[B, A]`` action logits of the current parameters.
      value: ``[B]`` V(s) of the current parameters.
      action: ``[B]`` int actions taken.
      old_log_prob: ``[B]`` their log-probabilities when collected.
      advantage: ``[B]`` GAE advantages.
      value_target: ``[B]`` A + V_old.
      epsilon, vf_coef, ent_coef: ε, c₁, c₂.
      normalize_advantage: standardise the advantages over the minibatch (as SB3 and
        PureJaxRL do).

    Notes:
      The value loss is not clipped (Stable-Baselines3's default, which the paper used).
    """
    chex.assert_rank([logits, value, action, old_log_prob, advantage, value_target], [2, 1, 1, 1, 1, 1])
    log_pi = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_pi, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    if normalize_advantage:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    policy = clipped_surrogate_loss(log_prob, old_log_prob, advantage, epsilon=epsilon)
    value_loss = 0.5 * jnp.mean(jnp.square(value - value_target))
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1))
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    return PPOLoss(total=policy + vf_coef * value_loss - ent_coef * entropy, policy=policy, value=value_loss,
                   entropy=entropy, approx_kl=jnp.mean((ratio - 1.0) - log_ratio),
                   clip_fraction=jnp.mean((jnp.abs(ratio - 1.0) > epsilon).astype(jnp.float32)))
