"""STEM-like frames of the dopant's neighbourhood, atom detection, alignment, symbolic states.

Schwarzer, Farebrother, Greaves et al. 2023, arXiv 2311.17894, Sec. "data pipeline": frames →
atom positions → alignment to the lattice → symbolic state (the Si site and its three carbon
neighbours), keeping only three-fold configurations, and the transitions between consecutive
states labelled "no move" or "swapped with neighbour k".

Image model (HAADF-like Z-contrast): every atom is a Gaussian spot of width ``spot_sigma``,
the Si ``si_contrast`` times brighter than a carbon (≈ (14/6)^1.7 ≈ 4); each pixel's count is
Poisson with mean ``dose · (background + Σ spots)``, ``dose`` being the expected count at the
centre of a carbon. The scan frame drifts: a frame whose nominal centre is ``c`` shows the
world at ``scan + drift``. With probability ``defect_prob`` a frame shows one of the Si's
neighbours missing (a vacancy/ambiguous configuration the pipeline must discard).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from algorithms.silicon_dopant import lattice


class ImagingConfig(NamedTuple):
    """Frame geometry and noise (lengths in Å)."""

    fov: float = 12.0  # side of the square field of view (Å)
    pixel: float = 0.25  # pixel size (Å)
    spot_sigma: float = 0.35  # atom spot width (Å)
    si_contrast: float = 4.0  # Si / C peak intensity
    background: float = 0.05  # background level relative to a carbon peak
    dose: float = 20.0  # expected counts at a carbon peak (the noise level)
    defect_prob: float = 0.05  # probability that a frame shows a Si neighbour missing
    smooth_sigma: float = 0.15  # detection pre-smoothing (Å); narrower than the spot so the bright Si's tail
    #                             does not swallow its neighbours' maxima

    @property
    def size(self) -> int:
        return int(round(self.fov / self.pixel))


def _patch(radius: float) -> np.ndarray:
    """All sites ``[M, 3]`` within ``radius`` Å of the origin cell (both sublattices)."""
    n = int(np.ceil(radius / lattice.BOND)) + 2
    i, j, s = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), np.arange(2), indexing="ij")
    sites = np.stack([i.ravel(), j.ravel(), s.ravel()], -1)
    return sites[np.linalg.norm(lattice.site_position(sites), axis=-1) <= radius]


def scan_axis(cfg: ImagingConfig) -> np.ndarray:
    """Pixel-centre coordinates ``[size]`` relative to the frame centre (Å)."""
    return (np.arange(cfg.size) - (cfg.size - 1) / 2) * cfg.pixel


class Frames(NamedTuple):
    """A batch of rendered frames and the truth behind them (truth only for evaluation)."""

    counts: np.ndarray  # [B, H, W] float32 detector counts
    centre: np.ndarray  # [B, 2] nominal scan-frame centre (Å), known to the pipeline
    atoms_scan: np.ndarray  # [B, M, 2] true atom positions in scan coordinates (Å), NaN when absent


def render(rng: np.random.Generator, cfg: ImagingConfig, si_site: np.ndarray, centre: np.ndarray,
           drift: np.ndarray) -> Frames:
    """Renders ``[B]`` frames of the lattice around Si sites ``[B, 3]``.

    The frame centred at scan position ``centre`` ``[B, 2]`` shows world points ``scan + drift``;
    an atom at world ``w`` appears at scan position ``w − drift``.
    """
    si_site = np.asarray(si_site, np.int64)
    batch = si_site.shape[0]
    offset = np.linalg.norm(lattice.site_position(si_site) - centre, axis=-1).max(initial=0.0)
    patch = _patch(cfg.fov / np.sqrt(2) + offset + 3 * cfg.spot_sigma + lattice.BOND)  # [M, 3]
    cells = si_site[:, None, :2] + patch[None, :, :2]
    sites = np.concatenate([cells, np.broadcast_to(patch[None, :, 2:], (batch, len(patch), 1))], -1)
    world = lattice.site_position(sites)  # [B, M, 2]
    is_si = np.all(sites == si_site[:, None, :], -1)
    intensity = np.where(is_si, cfg.si_contrast, 1.0)
    neighbours = lattice.neighbour_sites(si_site)  # [B, 3, 3]
    defect = rng.uniform(size=batch) < cfg.defect_prob
    missing = neighbours[np.arange(batch), rng.integers(0, 3, batch)]
    absent = defect[:, None] & np.all(sites == missing[:, None, :], -1)
    intensity = np.where(absent, 0.0, intensity).astype(np.float32)
    scan = world - drift[:, None, :] - centre[:, None, :]  # relative to the frame centre
    axis = scan_axis(cfg)
    scan = scan.astype(np.float32)
    axis = axis.astype(np.float32)
    gx = np.exp(-((axis[None, None, :] - scan[..., 0:1]) ** 2) / (2 * cfg.spot_sigma**2))  # [B, M, W]
    gy = np.exp(-((axis[None, None, :] - scan[..., 1:2]) ** 2) / (2 * cfg.spot_sigma**2))  # [B, M, H]
    image = cfg.background + np.matmul(np.swapaxes(gy * intensity[..., None], 1, 2), gx)  # [B, H, W]
    counts = rng.poisson(cfg.dose * image).astype(np.float32)
    atoms = np.where(absent[..., None], np.nan, scan + centre[:, None, :])
    return Frames(counts, np.asarray(centre, np.float64), atoms)


class Detections(NamedTuple):
    """Detected atoms of a batch of frames, flattened over frames."""

    frame: np.ndarray  # [P] int64 frame index of each detected atom
    position: np.ndarray  # [P, 2] scan coordinates (Å)
    brightness: np.ndarray  # [P] smoothed peak value / dose (≈ 1 for C, ≈ si_contrast for Si)


def detect_atoms(cfg: ImagingConfig, frames: np.ndarray, centre: np.ndarray, *, threshold: float = 0.45) -> Detections:
    """Atom detection: Gaussian smoothing, local maxima above ``threshold`` × a carbon peak, sub-pixel centroid.

    The smoothing kernel (``smooth_sigma``) is narrower than the spot, the maxima
    neighbourhood is a disc of radius 0.5 Å (well under the 1.42 Å bond), and the position is refined by the intensity-weighted
    centroid of the 3×3 pixels around the maximum.
    """
    sig = cfg.smooth_sigma / cfg.pixel
    smooth = ndimage.gaussian_filter(np.asarray(frames, np.float32), sigma=(0, sig, sig), mode="nearest")
    smooth /= cfg.dose
    # A unit carbon spot (σ) smoothed by a normalised Gaussian (σ_s) peaks at σ² / (σ² + σ_s²).
    peak = cfg.spot_sigma**2 / (cfg.spot_sigma**2 + cfg.smooth_sigma**2)
    level = cfg.background + peak * threshold
    r = max(1, int(round(0.5 / cfg.pixel)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy**2 + xx**2 <= r * r)[None]
    peaks = (smooth == ndimage.maximum_filter(smooth, footprint=disk, mode="nearest")) & (smooth > level)
    peaks[:, [0, -1], :] = False
    peaks[:, :, [0, -1]] = False
    b, y, x = np.nonzero(peaks)
    dy, dx = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    w = smooth[b[:, None, None], y[:, None, None] + dy, x[:, None, None] + dx] - cfg.background
    w = np.maximum(w, 0.0)
    total = w.sum((1, 2)) + 1e-12
    cy = y + (w * dy).sum((1, 2)) / total
    cx = x + (w * dx).sum((1, 2)) / total
    axis0 = (cfg.size - 1) / 2
    position = np.stack([(cx - axis0) * cfg.pixel, (cy - axis0) * cfg.pixel], -1) + np.asarray(centre)[b]
    return Detections(b.astype(np.int64), position, (smooth[b, y, x] - cfg.background) / peak)


def detection_scores(frames: Frames, det: Detections, cfg: ImagingConfig, *, tolerance: float = 0.5,
                     margin: float = 0.5) -> dict:
    """Precision and recall of detected atom positions (matched one-to-one within ``tolerance`` Å).

    Atoms within ``margin`` Å of the frame border are excluded from both sides (half-visible spots).
    """
    half = cfg.fov / 2 - margin
    tp = fp = fn = 0
    errors = []
    for i in range(len(frames.counts)):
        truth = frames.atoms_scan[i]
        truth = truth[np.all(np.isfinite(truth), -1)]
        truth = truth[np.all(np.abs(truth - frames.centre[i]) <= half, -1)]
        found = det.position[det.frame == i]
        found = found[np.all(np.abs(found - frames.centre[i]) <= half, -1)]
        if len(found) == 0 or len(truth) == 0:
            fp, fn = fp + len(found), fn + len(truth)
            continue
        dist, idx = cKDTree(truth).query(found, distance_upper_bound=tolerance)
        used = set()
        for d, j in sorted(zip(dist, idx)):
            if np.isfinite(d) and j not in used:
                used.add(j)
                errors.append(d)
        tp_i = len(used)
        tp, fp, fn = tp + tp_i, fp + len(found) - tp_i, fn + len(truth) - tp_i
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "position_error_A": float(np.mean(errors)) if errors else float("nan"), "atoms": tp + fn}


class SymbolicState(NamedTuple):
    """The symbolic state the pipeline extracts from each frame."""

    si_site: np.ndarray  # [B, 3] int64 lattice site of the Si (world frame)
    drift: np.ndarray  # [B, 2] estimated scan drift (Å)
    three_fold: np.ndarray  # [B] bool: exactly three C neighbours detected at the three bond sites


def extract_states(cfg: ImagingConfig, det: Detections, num_frames: int, *, si_threshold: float = 2.0,
                   bond_tolerance: float = 0.45) -> SymbolicState:
    """Alignment and symbolic state extraction.

    Alignment: the drift of each frame is the median over its atoms of (nearest lattice site −
    detected scan position), valid while |drift| < d/2. The Si is the brightest detected spot
    (required ≥ ``si_threshold`` × a carbon); its site is the nearest lattice site of its
    aligned position. The configuration is three-fold when exactly three detected atoms lie
    within ``bond_tolerance`` Å of the three neighbour sites, one each, and no other atom lies
    within 1.9 Å of the Si.
    """
    si = np.zeros((num_frames, 3), np.int64)
    drift = np.zeros((num_frames, 2))
    ok = np.zeros(num_frames, bool)
    bounds = np.searchsorted(det.frame, np.arange(num_frames + 1))
    residual = lattice.site_position(lattice.nearest_site(det.position)) - det.position  # [P, 2]
    brightest = np.zeros(num_frames, np.int64)
    for i in range(num_frames):
        lo, hi = bounds[i], bounds[i + 1]
        if hi - lo >= 4:
            drift[i] = np.median(residual[lo:hi], axis=0)
            brightest[i] = lo + int(np.argmax(det.brightness[lo:hi]))
    has_atoms = (bounds[1:] - bounds[:-1]) >= 4
    world = det.position + drift[det.frame]  # aligned positions [P, 2]
    si = np.where(has_atoms[:, None], lattice.nearest_site(world[brightest]), 0)
    bright_enough = has_atoms & (det.brightness[brightest] >= si_threshold)
    targets = lattice.site_position(lattice.neighbour_sites(si))  # [F, 3, 2]
    to_si = np.linalg.norm(world - lattice.site_position(si)[det.frame], axis=-1)  # [P]
    close = (to_si < 1.9) & (np.arange(len(world)) != brightest[det.frame])
    dist = np.linalg.norm(world[:, None, :] - targets[det.frame], axis=-1)  # [P, 3]
    hits = close[:, None] & (dist < bond_tolerance) & (dist == dist.min(-1, keepdims=True))
    per_site = np.zeros((num_frames, 3), np.int64)
    np.add.at(per_site, det.frame, hits.astype(np.int64))
    num_close = np.bincount(det.frame[close], minlength=num_frames)
    ok = bright_enough & (num_close == 3) & np.all(per_site == 1, -1)
    return SymbolicState(si, drift, ok)


class Transitions(NamedTuple):
    """The labelled transitions the transition model trains on (one row per kept dwell)."""

    beam: np.ndarray  # [N, 2] float32 canonical beam position relative to the Si (Å)
    label: np.ndarray  # [N] int32: neighbour k ∈ {0, 1, 2} that swapped, or 3 = no move
    dwell_s: np.ndarray  # [N] float32 dwell time (s)


NO_MOVE = 3


def label_transitions(before: SymbolicState, after: SymbolicState, commanded: np.ndarray,
                      dwell_s: np.ndarray) -> tuple[Transitions, dict]:
    """Labels consecutive states; keeps dwells with both frames three-fold and at most one swap seen.

    The beam position relative to the Si is the commanded scan position plus the drift
    estimated on the frame before the dwell, minus the Si's aligned site position, in the
    canonical frame of that site.
    """
    valid = before.three_fold & after.three_fold
    same = np.all(before.si_site == after.si_site, -1)
    neighbours = lattice.neighbour_sites(before.si_site)  # [B, 3, 3]
    hit = np.all(neighbours == after.si_site[:, None, :], -1)  # [B, 3]
    label = np.where(same, NO_MOVE, np.argmax(hit, -1))
    keep = valid & (same | hit.any(-1))
    beam = lattice.canonical_beam(commanded + before.drift, before.si_site)
    stats = {"dwells": int(len(valid)), "three_fold": int(valid.sum()), "kept": int(keep.sum()),
             "multi_swap_discarded": int((valid & ~keep).sum()),
             "swaps": int((keep & ~same).sum())}
    return Transitions(beam[keep].astype(np.float32), label[keep].astype(np.int32),
                       np.asarray(dwell_s)[keep].astype(np.float32)), stats
