"""The pieces BBF adds to a data-efficient Rainbow agent, as pure functions.

Schwarzer, Obando-Ceron, Courville, Bellemare, Agarwal & Castro 2023, "Bigger, Better,
Faster: Human-level Atari with human-level efficiency", ICML 2023, arXiv 2305.19452.

* :func:`renormalize` — min–max renormalisation of each sample's latent (SPR/MuZero).
* :func:`spr_loss` — self-predictive representation loss, cosine form, masked at episode ends.
* :func:`update_horizon` / :func:`discount_schedule` — the n 10 → 3 and γ 0.97 → 0.997
  annealing that restarts at every reset.
* :func:`n_step_return` — the truncated n-step return for a traced n ≤ window length.
* :func:`shrink_and_perturb` — the reset: interpolate some parameter groups with a fresh
  initialisation, replace the rest by it.
* :func:`weight_decay_mask` — AdamW decays every parameter that is not 1-D (no biases).

Imports nothing of this repo beyond :mod:`core` (vendorable).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp

from core import schedules

Array = chex.Array
Params = Any  # a haiku parameter dict {module path: {name: array}}


def renormalize(latent: Array, *, epsilon: float = 1e-5) -> Array:
    """Min–max renormalisation of every sample's features to [0, 1].

    Implements the latent renormalisation of SPR/BBF (arXiv 2007.05929, 2305.19452; MuZero's
    hidden-state scaling):

        z̃_b = (z_b − min(z_b)) / (max(z_b) − min(z_b) + ε),   min/max over all features of sample b.

    Args:
      latent: ``[B, ...]`` float features (e.g. ``[B, h, w, C]`` convolutional latents).
      epsilon: keeps a constant latent finite (maps it to 0).

    Returns:
      Array of the shape and dtype of ``latent`` with every sample in [0, 1).
    """
    flat = latent.reshape(latent.shape[0], -1)
    low = jnp.min(flat, axis=-1, keepdims=True)
    high = jnp.max(flat, axis=-1, keepdims=True)
    return ((flat - low) / (high - low + epsilon)).reshape(latent.shape)


def spr_loss(prediction: Array, target: Array, mask: Array) -> Array:
    """SPR loss of one sample: mean over K future steps of 2 − 2·cos(ŷ_k, y_k), masked.

    Implements Eq. (1) of Schwarzer et al. 2021 (SPR, arXiv 2007.05929) as BBF uses it:

        L = (1/K) Σ_k m_k · ‖ŷ_k/‖ŷ_k‖ − y_k/‖y_k‖‖² = (1/K) Σ_k m_k (2 − 2 cos(ŷ_k, y_k))

    with ŷ_k the online prediction of step t+k and y_k the target projection of s_{t+k};
    m_k = 0 for steps after the episode ended (their observation belongs to another
    episode). Gradients flow through ``prediction`` only when the caller stops the target's.

    Args:
      prediction: ``[K, D]`` predicted projections ŷ.
      target: ``[K, D]`` target projections y.
      mask: ``[K]`` 1 for valid steps, 0 past the episode end.

    Returns:
      ``[]`` float32 loss.

    Notes:
      Dividing by K rather than by Σ m_k follows the reference code (masked steps count as 0).
    """
    chex.assert_rank([prediction, target, mask], [2, 2, 1])
    chex.assert_equal_shape([prediction, target])
    prediction = prediction / jnp.linalg.norm(prediction, axis=-1, keepdims=True)
    target = target / jnp.linalg.norm(target, axis=-1, keepdims=True)
    per_step = jnp.sum(jnp.square(prediction - target), axis=-1)  # [K]
    return jnp.mean(per_step * mask.astype(per_step.dtype))


def update_horizon(cycle_step: Array, *, n_max: int, n_min: int, duration: int) -> Array:
    """n(t) = round(n_max · (n_min/n_max)^clip(t/duration, 0, 1)) as ``[]`` int32.

    BBF Sec. 3 ("Receding update horizon"): n decays exponentially from 10 to 3 over the
    first 10k gradient steps after every reset; ``cycle_step`` counts gradient steps since
    the last reset. ``duration = 0`` gives ``n_min`` at once (no annealing).
    """
    if duration <= 0:
        return jnp.asarray(n_min, jnp.int32)
    value = schedules.exponential_interpolation(cycle_step, start=float(n_max), end=float(n_min), duration=duration)
    return jnp.round(value).astype(jnp.int32)


def discount_schedule(cycle_step: Array, *, gamma_min: float, gamma_max: float, duration: int) -> Array:
    """γ(t): 1 − γ interpolates geometrically from 1 − γ_min to 1 − γ_max over ``duration`` steps.

    BBF Sec. 3 ("Increasing discount factor"): γ from 0.97 to 0.997 over 10k gradient steps
    after every reset, log-linear in the horizon 1/(1 − γ). ``duration = 0`` gives γ_max.
    """
    if duration <= 0:
        return jnp.asarray(gamma_max, jnp.float32)
    return schedules.annealed_discount(cycle_step, start=gamma_min, end=gamma_max, duration=duration)


def n_step_return(reward_t: Array, discount_t: Array, last_t: Array, *, n: Array, gamma: Array):
    """Truncated n-step return over a window of H ≥ n steps, for a traced n.

    Implements the n-step target of Rainbow (arXiv 1710.02298, Eq. 2) with dm-env
    semantics, steps beyond n masked out so that one compiled program serves every n:

        alive_k = [no LAST among steps 1..k−1] · [k ≤ n],   m = Σ_k alive_k
        G = Σ_{k ≤ m} γ^{k−1} (∏_{j<k} d_j) r_k,     γ^(m) = γ^m ∏_{j ≤ m} d_j

    Args:
      reward_t: ``[H]`` rewards r_1..r_H of the steps after s_0.
      discount_t: ``[H]`` environment discounts d_1..d_H (0 on termination).
      last_t: ``[H]`` bool, step k ends an episode (LAST).
      n: ``[]`` int, 1 ≤ n ≤ H, may be traced.
      gamma: ``[]`` float γ, may be traced.

    Returns:
      ``(G, bootstrap_discount, m)``: ``[]`` float32 return, ``[]`` float32 γ^m·∏d, and
      ``[]`` int32 m, the offset of the bootstrap observation s_m.
    """
    chex.assert_rank([reward_t, discount_t, last_t], 1)
    horizon = reward_t.shape[0]
    k = jnp.arange(1, horizon + 1)
    not_ended_before = jnp.concatenate([jnp.ones((1,), bool), jnp.cumprod(~last_t[:-1]).astype(bool)])
    alive = not_ended_before & (k <= n)
    m = jnp.sum(alive).astype(jnp.int32)
    gamma = jnp.asarray(gamma, jnp.float32)
    cumulative = jnp.cumprod(discount_t.astype(jnp.float32))
    before = jnp.concatenate([jnp.ones((1,), jnp.float32), cumulative[:-1]])
    powers = gamma ** jnp.arange(horizon, dtype=jnp.float32)
    ret = jnp.sum(jnp.where(alive, powers * before * reward_t, 0.0))
    bootstrap = gamma ** m.astype(jnp.float32) * cumulative[m - 1]
    return ret, bootstrap, m


def param_group(module_path: str) -> str:
    """The top-level group of a haiku module path: ``"encoder/~/stage0_conv"`` → ``"encoder"``."""
    return module_path.split("/")[0]


def shrink_and_perturb(old: Params, fresh: Params, *, keep_keys: Sequence[str], shrink: float,
                       perturb: float) -> Params:
    """BBF's reset: θ ← α·θ + β·θ₀ for the kept groups, θ ← θ₀ for every other group.

    Implements Sec. 3 of BBF ("Harder resets"), after Ash & Adams 2020 (arXiv 1910.08475)
    and Nikishin et al. 2022 (arXiv 2205.07802):

        θ_g ← shrink · θ_g + perturb · θ₀_g   if g ∈ keep_keys   (BBF: encoder, transition model; 0.5, 0.5)
        θ_g ← θ₀_g                            otherwise          (projection, predictor, head)

    with θ₀ a fresh random initialisation of the same network.

    Args:
      old: current parameters ``{module path: {name: array}}``.
      fresh: a fresh initialisation with the same structure.
      keep_keys: groups (first component of the module path) that are shrunk and perturbed.
      shrink: weight α on the old parameters.
      perturb: weight β on the fresh parameters.

    Returns:
      The reset parameters, same structure, shapes and dtypes.
    """
    chex.assert_trees_all_equal_shapes_and_dtypes(old, fresh)
    keep = frozenset(keep_keys)
    out = {}
    for path, leaves in old.items():
        if param_group(path) in keep:
            out[path] = jax.tree.map(lambda o, f: (shrink * o + perturb * f).astype(o.dtype), leaves, fresh[path])
        else:
            out[path] = fresh[path]
    return type(old)(out) if isinstance(old, Mapping) and type(old) is not dict else out


def weight_decay_mask(params: Params) -> Params:
    """True for leaves AdamW decays: every parameter that is not 1-D (biases are excluded).

    The reference implementation of BBF decays every leaf with ``ndim != 1``; this network's
    only 1-D parameters are biases.
    """
    return jax.tree.map(lambda x: x.ndim != 1, params)
