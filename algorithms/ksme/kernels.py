"""KSMe and MICo, computed exactly for one finite MDP under a fixed policy.

Implements the tabular part of Castro, Kastner, Panangaden & Rowland 2023, "A Kernel
Perspective on Behavioural Metrics for Markov Decision Processes", TMLR, arXiv 2310.19804
(the sections on MICo and KSMe).

A policy π turns a finite MDP into a Markov chain with transition matrix P = P^π ``[S, S]``
(row x is P(·|x)) and rewards r = r^π ``[S]`` in [0, 1]. The paper's kernel is the fixed point

    k(x, y) = 1 − ½|r(x) − r(y)| + γ Σ_{x', y'} P(x'|x) P(y'|y) k(x', y'),

whose first term, the reward kernel k_R(x, y) = 1 − ½|r(x) − r(y)|, is positive
semi-definite for rewards in [0, 1]; so is k = Σ_t γ^t P^t k_R (P^t)ᵀ. Its induced distance

    d_KSMe(x, y) = k(x, x) + k(y, y) − 2 k(x, y) = ‖φ(x) − φ(y)‖²

equals the reduced MICo distance ΠU(x, y) = U(x, y) − ½U(x, x) − ½U(y, y), because
k = 1/(1 − γ) − U/2 where U is the MICo distance of Castro et al. 2021 (arXiv 2106.08229),

    U(x, y) = |r(x) − r(y)| + γ Σ_{x', y'} P(x'|x) P(y'|y) U(x', y').

Both fixed points are linear: on the product space, vec(U) = (I − γ P⊗P)⁻¹ vec(|r_i − r_j|),
a solve of size S² (memory O(S⁴); meant for small MDPs). The π-bisimulation metric, which
needs one optimal-transport problem per pair of states, is here too (numpy/scipy, not jittable).

Every JAX function works for one MDP (vmap over a batch of MDPs) and keeps the input dtype;
use float64 (``jax.enable_x64``) for the 1e-8-level identities. ``gamma`` may be a Python
float or a traced scalar (so it can be vmapped).

This module imports nothing of the repository (copy it into your own code).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

Array = chex.Array


def _check_mdp(P: Array, r: Array) -> int:
    chex.assert_rank([P, r], [2, 1])
    num_states = r.shape[0]
    chex.assert_shape(P, (num_states, num_states))
    return num_states


def reward_differences(r: Array) -> Array:
    """``[S, S]`` |r(x) − r(y)| for every pair of states; ``r`` is ``[S]``."""
    chex.assert_rank(r, 1)
    return jnp.abs(r[:, None] - r[None, :])


def _product_space_solve(P: Array, c: Array, gamma) -> Array:
    """Solves X = c + γ P X Pᵀ for ``[S, S]`` X: vec(X) = (I − γ P⊗P)⁻¹ vec(c) (row-major vec)."""
    num_states = P.shape[0]
    # (P⊗P)[(x, y), (x', y')] = P(x'|x) P(y'|y), matching the row-major c.reshape(-1).
    system = jnp.eye(num_states * num_states, dtype=P.dtype) - gamma * jnp.kron(P, P)
    return jnp.linalg.solve(system, c.reshape(-1)).reshape(num_states, num_states)


def mico_distance(P: Array, r: Array, *, gamma: float) -> Array:
    """MICo distance U^π, solved exactly as a linear system on the product space.

    Implements the MICo fixed point (§ on MICo/KSMe) of Castro et al. 2023, arXiv 2310.19804,
    introduced by Castro et al. 2021, arXiv 2106.08229:

        U(x, y) = |r(x) − r(y)| + γ Σ_{x', y'} P(x'|x) P(y'|y) U(x', y'),
        vec(U) = (I − γ P⊗P)⁻¹ vec(|r_i − r_j|).

    U is a diffuse metric: symmetric, non-negative and triangle-inequality-satisfying, but
    U(x, x) > 0 as soon as γ > 0 and P(·|x) charges two states with different rewards.

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π (row x is P(·|x)).
      r: ``[S]`` rewards r^π.
      gamma: discount γ in [0, 1).

    Returns:
      ``[S, S]`` U, symmetric.
    """
    _check_mdp(P, r)
    return _product_space_solve(P, reward_differences(r).astype(P.dtype), gamma)


def mico_fixed_point(P: Array, r: Array, *, gamma: float, num_iterations: int) -> Array:
    """MICo distance by ``num_iterations`` applications of the MICo operator, from U_0 = 0.

    Implements the MICo operator (§ on MICo/KSMe) of Castro et al. 2023, arXiv 2310.19804:

        U_{k+1} = |r_i − r_j| + γ P U_k Pᵀ,   ‖U_K − U‖_∞ ≤ γ^K ‖U‖_∞.

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π.
      r: ``[S]`` rewards r^π.
      gamma: discount γ in [0, 1).
      num_iterations: K, the number of operator applications (static).

    Returns:
      ``[S, S]`` U_K.
    """
    _check_mdp(P, r)
    delta_r = reward_differences(r).astype(P.dtype)
    body = lambda _, u: delta_r + gamma * P @ u @ P.T
    return jax.lax.fori_loop(0, num_iterations, body, jnp.zeros_like(delta_r))


def ksme_kernel(P: Array, r: Array, *, gamma: float) -> Array:
    """KSMe kernel k^π, solved exactly as a linear system on the product space.

    Implements the KSMe kernel fixed point (§ on MICo/KSMe) of Castro et al. 2023,
    arXiv 2310.19804:

        k(x, y) = 1 − ½|r(x) − r(y)| + γ Σ_{x', y'} P(x'|x) P(y'|y) k(x', y'),
        vec(k) = (I − γ P⊗P)⁻¹ vec(1 − ½|r_i − r_j|)  (= 1/(1 − γ) − U/2).

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π.
      r: ``[S]`` rewards r^π, in [0, 1] (else k need not be positive semi-definite).
      gamma: discount γ in [0, 1).

    Returns:
      ``[S, S]`` k, symmetric positive semi-definite for rewards in [0, 1].
    """
    _check_mdp(P, r)
    reward_kernel = 1.0 - 0.5 * reward_differences(r).astype(P.dtype)
    return _product_space_solve(P, reward_kernel, gamma)


def ksme_distance(k: Array) -> Array:
    """KSMe distance induced by a kernel matrix: d(x, y) = k(x, x) + k(y, y) − 2 k(x, y).

    Implements the kernel-induced distance (§ on MICo/KSMe) of Castro et al. 2023,
    arXiv 2310.19804. For a positive semi-definite k with features φ, d(x, y) = ‖φ(x) − φ(y)‖²
    (a squared RKHS distance: a semimetric of negative type; √d is a pseudometric).

    Args:
      k: ``[S, S]`` symmetric kernel matrix (e.g. ``ksme_kernel``).

    Returns:
      ``[S, S]`` d, symmetric with zero diagonal.
    """
    chex.assert_rank(k, 2)
    chex.assert_shape(k, (k.shape[0], k.shape[0]))
    diag = jnp.diagonal(k)
    return diag[:, None] + diag[None, :] - 2.0 * k


def reduced_mico(U: Array) -> Array:
    """Reduced MICo ΠU(x, y) = U(x, y) − ½U(x, x) − ½U(y, y); equals d_KSMe.

    Implements the reduction Π of a diffuse metric (§ on MICo/KSMe; the authors' code,
    google-research ``ksme/random_mdps/mico.py``, points to §5) of Castro et al. 2023,
    arXiv 2310.19804. Since k = 1/(1 − γ) − U/2, ``ksme_distance(k) == reduced_mico(U)``.

    Args:
      U: ``[S, S]`` MICo distance (``mico_distance``).

    Returns:
      ``[S, S]`` ΠU, zero on the diagonal.
    """
    chex.assert_rank(U, 2)
    chex.assert_shape(U, (U.shape[0], U.shape[0]))
    diag = jnp.diagonal(U)
    return U - 0.5 * diag[:, None] - 0.5 * diag[None, :]


def kantorovich_distance(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> float:
    """W1(cost)(p, q) = min_{coupling π of p and q} Σ_{x', y'} π(x', y') cost(x', y'), exactly.

    Solved as a linear program with ``scipy.optimize.linprog(method="highs")``
    (numpy/scipy, not jittable).

    Args:
      p: ``[S]`` probability vector.
      q: ``[S]`` probability vector.
      cost: ``[S, S]`` non-negative ground cost.

    Returns:
      The optimal transport cost, a Python float.
    """
    p, q, cost = (np.asarray(a, np.float64) for a in (p, q, cost))
    num_states = p.shape[0]
    if p.shape != (num_states,) or q.shape != (num_states,) or cost.shape != (num_states, num_states):
        raise ValueError(f"p {p.shape}, q {q.shape} and cost {cost.shape} must be [S], [S] and [S, S]")
    # Coupling π flattened row-major: π[x', y'] at x' * S + y'.
    marginals = np.zeros((2 * num_states, num_states * num_states))
    for i in range(num_states):
        marginals[i, i * num_states:(i + 1) * num_states] = 1.0  # Σ_{y'} π(i, y') = p(i)
        marginals[num_states + i, i::num_states] = 1.0  # Σ_{x'} π(x', i) = q(i)
    result = optimize.linprog(cost.reshape(-1), A_eq=marginals, b_eq=np.concatenate([p, q]),
                              bounds=(0, None), method="highs")
    if result.status != 0:
        raise RuntimeError(f"linprog failed: {result.message}")
    return float(result.fun)


class BisimulationMetric(NamedTuple):
    """On-policy π-bisimulation metric and how its fixed-point iteration ended."""

    distance: np.ndarray  # [S, S] float64: d_n, symmetric, zero diagonal
    num_iterations: int  # n, operator applications made
    converged: bool  # whether max |d_n − d_{n−1}| ≤ tol was reached


def bisimulation_metric(
    P: np.ndarray, r: np.ndarray, *, gamma: float, num_iterations: int = 1000, tol: float = 1e-10
) -> BisimulationMetric:
    """On-policy π-bisimulation metric by fixed-point iteration with exact W1 (numpy/scipy).

    Implements the π-bisimulation metric that Castro et al. 2023, arXiv 2310.19804 compare
    KSMe with (§ on MICo/KSMe; defined in Castro 2020, arXiv 1911.09291):

        d(x, y) = |r(x) − r(y)| + γ W1(d)(P(·|x), P(·|y)),

    iterated from d_0 = 0, each W1 solved exactly as a linear program
    (``kantorovich_distance``). The iterates increase to the fixed point d* and
    ‖d_n − d*‖_∞ ≤ γ/(1 − γ) ‖d_n − d_{n−1}‖_∞. Not jittable: plain numpy and
    ``scipy.optimize.linprog``, S(S − 1)/2 linear programs of S² variables per iteration.

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π.
      r: ``[S]`` rewards r^π.
      gamma: discount γ in [0, 1).
      num_iterations: most operator applications.
      tol: stop once max |d_n − d_{n−1}| ≤ tol.

    Returns:
      ``BisimulationMetric(distance, num_iterations, converged)``.
    """
    P, r = np.asarray(P, np.float64), np.asarray(r, np.float64)
    chex.assert_rank([P, r], [2, 1])
    num_states = r.shape[0]
    chex.assert_shape(P, (num_states, num_states))
    delta_r = np.abs(r[:, None] - r[None, :])
    d = np.zeros((num_states, num_states))
    for n in range(1, num_iterations + 1):
        new = np.zeros_like(d)
        for x in range(num_states):
            for y in range(x + 1, num_states):
                new[x, y] = new[y, x] = delta_r[x, y] + gamma * kantorovich_distance(P[x], P[y], d)
        change = np.max(np.abs(new - d))
        d = new
        if change <= tol:
            return BisimulationMetric(distance=d, num_iterations=n, converged=True)
    return BisimulationMetric(distance=d, num_iterations=num_iterations, converged=False)


def kernel_embedding(k: Array, *, num_features: Optional[int] = None) -> Array:
    """Features φ with ⟨φ(x), φ(y)⟩ = k(x, y), hence ‖φ(x) − φ(y)‖² = d_KSMe(x, y).

    Implements a Euclidean embedding of the KSMe distance (§ on embeddings of Castro et
    al. 2023, arXiv 2310.19804, who prove low-distortion finite-dimensional embeddings; for a
    finite MDP the eigendecomposition is exact in S dimensions):

        k = Q diag(λ) Qᵀ,   φ(x) = (Q[x, i] √max(λ_i, 0))_i.

    With ``num_features`` = D < S only the D largest eigenvalues are kept (the best rank-D
    approximation of k); :func:`embedding_distortion` measures what that costs.
    Eigenvalues below zero (round-off of a positive semi-definite k) are clipped to 0.

    Args:
      k: ``[S, S]`` symmetric positive semi-definite kernel matrix.
      num_features: D, the embedding's dimension (static); None keeps all S.

    Returns:
      ``[S, D]`` φ, row x the features of state x (columns by increasing eigenvalue).
    """
    chex.assert_rank(k, 2)
    chex.assert_shape(k, (k.shape[0], k.shape[0]))
    eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (k + k.T))
    phi = eigenvectors * jnp.sqrt(jnp.maximum(eigenvalues, 0.0))[None, :]
    return phi if num_features is None else phi[:, k.shape[0] - num_features:]


def embedding_distortion(phi: Array, d: Array) -> Array:
    """``[]`` max_{x, y} |‖φ(x) − φ(y)‖² − d(x, y)|.

    Args:
      phi: ``[S, D]`` features, one row per state.
      d: ``[S, S]`` target (squared) distances.

    Returns:
      ``[]`` the largest absolute error over all pairs.
    """
    chex.assert_rank([phi, d], 2)
    chex.assert_shape(d, (phi.shape[0], phi.shape[0]))
    squared = jnp.sum(jnp.square(phi[:, None, :] - phi[None, :, :]), axis=-1)
    return jnp.max(jnp.abs(squared - d))


def value_function(P: Array, r: Array, *, gamma: float) -> Array:
    """``[S]`` V^π = (I − γ P)⁻¹ r, the value of the policy (Bellman equation V = r + γ P V)."""
    num_states = _check_mdp(P, r)
    return jnp.linalg.solve(jnp.eye(num_states, dtype=P.dtype) - gamma * P, r.astype(P.dtype))


def value_difference_bound(k: Array, *, gamma: float) -> Array:
    """Upper bound on |V^π(x) − V^π(y)| by the KSMe distance alone: √(d_KSMe(x, y) / (1 − γ)).

    Bounds value differences by the KSMe metric, as announced by Castro et al. 2023,
    arXiv 2310.19804 (§ on value-function bounds). The inequality implemented here is

        |V^π(x) − V^π(y)| ≤ √( d_KSMe(x, y) / (1 − γ) ),   for rewards in [0, 1],

    derived (not copied from the paper, whose constant may differ) by Cauchy–Schwarz in the
    RKHS of k. For a, b in [0, 1], 1 − ½|a − b| = ½ + ½ min(a, b) + ½ min(1 − a, 1 − b), so
    k_R has features φ_R(x) = (1/√2, 𝟙[0, r(x)]/√2, 𝟙(r(x), 1]/√2) in ℝ ⊕ L²[0,1] ⊕ L²[0,1],
    and w = (0, 𝟙/√2, −𝟙/√2), with ‖w‖ = 1, gives r(x) = ⟨w, φ_R(x)⟩ + ½. The KSMe kernel
    k = Σ_t γ^t P^t k_R (P^t)ᵀ has features φ(x) = ⊕_t γ^{t/2} E[φ_R(X_t) | X_0 = x], so
    V^π(x) = Σ_t γ^t E[r(X_t)] = ⟨W, φ(x)⟩ + 1/(2(1 − γ)) with W = ⊕_t γ^{t/2} w,
    ‖W‖² = 1/(1 − γ), and |V(x) − V(y)| ≤ ‖W‖ ‖φ(x) − φ(y)‖ = √(d_KSMe(x, y)/(1 − γ)).
    The constant is attained (γ = 0, r(x) = 0, r(y) = 1). Note that d_KSMe itself, without the
    square root, does not bound value differences (see the tests' two-state example).

    Args:
      k: ``[S, S]`` KSMe kernel (``ksme_kernel``) of an MDP with rewards in [0, 1].
      gamma: the discount γ in [0, 1) that k was computed with.

    Returns:
      ``[S, S]`` the bound for every pair of states.
    """
    d = ksme_distance(k)
    return jnp.sqrt(jnp.maximum(d, 0.0) / (1.0 - gamma))


class ValueBoundCheck(NamedTuple):
    """Value differences against two upper bounds, for every pair of states."""

    value_difference: Array  # [S, S] |V^π(x) − V^π(y)|
    ksme_bound: Array  # [S, S] √(d_KSMe(x, y)/(1 − γ)) (value_difference_bound)
    mico_bound: Array  # [S, S] U(x, y) = 2/(1 − γ) − 2 k(x, y), the MICo bound
    ksme_holds: Array  # [] bool: value_difference ≤ ksme_bound + atol everywhere
    mico_holds: Array  # [] bool: value_difference ≤ mico_bound + atol everywhere


def check_value_difference_bound(P: Array, r: Array, *, gamma: float, atol: float = 1e-8) -> ValueBoundCheck:
    """Checks |V^π(x) − V^π(y)| against the KSMe bound and the MICo bound.

    The KSMe bound is ``value_difference_bound``: |V(x) − V(y)| ≤ √(d_KSMe(x, y)/(1 − γ))
    (derived here by Cauchy–Schwarz in the RKHS of k, rewards in [0, 1]; see there). The
    MICo bound is |V(x) − V(y)| ≤ U(x, y) (Castro et al. 2021, arXiv 2106.08229, by
    induction: |V_{n+1}(x) − V_{n+1}(y)| ≤ |r(x) − r(y)| + γ Σ P(x'|x) P(y'|y) |V_n(x') − V_n(y')|),
    written with the KSMe kernel as U = 2/(1 − γ) − 2k, i.e. U(x, y) = d_KSMe(x, y)
    + ½U(x, x) + ½U(y, y) (Castro et al. 2023, arXiv 2310.19804, § on MICo/KSMe).

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π.
      r: ``[S]`` rewards r^π in [0, 1].
      gamma: discount γ in [0, 1).
      atol: slack allowed for round-off (1e-8 suits float64; float32 needs about 1e-4, as
        U = 2/(1 − γ) − 2k cancels digits when γ is close to 1).

    Returns:
      ``ValueBoundCheck``.
    """
    _check_mdp(P, r)
    values = value_function(P, r, gamma=gamma)
    value_difference = jnp.abs(values[:, None] - values[None, :])
    k = ksme_kernel(P, r, gamma=gamma)
    ksme_bound = value_difference_bound(k, gamma=gamma)
    mico_bound = 2.0 / (1.0 - gamma) - 2.0 * k
    return ValueBoundCheck(
        value_difference=value_difference,
        ksme_bound=ksme_bound,
        mico_bound=mico_bound,
        ksme_holds=jnp.all(value_difference <= ksme_bound + atol),
        mico_holds=jnp.all(value_difference <= mico_bound + atol),
    )


class FixedPoint(NamedTuple):
    """A fixed point reached by iterating its operator from zero, and how the iteration ended."""

    value: Array  # [S, S] the last iterate
    num_iterations: Array  # [] int32 operator applications made
    converged: Array  # [] bool: max |X_n − X_{n−1}| ≤ tol was reached within max_iterations


def iterate_to_tolerance(P: Array, c: Array, *, gamma: float, tol: float, max_iterations: int) -> FixedPoint:
    """Iterates X_{n+1} = c + γ P X_n Pᵀ from X_0 = 0 until max |X_{n+1} − X_n| ≤ ``tol``.

    The MICo operator (c = |r_i − r_j|) and the KSMe operator (c = 1 − ½|r_i − r_j|) are
    both of this form (Castro et al. 2023, arXiv 2310.19804, § on MICo/KSMe); each is a
    γ-contraction in sup norm, so ``‖X_n − X*‖_∞ ≤ γ/(1 − γ)·tol`` at exit.

    Args:
      P: ``[S, S]`` row-stochastic transition matrix P^π.
      c: ``[S, S]`` the operator's constant term.
      gamma: discount γ in [0, 1).
      tol: stop once the sup-norm change of one application is at most ``tol``.
      max_iterations: most applications (static bound of the while loop).

    Returns:
      :class:`FixedPoint`.
    """
    chex.assert_rank([P, c], 2)

    def cond(carry):
        _, n, change = carry
        return (n < max_iterations) & (change > tol)

    def body(carry):
        x, n, _ = carry
        new = c + gamma * P @ x @ P.T
        return new, n + 1, jnp.max(jnp.abs(new - x))

    start = (jnp.zeros_like(c), jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, c.dtype))
    value, n, change = jax.lax.while_loop(cond, body, start)
    return FixedPoint(value=value, num_iterations=n, converged=change <= tol)


def ksme_sampled_td(
    key: Array, P: Array, r: Array, *, gamma: float, num_steps: int, step_size_power: float = 0.7,
) -> Array:
    """``[S, S]`` a sampled pairwise TD estimate of the KSMe kernel, from sampled transitions only.

    Implements the sampling-based learning rule that makes KSMe usable without a model
    (Castro et al. 2023, arXiv 2310.19804, § on learning the kernel from samples): for every
    pair (x, y), each step draws X' ~ P(·|x) and Y' ~ P(·|y) independently and moves

        k(x, y) ← k(x, y) + α_t [1 − ½|r(x) − r(y)| + γ k(X', Y') − k(x, y)],

    with Robbins–Monro step sizes α_t = (t + 1)^(−``step_size_power``) (power in (½, 1]).
    Its expected update is the KSMe operator, so k converges to the fixed point
    :func:`ksme_kernel` almost surely. Returns the Polyak average of the iterates over the
    second half of the run, which removes most of the sampling noise.

    Args:
      key: PRNG key of the sampled next states.
      P: ``[S, S]`` row-stochastic transition matrix P^π (only sampled from).
      r: ``[S]`` rewards r^π in [0, 1].
      gamma: discount γ in [0, 1).
      num_steps: synchronous sweeps over all S² pairs (static).
      step_size_power: the exponent of α_t.

    Returns:
      ``[S, S]`` the averaged estimate.
    """
    num_states = _check_mdp(P, r)
    reward_kernel = 1.0 - 0.5 * reward_differences(r).astype(P.dtype)
    logits = jnp.log(jnp.maximum(P, 1e-30))
    start_average = num_steps // 2

    def body(t, carry):
        k, average, step_key = carry
        step_key, kx, ky = jax.random.split(step_key, 3)
        # [S, S] next states: X' for the pair's first state (row), Y' for its second (column).
        next_x = jax.random.categorical(kx, logits[:, None, :], axis=-1, shape=(num_states, num_states))
        next_y = jax.random.categorical(ky, logits[None, :, :], axis=-1, shape=(num_states, num_states))
        alpha = (t + 1.0) ** (-step_size_power)
        k = k + alpha * (reward_kernel + gamma * k[next_x, next_y] - k)
        weight = jnp.where(t >= start_average, 1.0 / (t - start_average + 1.0), 0.0)
        average = average + weight * (k - average)
        return k, average, step_key

    zeros = jnp.zeros_like(reward_kernel)
    _, average, _ = jax.lax.fori_loop(0, num_steps, body, (zeros, zeros, key))
    return average
