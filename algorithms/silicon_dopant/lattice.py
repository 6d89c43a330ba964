"""Graphene lattice geometry and the ground-truth beam-induced swap rates of a Si dopant.

Schwarzer, Farebrother, Greaves et al. 2023, "Learning and Controlling Silicon Dopant
Transitions in Graphene using Scanning Transmission Electron Microscopy", arXiv 2311.17894.

Sites are integer triples ``(i, j, s)``: world position ``i·a₁ + j·a₂ + s·(d, 0)`` with the
C–C bond ``d = 1.42 Å``, ``a₁ = d·(3/2, √3/2)``, ``a₂ = d·(3/2, −√3/2)``, sublattice ``s ∈ {0, 1}``.
A sublattice-0 site has its three neighbours at angles 0°, 120°, 240°; a sublattice-1 site at
180°, 300°, 60°, i.e. the same star turned by 180°. The *canonical frame* of a Si at sublattice
``s`` is the world frame multiplied by ``σ_s = +1 / −1``: there neighbour ``k`` always lies at
angle ``120°·k`` (the paper's canonical neighbour ordering).

A ground-truth rate function ``f(u)`` gives the swap rate (1/s) with the neighbour lying at
``(d, 0)`` for the canonical beam position ``u`` (Å, relative to the Si); the rate of
neighbour ``k`` is ``f(R(−120°·k)·u)``. Every rate function here is mirror-symmetric,
``f(x, y) = f(x, −y)``, so the rates have the lattice's full point symmetry (3-fold rotations
and the reflection through a bond), which is what the transition model's augmentation assumes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

BOND = 1.42
"""C–C bond length d (Å)."""
A1 = BOND * np.array([1.5, np.sqrt(3) / 2])
A2 = BOND * np.array([1.5, -np.sqrt(3) / 2])
NEIGHBOUR_ANGLES = np.deg2rad([0.0, 120.0, 240.0])
CANONICAL_NEIGHBOURS = BOND * np.stack([np.cos(NEIGHBOUR_ANGLES), np.sin(NEIGHBOUR_ANGLES)], -1)  # [3, 2]
# Integer offsets (di, dj, ds) of neighbour k of a sublattice-0 site (angle 120°·k); for
# sublattice 1 the offsets are negated in (di, dj) and the sublattice flips.
_OFFSETS_S0 = np.array([[0, 0, 1], [0, -1, 1], [-1, 0, 1]])
_OFFSETS_S1 = np.array([[0, 0, -1], [0, 1, -1], [1, 0, -1]])

RateFn = Callable[[np.ndarray], np.ndarray]


def site_position(site: np.ndarray) -> np.ndarray:
    """World position (Å) of integer sites ``[..., 3]`` → ``[..., 2]``."""
    site = np.asarray(site)
    return site[..., :1] * A1 + site[..., 1:2] * A2 + site[..., 2:3] * np.array([BOND, 0.0])


def sublattice_sign(site: np.ndarray) -> np.ndarray:
    """σ_s = +1 for sublattice 0, −1 for sublattice 1: world → canonical frame factor ``[...]``."""
    return 1.0 - 2.0 * np.asarray(site)[..., 2]


def neighbour_sites(site: np.ndarray) -> np.ndarray:
    """The three neighbours of ``[..., 3]`` sites in canonical order → ``[..., 3, 3]``."""
    site = np.asarray(site)
    offsets = np.where(site[..., None, 2:3] == 0, _OFFSETS_S0, _OFFSETS_S1)
    return site[..., None, :] + offsets


def nearest_site(position: np.ndarray) -> np.ndarray:
    """The lattice site nearest to world positions ``[..., 2]`` → ``[..., 3]`` (int64)."""
    position = np.asarray(position, np.float64)
    basis = np.stack([A1, A2], axis=1)  # columns a₁, a₂
    inv = np.linalg.inv(basis)
    best, best_d = None, None
    for s in (0, 1):
        frac = (position - s * np.array([BOND, 0.0])) @ inv.T
        base = np.floor(frac)
        for di in (0, 1):
            for dj in (0, 1):
                ij = base + np.array([di, dj])
                cand = np.concatenate([ij, np.full(ij.shape[:-1] + (1,), s)], -1)
                dist = np.linalg.norm(site_position(cand) - position, axis=-1)
                if best is None:
                    best, best_d = cand, dist
                else:
                    closer = dist < best_d
                    best = np.where(closer[..., None], cand, best)
                    best_d = np.minimum(dist, best_d)
    return best.astype(np.int64)


def swap_distance(a, b, *, limit: int = 200) -> int:
    """Fewest Si–C swaps (graph distance on the honeycomb) from site ``a`` to site ``b`` (breadth-first)."""
    start, goal = tuple(int(v) for v in a), tuple(int(v) for v in b)
    frontier, seen, dist = [start], {start}, 0
    while frontier and dist <= limit:
        if goal in seen:
            return dist
        nxt = []
        for site in frontier:
            for n in neighbour_sites(np.array(site)):
                t = tuple(int(v) for v in n)
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
        frontier, dist = nxt, dist + 1
    return -1


def rotate(points: np.ndarray, angle) -> np.ndarray:
    """Rotates ``[..., 2]`` points by ``angle`` (radians, broadcast against ``[...]``)."""
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[..., 0], points[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], -1)


def canonical_beam(beam: np.ndarray, si_site: np.ndarray) -> np.ndarray:
    """Beam world positions ``[..., 2]`` → canonical positions relative to the Si ``[..., 2]``."""
    return sublattice_sign(si_site)[..., None] * (np.asarray(beam) - site_position(si_site))


def neighbour_rates(rate_fn: RateFn, canonical: np.ndarray) -> np.ndarray:
    """λ_k(u) = f(R(−120°·k)·u) for the three neighbours: ``[..., 2]`` → ``[..., 3]`` (1/s)."""
    u = np.asarray(canonical, np.float64)[..., None, :]
    return rate_fn(rotate(u, -NEIGHBOUR_ANGLES))


# ----------------------------------------------------------------------------------------
# Ground-truth rate functions f(u): the swap rate with the neighbour at (d, 0), u in Å.
# ----------------------------------------------------------------------------------------

BASELINE_RATE = 0.005
"""Rate floor (1/s) far from the beam: spontaneous swaps are rare but not impossible."""


class GaussianMixture(NamedTuple):
    """f(u) = floor + Σ_m w_m · exp(−|u − μ_m|² / 2σ_m²), mirrored in y (all arrays [M, ...])."""

    weights: np.ndarray  # [M] peak rates (1/s)
    centres: np.ndarray  # [M, 2] Å, canonical frame
    widths: np.ndarray  # [M] σ (Å)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, np.float64)
        total = np.full(u.shape[:-1], BASELINE_RATE)
        for sign in (1.0, -1.0):  # mirror: f(x, y) = f(x, −y)
            centres = self.centres * np.array([1.0, sign])
            d2 = np.sum((u[..., None, :] - centres) ** 2, -1)
            total = total + 0.5 * np.sum(self.weights * np.exp(-d2 / (2 * self.widths**2)), -1)
        return total


def inverse_square(u: np.ndarray, *, peak: float = 2.0, softening: float = 0.45) -> np.ndarray:
    """f(u) = floor + peak · ε² / (ε² + |u − n|²): fall-off with the beam's distance to the neighbour n."""
    d2 = np.sum((np.asarray(u, np.float64) - CANONICAL_NEIGHBOURS[0]) ** 2, -1)
    return BASELINE_RATE + peak * softening**2 / (softening**2 + d2)


def gaussian_bump(u: np.ndarray, *, peak: float = 1.5, width: float = 0.5) -> np.ndarray:
    """f(u) = floor + peak · exp(−|u − n|² / 2σ²): a Gaussian bump on the neighbour (the prior)."""
    d2 = np.sum((np.asarray(u, np.float64) - CANONICAL_NEIGHBOURS[0]) ** 2, -1)
    return BASELINE_RATE + peak * np.exp(-d2 / (2 * width**2))


def random_mixture(seed: int, *, components: int = 3) -> GaussianMixture:
    """A random Gaussian mixture whose strongest component lies *beyond* the neighbour.

    The dominant component sits at x ∈ [1.3, 1.7]·d (the neighbour is at x = d) with a peak
    rate of 1.5–2.5/s; the others (weaker, 0.2–0.8/s) anywhere in x ∈ [0.3, 1.8]·d,
    |y| ≤ 0.6·d. Widths 0.35–0.6 Å. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([0x51, seed]))
    centres = np.stack([rng.uniform(0.3, 1.8, components) * BOND, rng.uniform(-0.6, 0.6, components) * BOND], -1)
    centres[0] = [rng.uniform(1.3, 1.7) * BOND, rng.uniform(-0.15, 0.15) * BOND]
    weights = np.concatenate([[rng.uniform(1.5, 2.5)], rng.uniform(0.2, 0.8, components - 1)])
    widths = rng.uniform(0.35, 0.6, components)
    return GaussianMixture(weights, centres, widths)


RATE_FUNCTIONS = ("inverse_square", "gaussian", "mixture0", "mixture1", "mixture2")


def make_rate_fn(name: str) -> RateFn:
    """``inverse_square``, ``gaussian`` or ``mixture<seed>`` → f(u)."""
    if name == "inverse_square":
        return inverse_square
    if name == "gaussian":
        return gaussian_bump
    if name.startswith("mixture") and name[len("mixture"):].isdigit():
        return random_mixture(int(name[len("mixture"):]))
    raise ValueError(f"unknown rate function {name!r}; choose inverse_square, gaussian or mixture<N>")


def rate_grid(radius: float, n: int) -> np.ndarray:
    """A square ``[n, n, 2]`` grid of canonical positions over [−radius, radius]² (Å)."""
    axis = np.linspace(-radius, radius, n)
    return np.stack(np.meshgrid(axis, axis, indexing="xy"), -1)


def argmax_position(rate_fn: RateFn, *, radius: float = 3.0, n: int = 121) -> np.ndarray:
    """argmax_u f(u) over the canonical grid: where to put the beam to swap with neighbour 0."""
    grid = rate_grid(radius, n)
    values = rate_fn(grid)
    return grid.reshape(-1, 2)[int(np.argmax(values))]
