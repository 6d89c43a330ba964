"""KSMe and MICo representation losses for deep RL agents, over a batch of transitions.

Implements the sampled losses of Castro, Kastner, Panangaden & Rowland 2023, "A Kernel
Perspective on Behavioural Metrics for Markov Decision Processes", TMLR, arXiv 2310.19804
(KSMe), and of Castro, Kastner, Panangaden & Rowland 2021, "MICo: Improved representations
via sampling-based state similarity for Markov decision processes", NeurIPS, arXiv
2106.08229 (MICo), for a batch of B transitions (x_i, r_i, x'_i) from replay.

Both losses compare every pair (i, j) of the batch (B² pairs, the authors' "squarify"
trick): an *online* quantity between the online representation φ(x_i) and the *target*
network's representation φ̄(x_j), regressed with a Huber loss onto a stop-gradient target
built from the rewards and the target representations of the next states:

    KSMe:  k̂(φ(x_i), φ̄(x_j))  ←  1 − ½|r_i − r_j| + γⁿ k̂(φ̄(x'_i), φ̄(x'_j)),
    MICo:  ψ(φ(x_i), φ̄(x_j))  ←  |r_i − r_j| + γⁿ ψ(φ̄(x'_i), φ̄(x'_j)),

with k̂ a similarity (dot product, or cosine) and ψ(a, b) = ½(‖a‖² + ‖b‖²) + β·∠(a, b)
MICo's diffuse distance (angle ∠ in radians). The agent's loss mixes either one with the
value loss: (1 − α)·ℓ_TD + α·ℓ_repr (α = 0.01 in the papers' agents).

Rewards: the kernel 1 − ½|r − r'| is positive semi-definite only for rewards in [0, 1];
``reward_min``/``reward_max`` map rewards affinely onto [0, 1] first (Atari's clipped
rewards: −1 and 1; MinAtar: 0 and 1), and clip there.

This module imports nothing of the repository (copy it into your own code). Functions take
whole batches (``[B, D]`` representations, ``[B]`` rewards), since every loss couples all
pairs of the batch.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array

SIMILARITIES = ("dot", "cosine")
_EPS = 1e-9


def _check(online: Array, target: Array, target_next: Array, reward: Array) -> None:
    chex.assert_rank([online, target, target_next, reward], [2, 2, 2, 1])
    chex.assert_equal_shape([online, target, target_next])
    chex.assert_equal_shape_prefix([online, reward], 1)


def huber(x: Array, delta: float = 1.0) -> Array:
    """Elementwise Huber loss ½x² for |x| ≤ δ, δ(|x| − ½δ) beyond."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    return 0.5 * quadratic ** 2 + delta * (abs_x - quadratic)


def normalized_reward(reward: Array, *, reward_min: float, reward_max: float) -> Array:
    """``[B]`` rewards mapped affinely from [reward_min, reward_max] onto [0, 1], clipped."""
    return jnp.clip((reward - reward_min) / (reward_max - reward_min), 0.0, 1.0)


def similarity_matrix(first: Array, second: Array, *, similarity: str = "dot") -> Array:
    """``[B, B]`` k̂(first_i, second_j): dot product ⟨a, b⟩ or cosine ⟨a, b⟩/(‖a‖‖b‖).

    Args:
      first: ``[B, D]`` representations.
      second: ``[B, D]`` representations.
      similarity: "dot" or "cosine".
    """
    chex.assert_rank([first, second], 2)
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of {SIMILARITIES}")
    if similarity == "cosine":
        first = first / (jnp.linalg.norm(first, axis=-1, keepdims=True) + _EPS)
        second = second / (jnp.linalg.norm(second, axis=-1, keepdims=True) + _EPS)
    return first @ second.T


def ksme_target(
    target_next: Array, reward: Array, *, cumulative_gamma: float, similarity: str = "dot",
    normalize: bool = False, reward_min: float = 0.0, reward_max: float = 1.0,
) -> Array:
    """``[B, B]`` the sampled KSMe target T_ij = 1 − ½|r_i − r_j| + γⁿ k̂(φ̄(x'_i), φ̄(x'_j)).

    Implements the sampled KSMe operator of Castro et al. 2023, arXiv 2310.19804 (§ on the
    deep-RL losses), whose fixed point in expectation is the KSMe kernel
    k(x, y) = 1 − ½|r(x) − r(y)| + γ E k(X', Y'). With ``normalize``, the reward kernel is
    scaled by (1 − γⁿ): T_ij = (1 − γⁿ)(1 − ½|r_i − r_j|) + γⁿ k̂(...), the kernel (1 − γ)k,
    whose values lie in [0, 1] and so can be matched by a cosine similarity.

    Args:
      target_next: ``[B, D]`` target-network representations φ̄(x'_i) of the next states.
      reward: ``[B]`` rewards r_i (n-step returns with replay's n-step gather).
      cumulative_gamma: γⁿ.
      similarity: k̂, "dot" or "cosine".
      normalize: scale the reward kernel by (1 − γⁿ) (see above).
      reward_min, reward_max: the reward range mapped onto [0, 1].

    Returns:
      ``[B, B]`` targets, without gradient.
    """
    chex.assert_rank([target_next, reward], [2, 1])
    r = normalized_reward(reward, reward_min=reward_min, reward_max=reward_max)
    reward_kernel = 1.0 - 0.5 * jnp.abs(r[:, None] - r[None, :])
    if normalize:
        reward_kernel = (1.0 - cumulative_gamma) * reward_kernel
    next_kernel = similarity_matrix(target_next, target_next, similarity=similarity)
    return jax.lax.stop_gradient(reward_kernel + cumulative_gamma * next_kernel)


def ksme_loss(
    online: Array, target: Array, target_next: Array, reward: Array, *, cumulative_gamma: float,
    similarity: str = "dot", normalize: bool = False, reward_min: float = 0.0, reward_max: float = 1.0,
) -> Array:
    """``[]`` KSMe representation loss: mean over the B² pairs of Huber(k̂(φ(x_i), φ̄(x_j)) − T_ij).

    Implements the KSMe loss of Castro et al. 2023, arXiv 2310.19804 (§ on the deep-RL
    losses), trained like MICo's (online representation of the first state of each pair,
    target representation of the second, Huber loss, stop-gradient target):

        L = 1/B² Σ_{i,j} Huber( k̂(φ(x_i), φ̄(x_j)) − [1 − ½|r_i − r_j| + γⁿ k̂(φ̄(x'_i), φ̄(x'_j))] ).

    Args:
      online: ``[B, D]`` online representations φ(x_i) (gradients flow here only).
      target: ``[B, D]`` target-network representations φ̄(x_i) of the same states.
      target_next: ``[B, D]`` target-network representations φ̄(x'_i) of the next states.
      reward: ``[B]`` rewards.
      cumulative_gamma: γⁿ.
      similarity: "dot" (default) or "cosine".
      normalize: (1 − γⁿ)-scaled reward kernel (see :func:`ksme_target`).
      reward_min, reward_max: the reward range mapped onto [0, 1].

    Notes:
      Terminal next states are not masked: as in MICo's code the discount is the constant
      γⁿ, an episode's end being just another state.
    """
    _check(online, target, target_next, reward)
    estimate = similarity_matrix(online, jax.lax.stop_gradient(target), similarity=similarity)
    goal = ksme_target(target_next, reward, cumulative_gamma=cumulative_gamma, similarity=similarity,
                       normalize=normalize, reward_min=reward_min, reward_max=reward_max)
    return jnp.mean(huber(estimate - goal))


def angular_distance(first: Array, second: Array) -> Array:
    """``[B, B]`` ∠(first_i, second_j) = arccos of the cosine similarity, in [0, π] (atan2 form)."""
    cosine = jnp.clip(similarity_matrix(first, second, similarity="cosine"), -1.0, 1.0)
    # sqrt(max(., eps)): finite gradients when the two vectors are parallel.
    return jnp.arctan2(jnp.sqrt(jnp.maximum(1.0 - cosine ** 2, _EPS)), cosine)


def mico_distance_matrix(first: Array, second: Array, *, beta: float = 0.1) -> Array:
    """``[B, B]`` MICo's learned diffuse distance ψ(a, b) = ½(‖a‖² + ‖b‖²) + β·∠(a, b).

    Implements the representation distance of Castro et al. 2021, arXiv 2106.08229 (§ on
    the MICo loss), with the angular distance ∠ between the two vectors.
    """
    chex.assert_rank([first, second], 2)
    norms = 0.5 * (jnp.sum(first ** 2, -1)[:, None] + jnp.sum(second ** 2, -1)[None, :])
    return norms + beta * angular_distance(first, second)


def mico_target(target_next: Array, reward: Array, *, cumulative_gamma: float, beta: float = 0.1,
                reward_min: float = 0.0, reward_max: float = 1.0) -> Array:
    """``[B, B]`` the sampled MICo target |r_i − r_j| + γⁿ ψ(φ̄(x'_i), φ̄(x'_j)), without gradient."""
    chex.assert_rank([target_next, reward], [2, 1])
    r = normalized_reward(reward, reward_min=reward_min, reward_max=reward_max)
    next_distance = mico_distance_matrix(target_next, target_next, beta=beta)
    return jax.lax.stop_gradient(jnp.abs(r[:, None] - r[None, :]) + cumulative_gamma * next_distance)


def mico_loss(
    online: Array, target: Array, target_next: Array, reward: Array, *, cumulative_gamma: float,
    beta: float = 0.1, reward_min: float = 0.0, reward_max: float = 1.0,
) -> Array:
    """``[]`` MICo loss: mean over the B² pairs of Huber(ψ(φ(x_i), φ̄(x_j)) − (|r_i − r_j| + γⁿ ψ̄'_ij)).

    Implements the MICo loss of Castro et al. 2021, arXiv 2106.08229, Eq. on L_MICo:

        L = 1/B² Σ_{i,j} Huber( ψ(φ(x_i), φ̄(x_j)) − [|r_i − r_j| + γⁿ ψ(φ̄(x'_i), φ̄(x'_j))] ).

    Args as :func:`ksme_loss`; ``beta`` weighs the angular term of ψ (0.1 in the paper).
    Rewards are mapped onto [0, 1] like KSMe's, so that both losses see the same |r_i − r_j|.
    """
    _check(online, target, target_next, reward)
    estimate = mico_distance_matrix(online, jax.lax.stop_gradient(target), beta=beta)
    goal = mico_target(target_next, reward, cumulative_gamma=cumulative_gamma, beta=beta,
                       reward_min=reward_min, reward_max=reward_max)
    return jnp.mean(huber(estimate - goal))


def mixed_loss(value_loss: Array, representation_loss: Array, *, weight: float) -> Array:
    """(1 − α)·ℓ_TD + α·ℓ_repr, how MICo and KSMe agents combine the two (α = ``weight``)."""
    return (1.0 - weight) * value_loss + weight * representation_loss
