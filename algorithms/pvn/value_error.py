"""Offline linear value error of frozen features: Monte-Carlo returns and cross-validated ridge regression.

Farebrother et al. 2023, "Proto-Value Networks: Scaling Representation Learning with
Auxiliary Tasks", ICLR, arXiv 2304.12567, judge a representation φ by how well linear
functions of it predict values ("downstream linear value error / return"). Online linear
Q-learning is an expensive and noisy version of that test; this module is the cheap,
offline one used on MinAtar here:

    target   G_t = Σ_{k≥0} γᵏ (Π_{j=1..k} d_{t+j}) r_{t+k+1}     (the behaviour policy's return)
    fit      ŵ, b̂ = argmin_{w,b} (1/n) Σ_train (wᵀ z(x_t) + b − G_t)² + λ ‖w‖²
             with z(x) = (φ(x) − mean φ) / s, centred on the training rows and divided by one
             scalar s² = mean_j Var(φ_j) (the bias is not penalised)
    report   value error = mean_test (ŵᵀ z(x_t) + b̂ − G_t)² / Var_test(G)  = 1 − R² on held-out episodes

(0: the features determine the return linearly; 1: no better than a constant.) Rows are
split by episode, never within one, so near-identical consecutive observations cannot
leak from the training to the test rows.

Episode semantics are dm-env's, time-major ``[T, B]`` per stream as in
``core.transition_dataset``: row t holds the observation x_t, the reward r_t and discount
d_t of the transition *into* it and its step type; the reward of the action taken at row t
is in row t + 1. A ``LAST`` row with discount 0 is a termination (G = 0 there), with
discount > 0 a truncation (the return would need a bootstrap, so that episode is unusable).

This module imports only numpy (copy it into your own code).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

FIRST, MID, LAST = 0, 1, 2
"""dm-env step types as stored in datasets (``core.types.StepType``)."""

DEFAULT_RIDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""λ grid of :func:`cross_validated_value_error` (relative to the mean feature variance, see :func:`ridge_fits`)."""


class MonteCarloReturns(NamedTuple):
    """Discounted returns of every row of a time-major dataset and which of them are usable."""

    returns: np.ndarray  # [T, B] float64: G_t (0 on LAST rows and where `valid` is False)
    valid: np.ndarray  # [T, B] bool: a decision state (not LAST) whose episode terminated within the data


def monte_carlo_returns(reward: np.ndarray, discount: np.ndarray, step_type: np.ndarray, *,
                        gamma: float) -> MonteCarloReturns:
    """G_t = r_{t+1} + γ d_{t+1} G_{t+1} backwards along each stream, G = 0 at a termination.

    Args:
      reward: ``[T, B]`` r_t, the reward of the transition into row t.
      discount: ``[T, B]`` d_t (0 at a termination, 1 otherwise, also at a truncation).
      step_type: ``[T, B]`` FIRST / MID / LAST.
      gamma: the discount factor γ.

    Returns:
      :class:`MonteCarloReturns`. ``valid`` is False on LAST rows (terminal observations:
      no action is taken there), on the rows of an episode ending in a truncation, and on
      the rows after the last LAST of a stream (the episode running when the data ends:
      its return is unknown, so these rows are dropped, not bootstrapped).
    """
    reward, discount, step_type = (np.asarray(x) for x in (reward, discount, step_type))
    if reward.ndim != 2 or reward.shape != discount.shape or reward.shape != step_type.shape:
        raise ValueError(f"reward, discount, step_type must be [T, B] of one shape, got "
                         f"{reward.shape}, {discount.shape}, {step_type.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    num_rows, num_streams = reward.shape
    returns = np.zeros((num_rows, num_streams), np.float64)
    valid = np.zeros((num_rows, num_streams), bool)
    g_next = np.zeros(num_streams)  # G of row t + 1
    complete_next = np.zeros(num_streams, bool)  # whether row t + 1's episode terminated inside the data
    for t in range(num_rows - 1, -1, -1):
        last = step_type[t] == LAST
        if t == num_rows - 1:
            g = np.zeros(num_streams)
            complete = last & (discount[t] == 0)
        else:
            g = np.where(last, 0.0, reward[t + 1] + gamma * discount[t + 1] * g_next)
            complete = np.where(last, discount[t] == 0, complete_next)
        returns[t] = np.where(complete & ~last, g, 0.0)
        valid[t] = complete & ~last
        g_next, complete_next = g, complete
    return MonteCarloReturns(returns=returns, valid=valid)


def episode_ids(step_type: np.ndarray) -> np.ndarray:
    """``[T, B]`` int64: one id per episode (a FIRST row starts a new one in its stream), unique across streams."""
    step_type = np.asarray(step_type)
    num_rows, num_streams = step_type.shape
    counts = np.cumsum(step_type == FIRST, axis=0)  # episodes started so far in each stream
    return np.arange(num_streams)[None, :] * (num_rows + 1) + counts


class RidgeFit(NamedTuple):
    """A linear predictor ŷ = ((x − mean) / scale)ᵀ w + bias."""

    weights: np.ndarray  # [D] float64
    bias: float
    mean: np.ndarray  # [D] float64, training mean of each feature
    scale: float  # RMS over features of the training std (1 if every feature is constant)


def _centre_and_scale(features):
    """Centres every column and divides all by one scalar, so λ is relative to the mean feature variance.

    One scalar, not a per-feature standardisation: a feature that is almost constant on
    the training rows (a rarely active unit or pixel) is not blown up to unit variance,
    where the penalty would no longer hold its weight down on the held-out rows.
    """
    x = np.asarray(features, np.float64)
    mean = x.mean(0)
    scale = float(np.sqrt(x.var(0).mean())) if x.shape[1] else 1.0
    scale = scale if scale > 0 else 1.0
    return (x - mean) / scale, mean, scale


def ridge_fits(features: np.ndarray, targets: np.ndarray, *, ridges: Sequence[float]) -> list:
    """Closed-form ridge regressions with an unpenalised bias, one per λ (one eigendecomposition).

    ŵ = (ZᵀZ/n + λI)⁺ Zᵀ(y − ȳ)/n, b̂ = ȳ, with Z the centred features divided by the
    RMS of their standard deviations (constant columns become 0 and get weight 0).
    λ = 0 gives the minimum-norm least-squares fit.

    Args:
      features: ``[N, D]``.
      targets: ``[N]``.
      ridges: the λ values (each ≥ 0).

    Returns:
      one :class:`RidgeFit` per λ.
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"features must be [N, D] and targets [N], got {x.shape} and {y.shape}")
    if any(r < 0 for r in ridges):
        raise ValueError(f"ridges must be ≥ 0, got {list(ridges)}")
    z, mean, scale = _centre_and_scale(x)
    n = x.shape[0]
    y_mean = float(y.mean())
    eigenvalues, eigenvectors = np.linalg.eigh(z.T @ z / n)
    projected = eigenvectors.T @ (z.T @ (y - y_mean) / n)
    tol = max(eigenvalues.max(initial=0.0), 1.0) * x.shape[1] * np.finfo(np.float64).eps
    fits = []
    for ridge in ridges:
        denominator = eigenvalues + ridge
        inverse = np.where(denominator > tol, 1.0 / np.where(denominator > tol, denominator, 1.0), 0.0)
        fits.append(RidgeFit(weights=eigenvectors @ (inverse * projected), bias=y_mean, mean=mean, scale=scale))
    return fits


def ridge_predict(fit: RidgeFit, features: np.ndarray) -> np.ndarray:
    """``[N]`` predictions of a :class:`RidgeFit` on ``[N, D]`` features."""
    return ((np.asarray(features, np.float64) - fit.mean) / fit.scale) @ fit.weights + fit.bias


def normalised_error(predictions: np.ndarray, targets: np.ndarray) -> float:
    """mean (ŷ − y)² / Var(y) = 1 − R² (Var over the same rows; inf if y is constant)."""
    y = np.asarray(targets, np.float64)
    variance = y.var()
    mse = float(np.mean((np.asarray(predictions, np.float64) - y) ** 2))
    return mse / variance if variance > 0 else float("inf")


class ValueErrorResult(NamedTuple):
    """Held-out linear value error of one feature matrix, K-fold over episodes."""

    value_error: float  # mean over folds of the test error MSE / Var(G)
    fold_errors: np.ndarray  # [K] test error of each fold
    ridges: np.ndarray  # [K] λ chosen on each fold's validation episodes
    train_error: float  # mean over folds of the same error on the rows the final fit saw


def cross_validated_value_error(features: np.ndarray, targets: np.ndarray, groups: np.ndarray, *,
                                ridges: Sequence[float] = DEFAULT_RIDGES, num_folds: int = 5,
                                seed: int = 0) -> ValueErrorResult:
    """K-fold held-out value error of a ridge regression of the returns on the features, split by episode.

    The episodes (``groups``) are shuffled with ``seed`` and dealt into K folds. For fold k:
    test = fold k, validation = fold k + 1 (mod K), train = the other K − 2; λ is the grid
    value with the lowest validation error when fitted on train; the reported error is that
    of the fit on train ∪ validation with that λ, on the test fold.

    Args:
      features: ``[N, D]`` φ(x_t) of the usable rows.
      targets: ``[N]`` their returns G_t.
      groups: ``[N]`` episode id of each row (rows of one episode stay in one fold).
      ridges: λ grid (see :data:`DEFAULT_RIDGES`).
      num_folds: K ≥ 3.
      seed: seed of the episode shuffle (the same seed gives every feature matrix the same folds).

    Returns:
      :class:`ValueErrorResult`.
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    groups = np.asarray(groups)
    if num_folds < 3:
        raise ValueError(f"num_folds must be at least 3 (train, validation, test), got {num_folds}")
    if x.ndim != 2 or y.shape != (x.shape[0],) or groups.shape != y.shape:
        raise ValueError(f"features [N, D], targets [N], groups [N] expected, got {x.shape}, {y.shape}, "
                         f"{groups.shape}")
    unique = np.unique(groups)
    if unique.size < num_folds:
        raise ValueError(f"{unique.size} episodes, fewer than num_folds={num_folds}")
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_group = np.empty(unique.size, np.int64)
    fold_of_group[order] = np.arange(unique.size) % num_folds
    fold = fold_of_group[np.searchsorted(unique, groups)]
    errors, chosen, train_errors = [], [], []
    for k in range(num_folds):
        test, val = fold == k, fold == (k + 1) % num_folds
        train = ~test & ~val
        fits = ridge_fits(x[train], y[train], ridges=ridges)
        val_errors = [normalised_error(ridge_predict(f, x[val]), y[val]) for f in fits]
        best = float(ridges[int(np.argmin(val_errors))])
        fit = ridge_fits(x[train | val], y[train | val], ridges=[best])[0]
        errors.append(normalised_error(ridge_predict(fit, x[test]), y[test]))
        train_errors.append(normalised_error(ridge_predict(fit, x[train | val]), y[train | val]))
        chosen.append(best)
    return ValueErrorResult(value_error=float(np.mean(errors)), fold_errors=np.asarray(errors),
                            ridges=np.asarray(chosen), train_error=float(np.mean(train_errors)))


class EmpiricalSuccessorMeasure(NamedTuple):
    """Ψ̂ = (I − γ P̂^unif)⁻¹ of the Markov chain a dataset defines over its distinct states."""

    states: np.ndarray  # [n] ids of the states Ψ̂ is indexed by (those with an observed transition out)
    psi: np.ndarray  # [n, n] float64
    all_actions_seen: float  # share of the n states where every action was taken at least once
    escaped: float  # share of the transition mass into states without an observed transition out (valued 0)


def empirical_successor_measure(state: np.ndarray, action: np.ndarray, discount: np.ndarray,
                                step_type: np.ndarray, *, num_actions: int,
                                gamma: float) -> EmpiricalSuccessorMeasure:
    """The uniform policy's successor measure of the dataset's empirical MDP (certainty equivalence).

    Batch TD with PVN's rule, Q_i(x, a) ← r_i(x) + γ d' (1/|A|) Σ_a' Q̄_i(x', a'), run to
    convergence on a fixed dataset, reaches the values of the MDP whose transition
    probabilities are the dataset's counts. With tabular states x (here: distinct
    observations) that MDP is

        P̂(x' | x, a) = n(x, a, x') / n(x, a),    P̂^unif(x' | x) = mean over the actions seen at x of P̂(x' | x, a)
        V_i = Ψ̂ r_i,    Ψ̂ = (I − γ P̂^unif)⁻¹

    (where an action was never taken at x, the mean runs over those that were: the fixed
    point is not determined there). Transitions are row t → t + 1 of a stream for every
    row t that is not ``LAST``; a successor that is a termination (d_{t+1} = 0) has value 0
    and carries no mass, and so does one never seen with a transition out (the share of
    such mass is ``escaped``).

    Args:
      state: ``[T, B]`` int state id of every row (e.g. ``np.unique(observations, axis=0, return_inverse=True)``).
      action: ``[T, B]`` the action taken at each row.
      discount, step_type: ``[T, B]`` as in :func:`monte_carlo_returns`.
      num_actions: |A|.
      gamma: the discount factor γ < 1.

    Memory and time are those of a dense ``[n, n]`` inverse: for datasets of up to a few
    thousand distinct states.
    """
    state, action, discount, step_type = (np.asarray(x) for x in (state, action, discount, step_type))
    if state.ndim != 2 or not state.shape == action.shape == discount.shape == step_type.shape:
        raise ValueError(f"state, action, discount, step_type must be [T, B] of one shape, got {state.shape}, "
                         f"{action.shape}, {discount.shape}, {step_type.shape}")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    moves = step_type[:-1] != LAST
    x, a, x_next = state[:-1][moves], action[:-1][moves], state[1:][moves]
    alive = discount[1:][moves] > 0
    states = np.unique(x)
    n = states.size
    row = np.searchsorted(states, x)
    if np.any((a < 0) | (a >= num_actions)):
        raise ValueError(f"actions must lie in [0, {num_actions}), got {a.min()}..{a.max()}")
    taken = np.zeros((n, num_actions))
    np.add.at(taken, (row, a), 1.0)
    nxt = np.searchsorted(states, x_next).clip(0, n - 1)
    known = alive & (states[nxt] == x_next)
    seen = taken > 0
    # each transition adds 1 / (n(x, a) · |actions seen at x|) to P̂^unif(x' | x)
    weight = 1.0 / (taken[row, a] * seen.sum(1)[row])
    p_uniform = np.zeros((n, n))
    np.add.at(p_uniform, (row[known], nxt[known]), weight[known])
    escaped_mass = np.sum(alive & ~known) / max(alive.sum(), 1)
    psi = np.linalg.inv(np.eye(n) - gamma * p_uniform)
    return EmpiricalSuccessorMeasure(states=states, psi=psi, all_actions_seen=float(seen.all(1).mean()),
                                     escaped=float(escaped_mass))
