"""The learned transition model of a Si dopant: likelihood, symmetry augmentation, ensemble, distillation.

Schwarzer, Farebrother, Greaves et al. 2023, "Learning and Controlling Silicon Dopant
Transitions in Graphene using Scanning Transmission Electron Microscopy", arXiv 2311.17894.
A model maps the canonical beam position ``u`` (Å, relative to the Si; neighbour ``k`` at angle
120°·k) to neighbour logits ``ℓ_k(u)`` and a log total rate ``ρ(u)``; the neighbour rates are
``λ_k(u) = e^ρ · softmax(ℓ)_k``. Vendorable: imports jax, chex and optax only; the network is any
``apply(params, u [B, 2]) -> TransitionOutput``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

NO_MOVE = 3
"""Label of a dwell after which the Si is where it was."""


class TransitionOutput(NamedTuple):
    """The model's prediction for a batch of beam positions."""

    logits: jax.Array  # [B, 3] neighbour logits ℓ_k
    log_rate: jax.Array  # [B] log total rate ρ = log Σ_k λ_k (λ in 1/s)


Apply = Callable[..., TransitionOutput]


def neighbour_rates(out: TransitionOutput) -> jax.Array:
    """λ_k = e^ρ · softmax(ℓ)_k → ``[B, 3]`` (1/s)."""
    return jnp.exp(out.log_rate)[..., None] * jax.nn.softmax(out.logits, axis=-1)


def log1mexp(x: jax.Array) -> jax.Array:
    """log(1 − e^{−x}) for x > 0, stable at both ends (Mächler 2012)."""
    x = jnp.maximum(x, 1e-12)
    small = x < np.log(2.0)
    # Each branch sees only inputs where it is finite, so the unused one has a finite gradient.
    return jnp.where(small, jnp.log(-jnp.expm1(-jnp.where(small, x, 1.0))),
                     jnp.log1p(-jnp.exp(-jnp.where(small, 1.0, x))))


def transition_nll(out: TransitionOutput, label: jax.Array, dwell_s: jax.Array) -> jax.Array:
    """Negative log-likelihood of one observed dwell per row: waiting-time term + cross-entropy.

    Implements the paper's objective for dwells observed by frames before and after (the swap
    time is censored to the dwell ``T``): with Λ = e^ρ and the first swap ``τ ~ Exp(Λ)``,

        no move:        −log P(τ > T)               = Λ·T
        swap with k:    −log P(τ ≤ T) − log π_k     = −log(1 − e^{−Λ·T}) − log softmax(ℓ)_k

    Args:
      out: ``TransitionOutput`` with logits ``[B, 3]`` and log_rate ``[B]``.
      label: ``[B]`` int, neighbour 0–2 or ``NO_MOVE``.
      dwell_s: ``[B]`` dwell times T (s).

    Returns:
      ``[B]`` per-dwell negative log-likelihood.

    Notes:
      A second swap inside the same dwell is not modelled (such dwells are discarded by the
      pipeline, or look like "no move" when the Si swaps back); short dwells (Λ·T ≲ 1) keep this small.
    """
    chex.assert_rank([out.logits, out.log_rate, label, dwell_s], [2, 1, 1, 1])
    hazard = jnp.exp(out.log_rate) * dwell_s
    moved = label != NO_MOVE
    waiting = jnp.where(moved, -log1mexp(hazard), hazard)
    log_pi = jax.nn.log_softmax(out.logits, axis=-1)
    cross_entropy = -jnp.take_along_axis(log_pi, jnp.minimum(label, 2)[:, None], axis=-1)[:, 0]
    return waiting + jnp.where(moved, cross_entropy, 0.0)


# ---------------------------------------------------------------------------------------
# Symmetry augmentation: the point group of a graphene site (3-fold rotations × reflection).
# ---------------------------------------------------------------------------------------


def symmetry_transform(beam: jax.Array, label: jax.Array, rotation: jax.Array, reflect: jax.Array):
    """Applies g = R(120°·r) ∘ M^m to the beam positions and relabels the neighbours.

    The reflection ``M: (x, y) → (x, −y)`` maps neighbour ``k → −k mod 3``, the rotation by
    ``120°·r`` maps ``k → k + r mod 3``; ``NO_MOVE`` is invariant. A rate function with the
    lattice's symmetry satisfies ``λ_{g(k)}(g·u) = λ_k(u)``.

    Args:
      beam: ``[B, 2]`` canonical positions; label: ``[B]`` int; rotation: ``[B]`` int in {0, 1, 2};
      reflect: ``[B]`` bool.

    Returns:
      ``(beam [B, 2], label [B])`` transformed.
    """
    y = jnp.where(reflect, -beam[:, 1], beam[:, 1])
    angle = 2.0 * jnp.pi / 3.0 * rotation
    c, s = jnp.cos(angle), jnp.sin(angle)
    x = beam[:, 0]
    new_beam = jnp.stack([c * x - s * y, s * x + c * y], -1)
    k = jnp.where(reflect, (-label) % 3, label)
    k = (k + rotation) % 3
    return new_beam, jnp.where(label == NO_MOVE, NO_MOVE, k).astype(label.dtype)


def augment(key: jax.Array, beam: jax.Array, label: jax.Array):
    """A uniformly random element of the 6-element group per row (the paper's symmetry augmentation)."""
    rot_key, ref_key = jax.random.split(key)
    rotation = jax.random.randint(rot_key, label.shape, 0, 3)
    reflect = jax.random.bernoulli(ref_key, 0.5, label.shape)
    return symmetry_transform(beam, label, rotation, reflect)


# ---------------------------------------------------------------------------------------
# Bootstrapped ensemble and its distillation.
# ---------------------------------------------------------------------------------------


def bootstrap_weights(key: jax.Array, num_members: int, num_data: int) -> jax.Array:
    """Multinomial bootstrap counts ``[E, N]``: each member resamples the N dwells with replacement."""
    idx = jax.random.randint(key, (num_members, num_data), 0, num_data)
    return jax.vmap(lambda i: jnp.zeros(num_data).at[i].add(1.0))(idx)


def ensemble_loss(apply: Apply, params, weights: jax.Array, beam: jax.Array, label: jax.Array,
                  dwell_s: jax.Array) -> jax.Array:
    """Mean over members of the bootstrap-weighted NLL: params stacked ``[E, ...]``, weights ``[E, B]``."""

    def member(p, w):
        nll = transition_nll(apply(p, beam), label, dwell_s)
        return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1.0)

    return jnp.mean(jax.vmap(member)(params, weights))


def ensemble_rates(apply: Apply, params, beam: jax.Array) -> jax.Array:
    """Neighbour rates of every member ``[E, B, 3]`` (params stacked ``[E, ...]``)."""
    return jax.vmap(lambda p: neighbour_rates(apply(p, beam)))(params)


def distillation_loss(student: TransitionOutput, teacher_rates: jax.Array) -> jax.Array:
    """Distils the ensemble mean λ̄_k = mean_e λ_{e,k} into one model.

        L = KL(π̄ ‖ softmax(ℓ)) + (ρ − log Σ_k λ̄_k)²,    π̄_k = λ̄_k / Σ_j λ̄_j

    Args:
      student: the student's ``TransitionOutput`` on ``[B, 2]`` positions.
      teacher_rates: ``[E, B, 3]`` member rates on the same positions.

    Returns:
      scalar loss.
    """
    mean = jnp.mean(teacher_rates, axis=0)
    total = jnp.sum(mean, -1)
    target = mean / total[:, None]
    log_q = jax.nn.log_softmax(student.logits, axis=-1)
    kl = jnp.sum(target * (jnp.log(jnp.maximum(target, 1e-12)) - log_q), -1)
    return jnp.mean(kl + (student.log_rate - jnp.log(total)) ** 2)


def rate_map_error(learned: np.ndarray, true: np.ndarray, positions: np.ndarray) -> dict:
    """Recovery of a rate map for neighbour 0 on grid ``positions [G, 2]`` (rates ``[G]``).

    Returns the relative L2 error ‖λ̂ − λ‖ / ‖λ‖, the relative error at the true argmax, and the
    distance (Å) between the argmaxes.
    """
    learned, true, positions = (np.asarray(a, np.float64) for a in (learned, true, positions))
    i_true, i_learned = int(np.argmax(true)), int(np.argmax(learned))
    return {
        "relative_l2": float(np.linalg.norm(learned - true) / np.linalg.norm(true)),
        "peak_relative_error": float(abs(learned[i_true] - true[i_true]) / true[i_true]),
        "argmax_distance_A": float(np.linalg.norm(positions[i_learned] - positions[i_true])),
        "learned_argmax": positions[i_learned].tolist(),
        "true_argmax": positions[i_true].tolist(),
    }
