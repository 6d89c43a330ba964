"""Densities on a grid with exact partition functions (the toy setting of arXiv 2311.14115).

Every density of the toy experiments lives on a fixed grid of G points in [low, high]^D
(D = 1 or 2): a model or target assigns an unnormalised log density (a negative energy)
to every grid point, and the log partition function is an exact ``logsumexp`` over the
grid. A "truncated normal" is therefore a normal restricted to the grid's box and
renormalised there. Distances between densities are total variations between the grid
distributions, optionally restricted (and renormalised) to a support mask.

Imports nothing from this repository: copy it into your own code.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import chex
import jax
import jax.numpy as jnp


class Grid(NamedTuple):
    """A regular grid over a box; densities on it are vectors over its points."""

    points: jax.Array  # [G, D] float32: grid coordinates, row-major over the D axes
    cell_volume: float  # volume of one cell: converts grid probabilities to densities


def make_grid(low: float, high: float, num: int, *, dims: int = 1) -> Grid:
    """A grid of ``num`` cell centres per axis on [low, high]^dims (G = num^dims points)."""
    if num < 2 or high <= low or dims not in (1, 2):
        raise ValueError(f"need num >= 2, high > low and dims in (1, 2); got {num}, {low}, {high}, {dims}")
    width = (high - low) / num
    axis = low + width * (jnp.arange(num, dtype=jnp.float32) + 0.5)
    if dims == 1:
        points = axis[:, None]
    else:
        xx, yy = jnp.meshgrid(axis, axis, indexing="ij")
        points = jnp.stack([xx.ravel(), yy.ravel()], axis=-1)
    return Grid(points=points, cell_volume=float(width**dims))


def log_normalize(log_density: jax.Array) -> jax.Array:
    """Exact grid log probabilities: log p_i = ℓ_i − log Σ_j exp ℓ_j.

    Args:
      log_density: [..., G] unnormalised log densities (negative energies) on the grid.
    Returns:
      [..., G] log probabilities summing (in probability) to 1 over the last axis.
    """
    return log_density - jax.nn.logsumexp(log_density, axis=-1, keepdims=True)


def restrict(log_p: jax.Array, mask: jax.Array) -> jax.Array:
    """Restricts a grid distribution to ``mask`` and renormalises it there (−inf outside)."""
    chex.assert_equal_shape([log_p, mask])
    return log_normalize(jnp.where(mask, log_p, -jnp.inf))


def total_variation(log_p: jax.Array, log_q: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    """TV(p, q) = ½ Σ_i |p_i − q_i| between two grid distributions.

    With ``mask`` both are first restricted to the mask and renormalised there: the
    distance "on the support" of a proposal distribution.
    """
    if mask is not None:
        log_p, log_q = restrict(log_p, mask), restrict(log_q, mask)
    return 0.5 * jnp.sum(jnp.abs(jnp.exp(log_p) - jnp.exp(log_q)), axis=-1)


def normal_log_density(points: jax.Array, mean: Sequence[float] | jax.Array, std: float) -> jax.Array:
    """Isotropic normal log density at ``points`` [G, D] (unnormalised on the grid: the grid truncates it)."""
    mean = jnp.asarray(mean, jnp.float32).reshape(1, -1)
    d = points.shape[-1]
    sq = jnp.sum(jnp.square(points - mean), axis=-1)
    return -0.5 * sq / std**2 - d * jnp.log(std) - 0.5 * d * jnp.log(2 * jnp.pi)


def truncated_normal_log_probs(grid: Grid, mean: Sequence[float] | float, std: float) -> jax.Array:
    """A normal truncated to the grid's box: grid log probabilities [G]."""
    mean = jnp.atleast_1d(jnp.asarray(mean, jnp.float32))
    return log_normalize(normal_log_density(grid.points, mean, std))


def mixture_log_probs(log_probs: jax.Array, weights: Sequence[float] | jax.Array) -> jax.Array:
    """log Σ_k w_k p_k(x) of K grid distributions ``log_probs`` [K, G] with weights [K] summing to 1."""
    weights = jnp.asarray(weights, jnp.float32)
    chex.assert_rank([log_probs, weights], [2, 1])
    return jax.nn.logsumexp(log_probs + jnp.log(weights)[:, None], axis=0)


def gaussian_mixture_log_probs(grid: Grid, means: Sequence, stds: Sequence[float],
                               weights: Sequence[float]) -> jax.Array:
    """A mixture of normals, each truncated to the grid's box, as grid log probabilities [G]."""
    comps = jnp.stack([truncated_normal_log_probs(grid, m, s) for m, s in zip(means, stds)])
    return mixture_log_probs(comps, weights)


def box_mask(grid: Grid, low: float, high: float) -> jax.Array:
    """[G] bool: grid points inside [low, high]^D (the support of a uniform proposal)."""
    return jnp.all((grid.points >= low) & (grid.points <= high), axis=-1)


def uniform_log_probs(mask: jax.Array) -> jax.Array:
    """The uniform grid distribution on ``mask`` (log probabilities, −inf outside)."""
    return log_normalize(jnp.where(mask, 0.0, -jnp.inf))
