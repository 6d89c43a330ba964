"""Frames → atoms → alignment → symbolic states → labelled transitions, against the simulator's truth."""
import numpy as np
import pytest

from algorithms.silicon_dopant import imaging, lattice, simulator


def _frames(cfg, n, seed):
    rng = np.random.default_rng(seed)
    sites = lattice.nearest_site(rng.uniform(-20, 20, (n, 2)))
    drift = rng.uniform(-0.4, 0.4, (n, 2))
    return rng, sites, drift, imaging.render(rng, cfg, sites, lattice.site_position(sites), drift)


def test_render_shapes_contrast_and_poisson_mean():
    cfg = imaging.ImagingConfig(fov=8.0, dose=1e4, defect_prob=0.0)
    _, sites, drift, frames = _frames(cfg, 3, 0)
    assert frames.counts.shape == (3, 32, 32) and frames.counts.dtype == np.float32
    # The Si spot (≈ si_contrast) is the brightest pixel, near the frame centre minus the drift.
    for i in range(3):
        y, x = np.unravel_index(np.argmax(frames.counts[i]), frames.counts[i].shape)
        axis = imaging.scan_axis(cfg)
        np.testing.assert_allclose([axis[x], axis[y]], -drift[i], atol=cfg.pixel)
        assert frames.counts[i].max() / cfg.dose == pytest.approx(cfg.si_contrast, rel=0.15)


@pytest.mark.parametrize("dose, precision, recall", [(20.0, 0.97, 0.98), (5.0, 0.8, 0.95)])
def test_atom_detection_precision_and_recall(dose, precision, recall):
    cfg = imaging.ImagingConfig(dose=dose)
    _, _, _, frames = _frames(cfg, 30, 1)
    det = imaging.detect_atoms(cfg, frames.counts, frames.centre)
    scores = imaging.detection_scores(frames, det, cfg)
    assert scores["atoms"] > 30 * 30
    assert scores["precision"] > precision and scores["recall"] > recall
    assert scores["position_error_A"] < 0.2


def test_detection_scores_penalise_missing_and_spurious_atoms():
    cfg = imaging.ImagingConfig(dose=1e4, defect_prob=0.0)
    _, _, _, frames = _frames(cfg, 2, 2)
    det = imaging.detect_atoms(cfg, frames.counts, frames.centre)
    perfect = imaging.detection_scores(frames, det, cfg)
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0
    half = det.frame == 0
    fewer = imaging.Detections(det.frame[half], det.position[half], det.brightness[half])
    assert imaging.detection_scores(frames, fewer, cfg)["recall"] < 0.6
    shifted = det._replace(position=det.position + np.array([0.0, 0.7]))  # ≥ 0.88 Å from every atom
    assert imaging.detection_scores(frames, shifted, cfg)["precision"] < 0.05


def test_states_recover_si_site_and_drift_and_reject_defects():
    cfg = imaging.ImagingConfig(dose=20.0, defect_prob=0.0)
    _, sites, drift, frames = _frames(cfg, 40, 3)
    state = imaging.extract_states(cfg, imaging.detect_atoms(cfg, frames.counts, frames.centre), 40)
    assert state.three_fold.mean() > 0.85
    np.testing.assert_array_equal(state.si_site[state.three_fold], sites[state.three_fold])
    assert np.abs(state.drift - drift).max() < 0.1
    broken = cfg._replace(defect_prob=1.0)  # one Si neighbour missing in every frame
    _, _, _, frames = _frames(broken, 40, 3)
    state = imaging.extract_states(broken, imaging.detect_atoms(broken, frames.counts, frames.centre), 40)
    assert not state.three_fold.any()


def test_labels_and_beam_positions_match_the_simulator():
    cfg = imaging.ImagingConfig(dose=20.0)
    rng = np.random.default_rng(4)
    rec = simulator.collect(rng, lattice.make_rate_fn("mixture0"), steps=30, batch=10, dwell_s=1.0, beam_radius=3.0,
                            drift_step=0.05, drift_bound=0.4)
    n = 31 * 10
    centres = lattice.site_position(np.concatenate([rec.sites[:1], rec.sites[:-1]]).reshape(n, 3))
    frames = imaging.render(rng, cfg, rec.sites.reshape(n, 3), centres, rec.drift.reshape(n, 2))
    state = imaging.extract_states(cfg, imaging.detect_atoms(cfg, frames.counts, frames.centre), n)
    state = imaging.SymbolicState(*(x.reshape(31, 10, *x.shape[1:]) for x in state))
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    before = imaging.SymbolicState(*(flat(x[:-1]) for x in state))
    after = imaging.SymbolicState(*(flat(x[1:]) for x in state))
    tr, stats = imaging.label_transitions(before, after, flat(rec.commanded), flat(rec.dwell_s))
    assert stats["kept"] > 200 and stats["swaps"] > 30
    # Truth: same site → NO_MOVE, a neighbour → its canonical index.
    s0, s1 = flat(rec.sites[:-1]), flat(rec.sites[1:])
    hit = np.all(lattice.neighbour_sites(s0) == s1[:, None, :], -1)
    true_label = np.where(np.all(s0 == s1, -1), imaging.NO_MOVE, np.argmax(hit, -1))
    keep = before.three_fold & after.three_fold & (np.all(s0 == s1, -1) | hit.any(-1))
    np.testing.assert_array_equal(tr.label, true_label[keep])
    true_beam = lattice.canonical_beam(flat(rec.beams), s0)[keep]
    assert np.abs(tr.beam - true_beam).max() < 0.15  # drift estimation error only
