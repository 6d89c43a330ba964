"""Losses for learning from pairwise preferences, and the densities they converge to.

Dumoulin, Johnson, Castro, Larochelle & Dauphin 2024, "A density estimation perspective
on learning from pairwise human preferences", TMLR, arXiv 2311.14115.

Every loss is written elementwise on the quantities of one pair (broadcasting over any
leading shape; the caller averages): ``a_preferred`` is 1 when x_A won, 0 when x_B won.
A preference model is a logit ℓ(x_A, x_B) with P(A ≻ B) = σ(ℓ); its loss is the negative
log-likelihood of the observed choice. The paper's point is that this is density
estimation: with a reward r_θ = log π_θ (or a PBDE around π_pre) the minimiser over a
rich enough family is a *density* fixed by the annotator's generative process:

| model logit | trained on a Luce annotator with implicit p*, converges to |
|---|---|
| Bradley–Terry r(x_A) − r(x_B) | exp r ∝ p* on the proposal's support |
| DPO β[log π/π_pre (x_A) − log π/π_pre (x_B)] | π ∝ π_pre · p*^(1/β) |
| geometric PBDE (1/α)[log π − (1−α) log π_pre](x_A) − (…)(x_B) | π ∝ π_pre^(1−α) · p*^α |

and DPO on a DPO-style annotator (PBDE f = β, g = −β log π_pre) recovers p* itself.
IPO and SLiC-HF are not likelihoods: their per-pair optima are fixed margins
(2P(A≻B) − 1)/(2τ) and δ·sign(2P(A≻B) − 1), so they do not estimate p*.

Imports nothing from this repository.
"""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp


def preference_log_likelihood(logit: jax.Array, a_preferred: jax.Array) -> jax.Array:
    """log P(observed choice) = y·log σ(ℓ) + (1 − y)·log σ(−ℓ) (y may be a soft label in [0, 1])."""
    chex.assert_equal_shape([logit, a_preferred])
    return a_preferred * jax.nn.log_sigmoid(logit) + (1.0 - a_preferred) * jax.nn.log_sigmoid(-logit)


def winner_margin(logit: jax.Array, a_preferred: jax.Array) -> jax.Array:
    """The logit oriented winner-minus-loser: (2y − 1)·ℓ (for hard labels y ∈ {0, 1})."""
    chex.assert_equal_shape([logit, a_preferred])
    return (2.0 * a_preferred - 1.0) * logit


def bradley_terry_loss(r_a: jax.Array, r_b: jax.Array, a_preferred: jax.Array) -> jax.Array:
    """Reward-model loss: −log σ(±(r(x_A) − r(x_B))).

    Implements the Bradley–Terry reward training objective of arXiv 2311.14115 (Eq. 2):
    L = −y·log σ(r_A − r_B) − (1 − y)·log σ(r_B − r_A).

    Args:
      r_a, r_b: [...] rewards (for the density view, unnormalised log densities) of x_A, x_B.
      a_preferred: [...] 1.0 when x_A was preferred.
    Returns:
      [...] per-pair loss.
    """
    return -preference_log_likelihood(r_a - r_b, a_preferred)


def dpo_logit(log_pi_a: jax.Array, log_pi_b: jax.Array, log_pre_a: jax.Array, log_pre_b: jax.Array,
              *, beta: float) -> jax.Array:
    """DPO's implicit preference logit β[log π(x_A)/π_pre(x_A) − log π(x_B)/π_pre(x_B)].

    Implements Rafailov et al. 2023 (arXiv 2305.18290) Eq. 7, read in arXiv 2311.14115 §4
    as the PBDE with f = β, g = −β·log π_pre.
    """
    chex.assert_equal_shape([log_pi_a, log_pi_b, log_pre_a, log_pre_b])
    return beta * ((log_pi_a - log_pre_a) - (log_pi_b - log_pre_b))


def dpo_loss(log_pi_a: jax.Array, log_pi_b: jax.Array, log_pre_a: jax.Array, log_pre_b: jax.Array,
             a_preferred: jax.Array, *, beta: float) -> jax.Array:
    """DPO loss: −log σ(±β[log π/π_pre (x_A) − log π/π_pre (x_B)]); optimum π ∝ π_pre·p*^(1/β) on Luce data."""
    return -preference_log_likelihood(dpo_logit(log_pi_a, log_pi_b, log_pre_a, log_pre_b, beta=beta), a_preferred)


def geometric_pbde_logit(log_pi_a: jax.Array, log_pi_b: jax.Array, log_pre_a: jax.Array, log_pre_b: jax.Array,
                         *, alpha: float) -> jax.Array:
    """The geometric-averaging PBDE: (1/α)[log π(x_A) − (1−α) log π_pre(x_A)] − (same at x_B).

    Implements the PBDE of arXiv 2311.14115 (§4) with f = 1/α and g = −((1 − α)/α)·log π_pre,
    whose optimum on a Luce annotator is the geometric average π ∝ π_pre^(1−α)·p*^α.
    """
    chex.assert_equal_shape([log_pi_a, log_pi_b, log_pre_a, log_pre_b])
    return ((log_pi_a - (1.0 - alpha) * log_pre_a) - (log_pi_b - (1.0 - alpha) * log_pre_b)) / alpha


def geometric_pbde_loss(log_pi_a: jax.Array, log_pi_b: jax.Array, log_pre_a: jax.Array, log_pre_b: jax.Array,
                        a_preferred: jax.Array, *, alpha: float) -> jax.Array:
    """Negative log-likelihood of the geometric-averaging PBDE; optimum π ∝ π_pre^(1−α)·p*^α."""
    logit = geometric_pbde_logit(log_pi_a, log_pi_b, log_pre_a, log_pre_b, alpha=alpha)
    return -preference_log_likelihood(logit, a_preferred)


def ipo_loss(h: jax.Array, a_preferred: jax.Array, *, tau: float) -> jax.Array:
    """IPO loss (Azar et al. 2023, arXiv 2310.12036, Eq. 17): (h_w,l − 1/(2τ))².

    Args:
      h: [...] log π/π_pre (x_A) − log π/π_pre (x_B).
      a_preferred: [...] 1.0 when x_A was preferred.
      tau: the regularisation τ.
    Returns:
      [...] per-pair loss; its per-pair optimum is h = (2·P(A ≻ B) − 1)/(2τ).
    """
    return jnp.square(winner_margin(h, a_preferred) - 0.5 / tau)


def slic_loss(h: jax.Array, a_preferred: jax.Array, *, delta: float) -> jax.Array:
    """SLiC-HF calibration loss (Zhao et al. 2023, arXiv 2305.10425, Eq. 2): max(0, δ − h_w,l).

    Args:
      h: [...] log π(x_A) − log π(x_B) (SLiC-HF ranks plain log-likelihoods).
      a_preferred: [...] 1.0 when x_A was preferred.
      delta: the margin δ.
    Returns:
      [...] per-pair hinge loss; its per-pair optimum is h = δ·sign(2·P(A ≻ B) − 1).
    Notes:
      SLiC-HF adds a cross-entropy regulariser on reference targets, omitted here.
    """
    return jax.nn.relu(delta - winner_margin(h, a_preferred))


def mixture_preference_loss(r_a: jax.Array, r_b: jax.Array, log_weights: jax.Array,
                            a_preferred: jax.Array) -> jax.Array:
    """The well-specified multi-annotator model: −log Σ_k w_k σ(±(r_k(x_A) − r_k(x_B))).

    Implements the mixture-of-annotators likelihood of arXiv 2311.14115 (§5): K rewards
    (unnormalised log densities) with learned weights w = softmax(log_weights), trained
    without annotator ids.

    Args:
      r_a, r_b: [..., K] each component's reward of x_A and x_B.
      log_weights: [K] unnormalised log mixture weights.
      a_preferred: [...] 1.0 when x_A was preferred.
    Returns:
      [...] per-pair loss.
    """
    chex.assert_equal_shape([r_a, r_b])
    chex.assert_rank(log_weights, 1)
    log_w = jax.nn.log_softmax(log_weights)
    per_component = preference_log_likelihood(r_a - r_b, jnp.broadcast_to(a_preferred[..., None], r_a.shape))
    return -jax.nn.logsumexp(per_component + log_w, axis=-1)


def _normalize(log_p: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    if mask is not None:
        log_p = jnp.where(mask, log_p, -jnp.inf)
    return log_p - jax.nn.logsumexp(log_p, axis=-1, keepdims=True)


def bradley_terry_optimum(log_p_star: jax.Array, support: Optional[jax.Array] = None) -> jax.Array:
    """log p* restricted to the proposal's support and renormalised: what exp(r_BT) recovers."""
    return _normalize(log_p_star, support)


def dpo_optimum(log_pre: jax.Array, log_p_star: jax.Array, *, beta: float,
                support: Optional[jax.Array] = None) -> jax.Array:
    """log π* with π* ∝ π_pre·p*^(1/β) (on the support): DPO's optimum on a Luce annotator."""
    chex.assert_equal_shape([log_pre, log_p_star])
    return _normalize(log_pre + log_p_star / beta, support)


def geometric_optimum(log_pre: jax.Array, log_p_star: jax.Array, *, alpha: float,
                      support: Optional[jax.Array] = None) -> jax.Array:
    """log π* with π* ∝ π_pre^(1−α)·p*^α (on the support): the geometric PBDE's optimum."""
    chex.assert_equal_shape([log_pre, log_p_star])
    return _normalize((1.0 - alpha) * log_pre + alpha * log_p_star, support)


def pbde_optimum(log_p_star: jax.Array, *, f_annotator: float, g_annotator: jax.Array, f_model: float,
                 g_model: jax.Array, support: Optional[jax.Array] = None) -> jax.Array:
    """The density a PBDE model converges to on a PBDE annotator (log, normalised on the support).

    Implements the consistency argument of arXiv 2311.14115 (§4): the preference
    likelihood is maximised when the model's logit equals the annotator's on every pair of
    the proposal's support, f_m·log π + g_m = f_a·log p* + g_a + const, so
    log π* = (f_a·log p* + g_a − g_m)/f_m + const. Special cases: BT (f_m = 1, g_m = 0) on
    Luce (f_a = 1, g_a = 0) gives p*; DPO (f_m = β, g_m = −β log π_pre) on Luce gives
    π_pre·p*^(1/β), and on a DPO annotator (f_a = β, g_a = −β log π_pre) gives p*.

    Args:
      log_p_star: [G] the annotator's implicit density (log, any constant).
      f_annotator, g_annotator: the annotator's PBDE scale and offset [G].
      f_model, g_model: the model's PBDE scale and offset [G].
      support: [G] bool, the proposal's support (None: everywhere).
    Returns:
      [G] log probabilities of the optimum (−inf off the support).
    """
    chex.assert_equal_shape([log_p_star, g_annotator, g_model])
    return _normalize((f_annotator * log_p_star + g_annotator - g_model) / f_model, support)
