"""Target-network updates as pure functions over parameter pytrees (haiku params, any nest).

* :func:`periodic_update` — hard copy every ``period`` steps (DQN, Mnih et al. 2015;
  Rainbow; Dopamine's ``target_update_period``).
* :func:`ema_update` — Polyak averaging every step (DDPG, Lillicrap et al. 2015,
  arXiv 1509.02971; SPR/BBF, Schwarzer et al. 2023, arXiv 2305.19452, use τ = 0.005).

Both run inside ``jit`` with a traced ``step`` / ``tau`` and return a new tree; the inputs are
never mutated. ``online`` and ``target`` must have the same structure, shapes and dtypes.

>>> import jax.numpy as jnp
>>> ema_update({"w": jnp.ones(2)}, {"w": jnp.zeros(2)}, tau=0.25)["w"]
Array([0.25, 0.25], dtype=float32)
"""
from __future__ import annotations

from typing import Any, Union

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
Params = Any  # a pytree of arrays, e.g. haiku parameters


def periodic_update(online: Params, target: Params, step: Array, *, period: Union[int, Array]) -> Params:
    """Hard target update: returns ``online`` when step % period == 0, else ``target``.

    Implements the target network of DQN (Mnih et al. 2015, Nature 518, "every C updates we
    clone the network Q to obtain a target network Q̂"):

        θ⁻ ← θ   if step mod period = 0,   θ⁻ ← θ⁻ otherwise.

    Args:
      online: pytree θ of online parameters.
      target: pytree θ⁻ of target parameters, same structure, shapes and dtypes.
      step: ``[]`` int, possibly traced; the counter of gradient steps. Call it after
        incrementing the counter (as Dopamine does) so the first copy happens at ``period``;
        step 0 also copies.
      period: keyword-only positive int (or ``[]`` int array), the update period C in steps.

    Returns:
      The new target pytree.
    """
    chex.assert_trees_all_equal_shapes_and_dtypes(online, target)
    chex.assert_rank(step, 0)
    chex.assert_type(step, int)
    if isinstance(period, int) and period < 1:
        raise ValueError(f"periodic_update: period must be a positive int, got {period!r}")
    copy = jnp.mod(step, period) == 0
    return jax.lax.cond(copy, lambda: online, lambda: target)


def ema_update(online: Params, target: Params, *, tau: Union[float, Array]) -> Params:
    """Exponential moving average (Polyak) target update, applied leaf by leaf.

    Implements the soft target update of DDPG (Lillicrap et al. 2015, arXiv 1509.02971,
    Alg. 1) used by SPR and BBF (arXiv 2007.05929, 2305.19452; BBF: τ = 0.005 every step):

        θ⁻ ← (1 − τ) · θ⁻ + τ · θ.

    Args:
      online: pytree θ of online parameters (floating leaves).
      target: pytree θ⁻ of target parameters, same structure, shapes and dtypes.
      tau: keyword-only step size τ ∈ [0, 1], a float or a ``[]`` array (may be traced, e.g.
        from a schedule); τ = 1 copies ``online``, τ = 0 keeps ``target``.

    Returns:
      The new target pytree, each leaf in its original dtype (a float32 τ does not promote
      bfloat16 parameters).
    """
    chex.assert_trees_all_equal_shapes_and_dtypes(online, target)
    chex.assert_rank(tau, 0)
    if isinstance(tau, (int, float)) and not 0.0 <= tau <= 1.0:
        raise ValueError(f"ema_update: tau must lie in [0, 1], got {tau!r}")

    def update(theta: Array, theta_target: Array) -> Array:
        return ((1.0 - tau) * theta_target + tau * theta).astype(theta_target.dtype)

    return jax.tree.map(update, online, target)
