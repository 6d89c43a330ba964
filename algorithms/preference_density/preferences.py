"""Generative processes of pairwise preferences (arXiv 2311.14115, §3–§5).

A preference dataset is made in two steps: a proposal distribution q draws a pair
(x_A, x_B), then an annotator says which one it prefers. The paper's annotators:

* Luce choice rule (Bradley–Terry on log densities): the annotator holds an implicit
  preference distribution p* and prefers A with probability
  p*(x_A) / (p*(x_A) + p*(x_B)) = σ(log p*(x_A) − log p*(x_B)).
* Preference behaviour distribution equation (PBDE): for a scalar f > 0 and a function g,
  P(A ≻ B) = σ(f·log p*(x_A) + g(x_A) − f·log p*(x_B) − g(x_B)). Luce is f = 1, g = 0;
  the annotator that DPO assumes is f = β, g = −β·log π_pre.
* A population of annotators: annotator k (weight w_k) is drawn for each pair, then labels
  it with its own rule: P(A ≻ B) = Σ_k w_k σ(Δ_k). Without annotator ids this is *not* a
  Luce rule of any single density (annotator misspecification, §5).

Everything is written on log densities evaluated at the two items, so it serves grid
densities and sequence models alike. Imports nothing from this repository.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

NO_ANNOTATOR = -1
"""``Preferences.annotator`` of datasets labelled by a single annotator (or ids withheld)."""


class Preferences(NamedTuple):
    """A pairwise preference dataset; items are indices (grid points or sequence rows)."""

    item_a: jax.Array  # [N] int32: index of x_A
    item_b: jax.Array  # [N] int32: index of x_B
    a_preferred: jax.Array  # [N] float32: 1 when the annotator preferred x_A, else 0
    annotator: jax.Array  # [N] int32: id of the annotator who labelled the pair (NO_ANNOTATOR if one rule)


def luce_logit(log_p_a: jax.Array, log_p_b: jax.Array) -> jax.Array:
    """Log-odds that x_A is preferred under the Luce choice rule.

    Implements the Luce choice rule / Bradley–Terry model of arXiv 2311.14115 (Eq. 1):
    P(A ≻ B) = p*(x_A) / (p*(x_A) + p*(x_B)) = σ(log p*(x_A) − log p*(x_B)).

    Args:
      log_p_a: [...] log p*(x_A) (normalised or not: the constant cancels).
      log_p_b: [...] log p*(x_B).
    Returns:
      [...] the logit log p*(x_A) − log p*(x_B).
    """
    chex.assert_equal_shape([log_p_a, log_p_b])
    return log_p_a - log_p_b


def pbde_logit(log_p_a: jax.Array, log_p_b: jax.Array, g_a: jax.Array, g_b: jax.Array, *, f: float) -> jax.Array:
    """Log-odds of a preference behaviour distribution equation (PBDE).

    Implements the PBDE family of arXiv 2311.14115 (§4):
    P(A ≻ B) = σ(f·log p(x_A) + g(x_A) − f·log p(x_B) − g(x_B)).

    Args:
      log_p_a, log_p_b: [...] log p(x_A), log p(x_B).
      g_a, g_b: [...] g(x_A), g(x_B).
      f: the positive scale of the log density.
    Returns:
      [...] the logit.
    """
    chex.assert_equal_shape([log_p_a, log_p_b, g_a, g_b])
    return f * (log_p_a - log_p_b) + (g_a - g_b)


def pbde_optimal_log_density(log_p_star: jax.Array, g: jax.Array, *, f: float) -> jax.Array:
    """The density p whose PBDE (f, g) reproduces a Luce annotator with implicit p*.

    Solving f·log p + g = log p* + const gives log p = (log p* − g) / f + const; returned
    unnormalised (normalise it on the support of the proposal).
    """
    chex.assert_equal_shape([log_p_star, g])
    return (log_p_star - g) / f


def population_probability(logits: jax.Array, weights: jax.Array) -> jax.Array:
    """P(A ≻ B) of an annotator population: Σ_k w_k σ(Δ_k).

    Args:
      logits: [..., K] each annotator's logit Δ_k for the pair.
      weights: [K] the annotators' weights (summing to 1).
    Returns:
      [...] the probability that a random annotator of the population prefers x_A.
    """
    chex.assert_rank(weights, 1)
    return jnp.sum(jax.nn.sigmoid(logits) * weights, axis=-1)


def sample_pairs(key: jax.Array, log_q: jax.Array, num_pairs: int) -> tuple[jax.Array, jax.Array]:
    """Draws ``num_pairs`` independent pairs (x_A, x_B) from the proposal q (grid log probabilities [G])."""
    key_a, key_b = jax.random.split(key)
    item_a = jax.random.categorical(key_a, log_q, shape=(num_pairs,)).astype(jnp.int32)
    item_b = jax.random.categorical(key_b, log_q, shape=(num_pairs,)).astype(jnp.int32)
    return item_a, item_b


def annotate(key: jax.Array, item_a: jax.Array, item_b: jax.Array, logit: jax.Array) -> Preferences:
    """Labels pairs with a single annotator: A ≻ B with probability σ(logit)."""
    chex.assert_equal_shape([item_a, item_b, logit])
    label = jax.random.bernoulli(key, jax.nn.sigmoid(logit)).astype(jnp.float32)
    return Preferences(item_a, item_b, label, jnp.full(item_a.shape, NO_ANNOTATOR, jnp.int32))


def annotate_population(key: jax.Array, item_a: jax.Array, item_b: jax.Array, logits: jax.Array,
                        weights: jax.Array) -> Preferences:
    """Labels each pair with an annotator drawn from the population (ids kept in ``annotator``).

    Args:
      key: PRNG key.
      item_a, item_b: [N] the pairs.
      logits: [N, K] each annotator's logit for each pair.
      weights: [K] the annotators' weights.
    Returns:
      ``Preferences`` whose ``annotator`` holds the drawn annotator of each pair; a model
      "without annotator ids" simply ignores it.
    """
    chex.assert_rank([logits, weights], [2, 1])
    key_who, key_label = jax.random.split(key)
    who = jax.random.categorical(key_who, jnp.log(weights), shape=item_a.shape).astype(jnp.int32)
    logit = jnp.take_along_axis(logits, who[:, None], axis=1)[:, 0]
    label = jax.random.bernoulli(key_label, jax.nn.sigmoid(logit)).astype(jnp.float32)
    return Preferences(item_a, item_b, label, who)


def luce_dataset(key: jax.Array, log_q: jax.Array, log_p_star: jax.Array, num_pairs: int,
                 g: Optional[jax.Array] = None, *, f: float = 1.0) -> Preferences:
    """Proposal pairs labelled by a Luce annotator (or a PBDE annotator when ``g`` is given), on a grid.

    Args:
      key: PRNG key.
      log_q: [G] the proposal's grid log probabilities.
      log_p_star: [G] the annotator's implicit preference distribution (log, any constant).
      num_pairs: N.
      g: [G] optional PBDE offset g(x); None is Luce (f = 1, g = 0).
      f: the PBDE scale.
    """
    key_pairs, key_label = jax.random.split(key)
    a, b = sample_pairs(key_pairs, log_q, num_pairs)
    g = jnp.zeros_like(log_p_star) if g is None else g
    return annotate(key_label, a, b, pbde_logit(log_p_star[a], log_p_star[b], g[a], g[b], f=f))


def population_dataset(key: jax.Array, log_q: jax.Array, log_p_stars: jax.Array, weights: jax.Array,
                       num_pairs: int) -> Preferences:
    """Proposal pairs labelled by a population of Luce annotators with implicit densities [K, G]."""
    key_pairs, key_label = jax.random.split(key)
    a, b = sample_pairs(key_pairs, log_q, num_pairs)
    logits = (log_p_stars[:, a] - log_p_stars[:, b]).T  # [N, K]
    return annotate_population(key_label, a, b, logits, jnp.asarray(weights, jnp.float32))
