"""Beam-induced Si–C swaps as a continuous-time Markov jump process (vectorised, seeded numpy).

Schwarzer, Farebrother, Greaves et al. 2023, arXiv 2311.17894. With the beam parked at a world
position ``b`` for a dwell time ``T``, the Si at site ``x`` swaps with neighbour ``k`` at rate
``λ_k(b, x)`` (:func:`lattice.neighbour_rates` of the canonical beam position). Gillespie's
algorithm: the waiting time to the next swap is ``τ ~ Exp(Σ_k λ_k)``, the neighbour is ``k``
with probability ``λ_k / Σ_k λ_k``; after a swap the rates are recomputed for the new site
(the beam stays where it is), until the dwell time is used up.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from algorithms.silicon_dopant import lattice


class DwellResult(NamedTuple):
    """Outcome of one beam dwell for each of B independent dopants."""

    final_site: np.ndarray  # [B, 3] int64 Si site at the end of the dwell
    num_swaps: np.ndarray  # [B] int64 swaps during the dwell
    first_time: np.ndarray  # [B] float64 time (s) of the first swap, inf when none
    first_neighbour: np.ndarray  # [B] int64 canonical neighbour index of the first swap, -1 when none
    initial_rates: np.ndarray  # [B, 3] float64 λ_k at the start of the dwell (1/s)


def dwell(
    rng: np.random.Generator,
    rate_fn: lattice.RateFn,
    si_site: np.ndarray,
    beam: np.ndarray,
    dwell_s: np.ndarray | float,
    *,
    max_swaps: int = 64,
) -> DwellResult:
    """Runs the jump process for every dopant while the beam dwells at ``beam``.

    Args:
      rng: numpy generator (the only source of randomness).
      rate_fn: ground-truth f(u) (:mod:`lattice`).
      si_site: ``[B, 3]`` starting Si sites.
      beam: ``[B, 2]`` beam world positions (Å).
      dwell_s: ``[B]`` or scalar dwell times T (s).
      max_swaps: cap on swaps per dwell (a guard; reached only with absurd rates).

    Returns:
      :class:`DwellResult`.
    """
    site = np.array(si_site, np.int64, copy=True)
    beam = np.asarray(beam, np.float64)
    batch = site.shape[0]
    remaining = np.broadcast_to(np.asarray(dwell_s, np.float64), (batch,)).copy()
    num_swaps = np.zeros(batch, np.int64)
    first_time = np.full(batch, np.inf)
    first_neighbour = np.full(batch, -1, np.int64)
    initial_rates = lattice.neighbour_rates(rate_fn, lattice.canonical_beam(beam, site))
    active = np.ones(batch, bool)
    elapsed = np.zeros(batch)
    for _ in range(max_swaps):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        rates = lattice.neighbour_rates(rate_fn, lattice.canonical_beam(beam[idx], site[idx]))  # [b, 3]
        total = rates.sum(-1)
        wait = rng.exponential(1.0, idx.size) / total
        u = rng.uniform(size=idx.size)
        swaps = wait < remaining[idx]
        choice = np.minimum((u[:, None] * total[:, None] > np.cumsum(rates, -1)).sum(-1), 2)
        moved = idx[swaps]
        first = moved[num_swaps[moved] == 0]
        first_time[first] = elapsed[first] + wait[swaps][num_swaps[moved] == 0]
        first_neighbour[first] = choice[swaps][num_swaps[moved] == 0]
        site[moved] = lattice.neighbour_sites(site[moved])[np.arange(moved.size), choice[swaps]]
        num_swaps[moved] += 1
        elapsed[moved] += wait[swaps]
        remaining[moved] -= wait[swaps]
        active[idx[~swaps]] = False
    return DwellResult(site, num_swaps, first_time, first_neighbour, initial_rates)


class Recording(NamedTuple):
    """A data-collection session: T dwells of one dopant each in B independent field positions."""

    sites: np.ndarray  # [T + 1, B, 3] int64 true Si sites before each dwell (and after the last)
    beams: np.ndarray  # [T, B, 2] float64 beam world positions actually hit (Å), drift included
    commanded: np.ndarray  # [T, B, 2] float64 beam positions the controller asked for (scan frame, Å)
    drift: np.ndarray  # [T + 1, B, 2] float64 scan-frame drift when each frame is taken (Å)
    dwell_s: np.ndarray  # [T, B] float64 dwell times (s)


def random_drift(rng: np.random.Generator, steps: int, batch: int, *, step_std: float, bound: float) -> np.ndarray:
    """A bounded random walk ``[steps, batch, 2]`` (Å): the scan frame's slow drift, reflected at ±bound."""
    walk = np.cumsum(rng.normal(0.0, step_std, (steps, batch, 2)), axis=0)
    period = 4 * bound
    folded = np.mod(walk + bound, period)
    return np.where(folded < 2 * bound, folded, period - folded) - bound


def collect(
    rng: np.random.Generator,
    rate_fn: lattice.RateFn,
    *,
    steps: int,
    batch: int,
    dwell_s: float,
    beam_radius: float,
    drift_step: float,
    drift_bound: float,
) -> Recording:
    """Random-exploration data collection (the paper's data were gathered by placing the beam near the Si).

    At each step the beam is commanded to a point uniform in the disc of radius ``beam_radius``
    (Å) around the Si's *true* site (the operator sees the Si in the previous frame); it lands
    shifted by the scan drift of that frame, and dwells ``dwell_s`` seconds.
    """
    sites = np.zeros((steps + 1, batch, 3), np.int64)
    drift = random_drift(rng, steps + 1, batch, step_std=drift_step, bound=drift_bound)
    radius = beam_radius * np.sqrt(rng.uniform(size=(steps, batch)))
    angle = rng.uniform(0, 2 * np.pi, (steps, batch))
    offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)
    commanded = np.zeros((steps, batch, 2))
    beams = np.zeros((steps, batch, 2))
    for t in range(steps):
        commanded[t] = lattice.site_position(sites[t]) + offsets[t]
        beams[t] = commanded[t] + drift[t]
        sites[t + 1] = dwell(rng, rate_fn, sites[t], beams[t], dwell_s).final_site
    return Recording(sites, beams, commanded, drift, np.full((steps, batch), dwell_s))
