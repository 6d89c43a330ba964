"""Step-indexed schedules usable inside ``jit`` (step may be a traced integer)."""
from __future__ import annotations

import chex
import jax.numpy as jnp

Array = chex.Array


def linear_schedule(step: Array, *, start: float, end: float, duration: int, begin: int = 0) -> Array:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps after ``begin``.

    value(t) = start + (end − start) · clip((t − begin) / duration, 0, 1). This is the
    ε-greedy decay of DQN (Mnih et al. 2015) and Dopamine's ``linearly_decaying_epsilon``.
    """
    fraction = jnp.clip((jnp.asarray(step, jnp.float32) - begin) / max(duration, 1), 0.0, 1.0)
    return start + (end - start) * fraction


def exponential_interpolation(
    step: Array, *, start: float, end: float, duration: int, begin: int = 0
) -> Array:
    """Geometric interpolation: value(t) = start · (end / start)^clip((t − begin)/duration, 0, 1).

    BBF (Schwarzer et al. 2023, arXiv 2305.19452) anneals the update horizon n from 10 to 3
    this way after every reset. ``start`` and ``end`` must be positive.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"exponential_interpolation needs positive endpoints, got {start}, {end}")
    fraction = jnp.clip((jnp.asarray(step, jnp.float32) - begin) / max(duration, 1), 0.0, 1.0)
    return start * jnp.power(end / start, fraction)


def annealed_discount(step: Array, *, start: float, end: float, duration: int, begin: int = 0) -> Array:
    """γ annealed log-linearly in the horizon 1 − γ: 1 − γ(t) interpolates geometrically.

    BBF anneals γ from 0.97 to 0.997 this way over 10k gradient steps after each reset.
    """
    horizon = exponential_interpolation(step, start=1.0 - start, end=1.0 - end, duration=duration, begin=begin)
    return 1.0 - horizon
