"""When masks are updated and at which sparsity: JaxPruner's four sparsity schedules.

Lee et al. 2023, "JaxPruner: A concise library for sparsity research", arXiv 2304.14082.
Each schedule is a NamedTuple of static integers with two pure functions of the optimizer
step t (the number of updates taken before this one, traced):

* ``is_mask_update_iter(t)`` → bool ``[]``: whether the masks are recomputed at step t;
* ``sparsity(s, t)`` → float32 ``[]``: the sparsity of a layer whose final sparsity is s.

=====================  ==============================================================
schedule               masks updated at                          sparsity s_t
=====================  ==============================================================
NoUpdateSchedule       never (the initial masks stay)            s
OneShotSchedule        t = target_step                           s
PeriodicSchedule       start ≤ t (≤ end), (t − start) mod f = 0  s (sparse training: SET, RigL)
PolynomialSchedule     start ≤ t ≤ end, (t − start) mod f = 0,   s + (0 − s)(1 − (t − start)/(end − start))³
                       and t = end                               (Zhu & Gupta 2017, arXiv 1710.01878)
=====================  ==============================================================

Vendorable: imports only jax.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import jax.numpy as jnp

Array = jnp.ndarray


class NoUpdateSchedule(NamedTuple):
    """Masks are never updated: they keep their initial value (static sparse training, or dense)."""

    def is_mask_update_iter(self, step) -> Array:
        return jnp.zeros((), bool) & (jnp.asarray(step) < 0)

    def sparsity(self, target_sparsity, step) -> Array:
        del step
        return jnp.asarray(target_sparsity, jnp.float32)


class OneShotSchedule(NamedTuple):
    """One pruning event, at step ``target_step``, straight to the target sparsity."""

    target_step: int = 0

    def is_mask_update_iter(self, step) -> Array:
        return jnp.asarray(step) == self.target_step

    def sparsity(self, target_sparsity, step) -> Array:
        del step
        return jnp.asarray(target_sparsity, jnp.float32)


class PeriodicSchedule(NamedTuple):
    """Mask updates every ``update_freq`` steps from ``update_start_step`` to ``update_end_step`` (None: forever)."""

    update_freq: int
    update_start_step: int = 0
    update_end_step: Optional[int] = None

    def is_mask_update_iter(self, step) -> Array:
        step = jnp.asarray(step)
        on = (step >= self.update_start_step) & ((step - self.update_start_step) % self.update_freq == 0)
        if self.update_end_step is not None:
            on = on & (step <= self.update_end_step)
        return on

    def sparsity(self, target_sparsity, step) -> Array:
        del step
        return jnp.asarray(target_sparsity, jnp.float32)


class PolynomialSchedule(NamedTuple):
    """Gradual magnitude pruning (Zhu & Gupta 2017): sparsity rises as a cubic from 0 to the target.

    s_t = s + (s_0 − s)(1 − p_t)^power, p_t = clip((t − start) / (end − start), 0, 1), s_0 = 0;
    masks are updated every ``update_freq`` steps in [start, end] and at t = end, so the last
    update reaches the target exactly.
    """

    update_freq: int
    update_start_step: int
    update_end_step: int
    power: int = 3

    def is_mask_update_iter(self, step) -> Array:
        step = jnp.asarray(step)
        inside = (step >= self.update_start_step) & (step <= self.update_end_step)
        return inside & (((step - self.update_start_step) % self.update_freq == 0) | (step == self.update_end_step))

    def sparsity(self, target_sparsity, step) -> Array:
        span = max(self.update_end_step - self.update_start_step, 1)
        progress = jnp.clip((jnp.asarray(step, jnp.float32) - self.update_start_step) / span, 0.0, 1.0)
        target = jnp.asarray(target_sparsity, jnp.float32)
        return target * (1.0 - (1.0 - progress) ** self.power)


Schedule = Union[NoUpdateSchedule, OneShotSchedule, PeriodicSchedule, PolynomialSchedule]


def cosine_drop_fraction(step, *, initial: float, decay_steps: int) -> Array:
    """SET/RigL's drop fraction: f_t = f_0 · ½(1 + cos(π · min(t, T) / T)) (Evci et al. 2020, arXiv 1911.11134)."""
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(decay_steps, 1), 0.0, 1.0)
    return initial * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
