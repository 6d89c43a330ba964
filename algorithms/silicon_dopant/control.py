"""Steering the Si dopant to goal sites: beam-placement controllers and goal-reaching episodes.

Schwarzer, Farebrother, Greaves et al. 2023, arXiv 2311.17894, Sec. "control": at every step
pick the neighbour whose site is closest to the goal and place the beam where the swap rate
with that neighbour is highest, then dwell. A controller is a table ``[3, 2]`` of canonical
beam positions, one per neighbour (``placement[k]`` is where to aim to swap with neighbour k),
or ``None`` for random placement.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from algorithms.silicon_dopant import lattice, simulator


def neighbour_placements(canonical_position: np.ndarray) -> np.ndarray:
    """A placement for neighbour 0 rotated to all three neighbours ``[3, 2]`` (the 3-fold symmetry)."""
    return lattice.rotate(np.broadcast_to(np.asarray(canonical_position, np.float64), (3, 2)),
                          lattice.NEIGHBOUR_ANGLES)


def argmax_placements(rate_maps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per neighbour, the grid position of the highest rate: maps ``[G, 3]`` on ``grid [G, 2]`` → ``[3, 2]``."""
    return grid[np.argmax(rate_maps, axis=0)]


def closest_neighbour(si_site: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Index ``[B]`` of the neighbour whose site is nearest (Euclidean) to the goal site."""
    nbr = lattice.site_position(lattice.neighbour_sites(si_site))  # [B, 3, 2]
    return np.argmin(np.linalg.norm(nbr - lattice.site_position(goal)[:, None, :], axis=-1), axis=-1)


def beam_positions(rng: np.random.Generator, si_site: np.ndarray, goal: np.ndarray,
                   placement: Optional[np.ndarray], *, random_radius: float) -> np.ndarray:
    """World beam positions ``[B, 2]`` for the current sites: ``placement[k*]`` in the Si's canonical frame.

    ``placement=None`` is the random baseline: uniform in the disc of ``random_radius`` Å around the Si.
    """
    origin = lattice.site_position(si_site)
    if placement is None:
        r = random_radius * np.sqrt(rng.uniform(size=len(si_site)))
        a = rng.uniform(0, 2 * np.pi, len(si_site))
        return origin + np.stack([r * np.cos(a), r * np.sin(a)], -1)
    k = closest_neighbour(si_site, goal)
    return origin + lattice.sublattice_sign(si_site)[:, None] * placement[k]


def sample_goals(rng: np.random.Generator, episodes: int, distance: float) -> np.ndarray:
    """Goal sites ``[B, 3]``: the lattice site nearest to a point at ``distance`` Å in a random direction."""
    a = rng.uniform(0, 2 * np.pi, episodes)
    return lattice.nearest_site(distance * np.stack([np.cos(a), np.sin(a)], -1))


class EpisodeResult(NamedTuple):
    """Goal-reaching episodes of one controller."""

    success: np.ndarray  # [B] bool: the Si reached the goal within the time budget
    time_s: np.ndarray  # [B] float64 beam time until the goal (the budget when not reached)
    dwells: np.ndarray  # [B] int64 dwells used


def run_episodes(rng: np.random.Generator, rate_fn: lattice.RateFn, placement: Optional[np.ndarray],
                 goals: np.ndarray, *, dwell_s: float, max_time_s: float, random_radius: float = 2.0 * lattice.BOND
                 ) -> EpisodeResult:
    """Runs all episodes at once from site (0, 0, 0) until the goal or ``max_time_s`` of beam time.

    The state is checked after every dwell (as from the frame taken after it), so a Si that
    passes through the goal inside one dwell and leaves again has not reached it.
    """
    batch = len(goals)
    site = np.zeros((batch, 3), np.int64)
    done = np.all(site == goals, -1)
    time_s = np.zeros(batch)
    dwells = np.zeros(batch, np.int64)
    for _ in range(int(np.ceil(max_time_s / dwell_s))):
        idx = np.nonzero(~done)[0]
        if idx.size == 0:
            break
        beam = beam_positions(rng, site[idx], goals[idx], placement, random_radius=random_radius)
        site[idx] = simulator.dwell(rng, rate_fn, site[idx], beam, dwell_s).final_site
        time_s[idx] += dwell_s
        dwells[idx] += 1
        done[idx] = np.all(site[idx] == goals[idx], -1)
    return EpisodeResult(done, time_s, dwells)


def summarize(result: EpisodeResult) -> dict:
    """Success rate, mean time to goal over successful episodes, mean dwells."""
    ok = result.success
    return {"success_rate": float(ok.mean()),
            "mean_time_to_goal_s": float(result.time_s[ok].mean()) if ok.any() else None,
            "mean_dwells": float(result.dwells[ok].mean()) if ok.any() else None,
            "episodes": int(len(ok))}
