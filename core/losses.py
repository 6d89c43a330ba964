"""TD losses for value-based agents, written for one example (the caller vmaps).

Built on rlax where rlax has the piece; ``discount_t`` is the full bootstrap weight
(γ^n · ∏ dm-env discounts, 0 at termination), as :class:`core.types.Transition` carries it.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import rlax

Array = chex.Array


def huber_loss(x: Array, *, delta: float = 1.0) -> Array:
    """Huber loss ½x² for |x| ≤ δ, δ(|x| − ½δ) beyond (Mnih et al. 2015's error clipping)."""
    return rlax.huber_loss(x, delta)


def squared_loss(x: Array) -> Array:
    """½x²."""
    return 0.5 * jnp.square(x)


def double_q_td_error(
    q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t_value: Array, q_t_selector: Array
) -> Array:
    """Double Q-learning TD error (van Hasselt et al. 2016, arXiv 1509.06461).

    δ = r_t + discount_t · q_t_value[argmax_a q_t_selector[a]] − q_tm1[a_tm1]

    Args:
      q_tm1: ``[A]`` online values at s_{t-1}.
      a_tm1: ``[]`` int action taken at s_{t-1}.
      r_t: ``[]`` (n-step) reward.
      discount_t: ``[]`` bootstrap weight γ^n·d, 0 at termination.
      q_t_value: ``[A]`` target-network values at s_t (evaluation).
      q_t_selector: ``[A]`` online values at s_t (action selection).

    Returns:
      ``[]`` TD error, with the target under ``stop_gradient``.
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector], [1, 0, 0, 0, 1, 1])
    return rlax.double_q_learning(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector)


def q_learning_td_error(
    q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t: Array
) -> Array:
    """Q-learning TD error δ = r_t + discount_t · max_a q_t[a] − q_tm1[a_tm1] (Mnih et al. 2015)."""
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    return rlax.q_learning(q_tm1, a_tm1, r_t, discount_t, q_t)


def categorical_double_q_loss(
    atoms: Array,
    logits_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    logits_t: Array,
    q_t_selector: Array,
) -> Array:
    """C51 cross-entropy to the projected double-Q target (Bellemare et al. 2017, arXiv 1707.06887).

    Target distribution: atoms z_j shifted to r_t + discount_t·z_j with the probabilities of
    the target network at a* = argmax_a q_t_selector[a], projected onto the fixed support
    (:func:`categorical_projection`); loss = −Σ_j target_j log softmax(logits_tm1[a_tm1])_j.

    Args:
      atoms: ``[N]`` support z, evenly spaced.
      logits_tm1: ``[A, N]`` online logits at s_{t-1}.
      a_tm1, r_t, discount_t: ``[]`` as in :func:`double_q_td_error`.
      logits_t: ``[A, N]`` target-network logits at s_t.
      q_t_selector: ``[A]`` online expected values at s_t.

    Returns:
      ``[]`` cross-entropy loss.
    """
    chex.assert_rank([atoms, logits_tm1, logits_t, q_t_selector], [1, 2, 2, 1])
    return rlax.categorical_double_q_learning(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t, q_t_selector
    )


def categorical_projection(z_p: Array, probs: Array, z_q: Array) -> Array:
    """Projects a distribution (support ``z_p`` ``[N]``, ``probs`` ``[N]``) onto support ``z_q``.

    Each mass p_j at z_p[j] (clipped to [z_q[0], z_q[-1]]) is split between its two
    neighbouring atoms of z_q in proportion to proximity (Bellemare et al. 2017, Alg. 1).
    """
    return rlax.categorical_l2_project(z_p, probs, z_q)


def expected_q(logits: Array, atoms: Array) -> Array:
    """Mean action values Σ_j softmax(logits)_j z_j, ``[..., A, N]`` → ``[..., A]``."""
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * atoms, axis=-1)
