"""TD3's losses as pure functions (Fujimoto, van Hoof & Meger 2018, arXiv 1802.09477).

Vendorable: imports only jax. Batch-first arrays (``[B]`` values, ``[B, A]`` actions);
``discount_t`` is the dm-env discount (0 on termination, 1 on truncation), never ``1 − done``.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def clipped_double_q_target(r_t: Array, discount_t: Array, q1_t: Array, q2_t: Array, *, gamma: float) -> Array:
    """Clipped double-Q target of TD3.

    Implements Eq. (10) of Fujimoto et al. 2018, arXiv 1802.09477:
    y = r_t + γ · discount_t · min(Q'₁(s_t, ã_t), Q'₂(s_t, ã_t)), without gradient.

    Args:
      r_t: [B] rewards of the transitions into s_t.
      discount_t: [B] 0 where s_t is terminal, 1 otherwise (timeouts bootstrap).
      q1_t, q2_t: [B] the target critics at (s_t, ã_t).
      gamma: discount factor γ.
    Returns:
      [B] targets (stop-gradient).
    """
    chex.assert_rank([r_t, discount_t, q1_t, q2_t], 1)
    return jax.lax.stop_gradient(r_t + gamma * discount_t * jnp.minimum(q1_t, q2_t))


def smoothed_target_action(key, target_action_t: Array, *, noise_std: float, noise_clip: float) -> Array:
    """Target policy smoothing: ã = clip(π'(s) + clip(ε, −c, c), −1, 1), ε ~ N(0, σ²) (Eq. 14, arXiv 1802.09477)."""
    noise = jnp.clip(noise_std * jax.random.normal(key, target_action_t.shape), -noise_clip, noise_clip)
    return jnp.clip(target_action_t + noise, -1.0, 1.0)


def critic_loss(q1_tm1: Array, q2_tm1: Array, target: Array) -> Array:
    """Σᵢ E_B[(Qᵢ(s, a) − y)²] over the twin critics (TD3's critic loss)."""
    chex.assert_equal_shape([q1_tm1, q2_tm1, target])
    return jnp.mean(jnp.square(q1_tm1 - target)) + jnp.mean(jnp.square(q2_tm1 - target))


def actor_loss(q1_pi: Array) -> Array:
    """Deterministic policy gradient objective −E_B[Q₁(s, π(s))] (TD3 actor)."""
    chex.assert_rank(q1_pi, 1)
    return -jnp.mean(q1_pi)


def polyak(target_params, online_params, *, tau: float):
    """θ' ← τ θ + (1 − τ) θ' for every leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target_params, online_params)
