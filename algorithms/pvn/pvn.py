"""Proto-value networks: indicator auxiliary tasks and the successor-measure TD rule.

Farebrother, Greaves, Agarwal, Le Lan, Goroshin, Castro & Bellemare 2023, "Proto-Value
Networks: Scaling Representation Learning with Auxiliary Tasks", ICLR, arXiv 2304.12567.

Each auxiliary task i is an indicator r_i(x) = 𝟙[x ∈ S_i] of a set of observations, and
its value under the uniform policy is a column of the successor measure:

    Q_i(x, a) = r_i(x) + γ E_{x' ~ P(·|x, a)} [ (1/|A|) Σ_a' Q_i(x', a') ],

so V_i = (1/|A|) Σ_a Q_i(·, a) = (I − γ P^unif)⁻¹ r_i, whatever policy collected the data
(the rule is off-policy: the mean over a' replaces the behaviour policy's next action).

Two kinds of indicators (both evaluated on the current observation x):
  * random-network indicators: r_i(x) = 𝟙[f_i(x) > θ_i] with f_i a frozen randomly
    initialised network and θ_i fitted by quantile (pinball) regression so that r_i
    fires on a proportion p of the data;
  * multiply–shift hash indicators: r_i(x) = 𝟙[h_i(x) = 0] with h_i(x) the top m bits of
    (Σ_j a_ij x_j + b_i) mod 2³², which fires on ≈ 2⁻ᵐ of the distinct observations.

This module imports nothing of this repository: copy it into your own code. Functions
are written for one example (vmap over a batch) unless they say otherwise.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


# --------------------------------------------------------------------------- hash indicators


class HashParams(NamedTuple):
    """Random parameters of T multiply–shift hashes over D integer inputs."""

    multipliers: Array  # [T, D] uint32, odd
    offsets: Array  # [T] uint32


def hash_params(key: Array, *, num_tasks: int, input_size: int) -> HashParams:
    """Draws T vector multiply–shift hashes (odd multipliers, uniform offsets) over D inputs."""
    k_a, k_b = jax.random.split(key)
    a = jax.random.bits(k_a, (num_tasks, input_size), jnp.uint32) | jnp.uint32(1)
    b = jax.random.bits(k_b, (num_tasks,), jnp.uint32)
    return HashParams(multipliers=a, offsets=b)


def num_hash_bits(proportion: float) -> int:
    """m = round(log2(1/p)): the hash indicator fires on 2⁻ᵐ ≈ p of the observations."""
    if not 0.0 < proportion < 1.0:
        raise ValueError(f"proportion must lie in (0, 1), got {proportion}")
    return max(1, min(31, int(round(math.log2(1.0 / proportion)))))


def hash_codes(observation: Array, params: HashParams, *, num_bits: int, scale: float = 1.0) -> Array:
    """h_i(x) = ((Σ_j a_ij ⌊scale·x_j⌉ + b_i) mod 2³²) >> (32 − m), the hash of every task.

    Implements the multiply–shift hash indicators of arXiv 2304.12567 (Sec. 4).

    Args:
      observation: ``[*O]`` raw observation (integers, or floats rounded after ``scale``).
      params: :class:`HashParams` with D = prod(O).
      num_bits: m, bits kept (buckets 0 … 2ᵐ − 1).
      scale: multiplies the observation before rounding (255 for pixels in [0, 1]).

    Returns:
      ``[T]`` uint32 buckets in [0, 2ᵐ).
    """
    x = jnp.ravel(observation)
    chex.assert_shape(params.multipliers, (None, x.shape[0]))
    x = jnp.round(x.astype(jnp.float32) * scale).astype(jnp.int32).astype(jnp.uint32)
    # uint32 arithmetic wraps modulo 2³².
    h = jnp.sum(params.multipliers * x[None, :], axis=-1, dtype=jnp.uint32) + params.offsets
    return h >> jnp.uint32(32 - num_bits)


def hash_indicators(observation: Array, params: HashParams, *, num_bits: int, scale: float = 1.0) -> Array:
    """r_i(x) = 𝟙[h_i(x) = 0]: ``[T]`` float32 indicators, each firing on ≈ 2⁻ᵐ of observations."""
    return (hash_codes(observation, params, num_bits=num_bits, scale=scale) == 0).astype(jnp.float32)


# --------------------------------------------------------------------------- random-network indicators


def threshold_indicators(values: Array, thresholds: Array) -> Array:
    """r_i(x) = 𝟙[f_i(x) > θ_i] for the frozen random outputs ``values`` ``[T]``; float32 ``[T]``."""
    chex.assert_equal_shape([values, thresholds])
    return (values > thresholds).astype(jnp.float32)


def quantile_threshold_loss(values: Array, thresholds: Array, *, proportion: float) -> Array:
    """Pinball loss whose minimiser θ_i is the (1 − p)-quantile of f_i(x) over the data.

    Implements the threshold regression of the random-network indicators of
    arXiv 2304.12567: with τ = 1 − p and u = f_i(x) − θ_i,

        ℓ(θ) = (1/B) Σ_b Σ_i ρ_τ(u_bi),   ρ_τ(u) = u · (τ − 𝟙[u < 0]),

    whose gradient in θ_i vanishes where P(f_i(x) ≤ θ_i) = τ, i.e. the indicator
    𝟙[f_i(x) > θ_i] fires on a proportion p of the batch distribution.

    Args:
      values: ``[B, T]`` outputs of the frozen random networks (a batch; not vmapped).
      thresholds: ``[T]`` learned thresholds θ.
      proportion: p, the firing rate, in (0, 1).

    Returns:
      ``[]`` the loss (summed over tasks, mean over the batch); gradients flow to θ only.
    """
    chex.assert_rank([values, thresholds], [2, 1])
    tau = 1.0 - proportion
    u = jax.lax.stop_gradient(values) - thresholds[None, :]
    return jnp.mean(jnp.sum(u * (tau - (u < 0).astype(u.dtype)), axis=-1))


# --------------------------------------------------------------------------- the learning rule


def successor_measure_target(indicator_tm1: Array, discount_t: Array, q_target_t: Array, *, gamma: float) -> Array:
    """y_i = r_i(x) + γ·d'·(1/|A|) Σ_a' Q̄_i(x', a'): ``[T]`` targets of the uniform-policy successor measure.

    Args:
      indicator_tm1: ``[T]`` r_i(x) of the observation the action was taken in.
      discount_t: ``[]`` episode discount of the transition (0 on termination).
      q_target_t: ``[A, T]`` target-network values Q̄(x', ·) of the next observation.
      gamma: γ.
    """
    chex.assert_rank([indicator_tm1, discount_t, q_target_t], [1, 0, 2])
    return indicator_tm1 + gamma * discount_t * jnp.mean(q_target_t, axis=0)


def successor_measure_td_loss(q_tm1: Array, a_tm1: Array, indicator_tm1: Array, discount_t: Array,
                              q_target_t: Array, *, gamma: float) -> Array:
    """Mean over tasks of ½ (Q_i(x, a) − y_i)², y_i the mean-over-actions target (stop-gradient).

    Implements the off-policy learning rule of proto-value networks (arXiv 2304.12567,
    Sec. 4): the TD fixed point is Q_i(x, a) = r_i(x) + γ Σ_x' P(x'|x, a) V_i(x') with
    V_i = (I − γ P^unif)⁻¹ r_i, the uniform policy's successor measure applied to r_i,
    for any behaviour policy that covers the state–action pairs.

    Args:
      q_tm1: ``[A, T]`` online values Q(x, ·) of every task.
      a_tm1: ``[]`` int action taken in x.
      indicator_tm1: ``[T]`` r_i(x).
      discount_t: ``[]`` 0 on termination, 1 otherwise.
      q_target_t: ``[A, T]`` target-network values Q̄(x', ·).
      gamma: γ.

    Returns:
      ``[]`` the loss of this transition.
    """
    chex.assert_rank([q_tm1, a_tm1], [2, 0])
    target = jax.lax.stop_gradient(successor_measure_target(indicator_tm1, discount_t, q_target_t, gamma=gamma))
    return 0.5 * jnp.mean(jnp.square(q_tm1[a_tm1] - target))


def ema(online, target, *, decay: float):
    """θ̄ ← decay·θ̄ + (1 − decay)·θ, leaf by leaf (the paper's EMA target network, decay 0.99)."""
    return jax.tree.map(lambda o, t: decay * t + (1.0 - decay) * o, online, target)


# --------------------------------------------------------------------------- exact quantities (tabular)


def successor_measure(transition_matrix: Array, *, gamma: float) -> Array:
    """Ψ = (I − γ P)⁻¹ for a state-to-state transition matrix ``[S, S]`` (e.g. P^unif)."""
    chex.assert_rank(transition_matrix, 2)
    s = transition_matrix.shape[0]
    return jnp.linalg.solve(jnp.eye(s, dtype=transition_matrix.dtype) - gamma * transition_matrix,
                            jnp.eye(s, dtype=transition_matrix.dtype))


def principal_angles(a: Array, b: Array) -> Array:
    """Principal angles (radians, ascending) between the column spans of ``a`` ``[S, k]`` and ``b`` ``[S, l]``.

    cos θ_j are the singular values of Q_aᵀ Q_b with Q_a, Q_b orthonormal bases of the spans
    (Björck & Golub 1973); min(rank a, rank b) angles. Column rank is taken numerically.
    """
    chex.assert_rank([a, b], 2)

    def basis(m):
        u, s, _ = jnp.linalg.svd(m, full_matrices=False)
        return u, s > s[0] * max(m.shape) * jnp.finfo(m.dtype).eps * 10

    qa, ka = basis(a)
    qb, kb = basis(b)
    cos = jnp.linalg.svd((qa * ka).T @ (qb * kb), compute_uv=False)
    rank = jnp.minimum(jnp.sum(ka), jnp.sum(kb))
    angles = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    return jnp.where(jnp.arange(angles.shape[0]) < rank, angles, jnp.nan)
