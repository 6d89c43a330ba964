"""Haiku forward function of the transition model (the only place that builds modules).

The network maps the canonical beam position relative to the Si (Å) to three neighbour logits
and the log of the total swap rate, as in Schwarzer, Farebrother, Greaves et al. 2023,
arXiv 2311.17894 (:mod:`algorithms.silicon_dopant.transition_model` holds the math around it).
"""
from __future__ import annotations

from typing import Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from algorithms.silicon_dopant.transition_model import TransitionOutput

POSITION_SCALE = 1.42
"""Inputs are divided by the C–C bond so that they are O(1)."""


def make_transition_network(hidden: Sequence[int] = (64, 64, 64)) -> hk.Transformed:
    """``apply(params, beam [B, 2]) -> TransitionOutput(logits [B, 3], log_rate [B])``.

    An MLP with GELU units on (x, y, |u|) of the scaled beam position; the last layer is
    initialised at zero so that a fresh model predicts uniform neighbours and a rate of 1/s.
    """

    def forward(beam: jax.Array) -> TransitionOutput:
        u = beam / POSITION_SCALE
        features = jnp.concatenate([u, jnp.linalg.norm(u, axis=-1, keepdims=True)], -1)
        h = features
        for width in hidden:
            h = jax.nn.gelu(hk.Linear(width)(h))
        out = hk.Linear(4, w_init=hk.initializers.Constant(0.0))(h)
        return TransitionOutput(logits=out[..., :3], log_rate=out[..., 3])

    return hk.without_apply_rng(hk.transform(forward))
