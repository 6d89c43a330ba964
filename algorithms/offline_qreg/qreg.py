"""On-policy (SARSA) Q-function regularisation for offline actor-critic, as pure functions.

Shi, Dadashi, Chi, Castro & Geist 2023, "Offline Reinforcement Learning with On-Policy
Q-Function Regularization", ECML-PKDD, arXiv 2307.13824: regularise towards the Q-function
of the behaviour policy, Q_sarsa, estimated SARSA-style from the dataset's (s, a, r, s', a')
tuples, instead of towards the behaviour policy itself. See README.md for the equation map
and for which forms are the paper's and which are this repository's reading of it.

Vendorable: imports only jax and chex. Batch-first arrays: ``[B]`` values, ``[B, A]``
actions; ``discount_t`` is the dm-env discount (0 at termination, 1 at a timeout).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def sarsa_target(r_t: Array, discount_t: Array, q_sarsa_t: Array, *, gamma: float) -> Array:
    """SARSA target of the behaviour policy's Q.

    Implements the on-policy (SARSA) evaluation of Shi et al. 2023, arXiv 2307.13824:
    y = r_t + γ · discount_t · Q̄_sarsa(s_t, a_t), where a_t is the *dataset's* next action
    (drawn by the behaviour policy), never a maximisation or the learned policy's action.

    Args:
      r_t: [B] rewards of the transitions into s_t.
      discount_t: [B] 0 where s_t is terminal, 1 otherwise (a timeout still bootstraps).
      q_sarsa_t: [B] target network Q̄_sarsa at (s_t, a_t) = (next observation, next action).
      gamma: discount γ.
    Returns:
      [B] targets, without gradient.
    """
    chex.assert_rank([r_t, discount_t, q_sarsa_t], 1)
    chex.assert_equal_shape([r_t, discount_t, q_sarsa_t])
    return jax.lax.stop_gradient(r_t + gamma * discount_t * q_sarsa_t)


def sarsa_loss(q_tm1: Array, target: Array) -> Array:
    """E_B[(Q_sarsa(s, a) − y)²]: the regression of Q_sarsa on its SARSA targets."""
    chex.assert_equal_shape([q_tm1, target])
    return jnp.mean(jnp.square(q_tm1 - jax.lax.stop_gradient(target)))


def q_scale(q: Array, *, eps: float = 1e-6) -> Array:
    """ν = sg(E_B|Q|): the Q-scale normaliser of TD3+BC (Fujimoto & Gu 2021, arXiv 2106.06860)."""
    return jax.lax.stop_gradient(jnp.mean(jnp.abs(q))) + eps


def critic_regularizer(q_pi: Array, q_sarsa_pi: Array) -> Array:
    """Qsarsa-AC's critic regulariser: E_B[ Σᵢ (Qᵢ(s, π̃(s)) − Q_sarsa(s, π̃(s)))² ] / n_heads.

    Pulls the learned critics towards the behaviour policy's Q at the current policy's
    actions π̃(s) (the caller stops the gradient through π̃). Q_sarsa is a fixed target:
    no gradient reaches it.

    Args:
      q_pi: [B, K] (K critic heads) or [B] critics at (s, π̃(s)).
      q_sarsa_pi: [B] Q_sarsa at the same pairs.
    Returns:
      [] the regulariser.
    """
    q_pi = q_pi if q_pi.ndim == 2 else q_pi[:, None]
    chex.assert_rank(q_sarsa_pi, 1)
    return jnp.mean(jnp.square(q_pi - jax.lax.stop_gradient(q_sarsa_pi)[:, None]))


def actor_regularizer(q_pi: Array, q_sarsa_pi: Array, *, scale: Array) -> Array:
    """Qsarsa-AC2's actor regulariser: E_B[(Q(s, π(s)) − Q_sarsa(s, π(s)))²] / ν².

    The gradient reaches only the policy (through the action π(s) in both terms); the caller
    evaluates the critic and Q_sarsa with frozen parameters. ν (:func:`q_scale`) makes it
    scale-free, like the normalised improvement term it regularises.
    """
    chex.assert_equal_shape([q_pi, q_sarsa_pi])
    return jnp.mean(jnp.square(q_pi - q_sarsa_pi)) / jnp.square(scale)


def normalized_improvement(q_pi: Array, *, scale: Array) -> Array:
    """−E_B[Q(s, π(s))] / ν: the policy improvement term with TD3+BC's scale normalisation."""
    chex.assert_rank(q_pi, 1)
    return -jnp.mean(q_pi) / scale


def behavior_cloning(pi_action: Array, data_action: Array) -> Array:
    """E_B[‖π(s) − a‖²] / A... as TD3+BC: the mean over batch and action dimensions of (π(s) − a)²."""
    chex.assert_equal_shape([pi_action, data_action])
    return jnp.mean(jnp.square(pi_action - data_action))


def td3_bc_actor_loss(q_pi: Array, pi_action: Array, data_action: Array, *, alpha: float) -> Array:
    """TD3+BC: −λ E[Q(s, π(s))] + E[(π(s) − a)²], λ = α / ν (Eq. 3 of Fujimoto & Gu 2021, arXiv 2106.06860)."""
    return alpha * normalized_improvement(q_pi, scale=q_scale(q_pi)) + behavior_cloning(pi_action, data_action)


def spearman(x: Array, y: Array) -> Array:
    """Spearman rank correlation of two [N] vectors (ties broken by order; fine for continuous values)."""
    chex.assert_rank([x, y], 1)
    rx = jnp.argsort(jnp.argsort(x)).astype(jnp.float32)
    ry = jnp.argsort(jnp.argsort(y)).astype(jnp.float32)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return jnp.sum(rx * ry) / jnp.sqrt(jnp.sum(rx * rx) * jnp.sum(ry * ry))
