"""Lattice geometry, ground-truth rates and the continuous-time swap process: statistical tests, fixed seeds."""
import numpy as np
import pytest
from scipy import stats

from algorithms.silicon_dopant import lattice, simulator

SITES = np.array([[0, 0, 0], [3, -2, 1], [-1, 4, 0], [2, 2, 1]])


def test_neighbours_are_one_bond_away_in_canonical_order():
    for site in SITES:
        offsets = lattice.site_position(lattice.neighbour_sites(site)) - lattice.site_position(site)
        np.testing.assert_allclose(np.linalg.norm(offsets, axis=-1), lattice.BOND, atol=1e-12)
        # In the Si's canonical frame neighbour k sits at angle 120°·k.
        canonical = lattice.sublattice_sign(site) * offsets
        np.testing.assert_allclose(canonical, lattice.CANONICAL_NEIGHBOURS, atol=1e-12)
        # Swapping is symmetric: the Si's old site is a neighbour of the new one.
        for n in lattice.neighbour_sites(site):
            assert any(np.array_equal(site, m) for m in lattice.neighbour_sites(n))


def test_nearest_site_inverts_site_position_under_small_offsets():
    rng = np.random.default_rng(0)
    sites = np.stack([rng.integers(-9, 10, 500), rng.integers(-9, 10, 500), rng.integers(0, 2, 500)], -1)
    r, a = 0.65 * np.sqrt(rng.uniform(size=500)), rng.uniform(0, 2 * np.pi, 500)  # within d/2 = 0.71 Å
    noisy = lattice.site_position(sites) + np.stack([r * np.cos(a), r * np.sin(a)], -1)
    np.testing.assert_array_equal(lattice.nearest_site(noisy), sites)


def test_swap_distance_hand_cases():
    assert lattice.swap_distance((0, 0, 0), (0, 0, 0)) == 0
    assert lattice.swap_distance((0, 0, 0), (0, 0, 1)) == 1
    assert lattice.swap_distance((0, 0, 0), (1, 0, 0)) == 2  # across one hexagon edge pair
    assert lattice.swap_distance((0, 0, 0), (1, -1, 0)) == 2  # a₁ − a₂ = (0, √3 d): two bonds


@pytest.mark.parametrize("name", ["inverse_square", "gaussian", "mixture0", "mixture1"])
def test_rates_have_the_lattice_point_symmetry(name):
    rate_fn = lattice.make_rate_fn(name)
    u = np.random.default_rng(1).uniform(-3, 3, (200, 2))
    rates = lattice.neighbour_rates(rate_fn, u)
    assert rates.shape == (200, 3) and np.all(rates > 0)
    for r in (1, 2):  # rotating the beam by 120°·r moves rate k to neighbour k + r
        rotated = lattice.neighbour_rates(rate_fn, lattice.rotate(u, r * 2 * np.pi / 3))
        np.testing.assert_allclose(rotated, np.roll(rates, r, axis=-1), rtol=1e-10)
    mirrored = lattice.neighbour_rates(rate_fn, u * np.array([1.0, -1.0]))  # k → −k mod 3
    np.testing.assert_allclose(mirrored, rates[:, [0, 2, 1]], rtol=1e-10)


def test_world_rotation_about_a_site_permutes_rates_on_both_sublattices():
    rate_fn = lattice.make_rate_fn("mixture0")
    rng = np.random.default_rng(2)
    for site in SITES:
        centre = lattice.site_position(site)
        beam = centre + rng.uniform(-2.5, 2.5, (50, 2))
        rates = lattice.neighbour_rates(rate_fn, lattice.canonical_beam(beam, np.broadcast_to(site, (50, 3))))
        turned = centre + lattice.rotate(beam - centre, 2 * np.pi / 3)
        rates_turned = lattice.neighbour_rates(rate_fn, lattice.canonical_beam(turned, np.broadcast_to(site, (50, 3))))
        np.testing.assert_allclose(rates_turned, np.roll(rates, 1, axis=-1), rtol=1e-10)


def test_mixture_optima_lie_beyond_the_neighbour_and_the_prior_bumps_on_it():
    for seed in range(3):
        opt = lattice.argmax_position(lattice.make_rate_fn(f"mixture{seed}"))
        assert np.linalg.norm(opt) > lattice.BOND + 0.3 and abs(opt[1]) < 0.3
    for name in ("inverse_square", "gaussian"):
        np.testing.assert_allclose(lattice.argmax_position(lattice.make_rate_fn(name), n=143),
                                   lattice.CANONICAL_NEIGHBOURS[0], atol=0.05)


def _one_swap_statistics(beam, n=20_000, seed=3):
    rate_fn = lattice.make_rate_fn("mixture0")
    site = np.zeros((n, 3), np.int64)
    res = simulator.dwell(np.random.default_rng(seed), rate_fn, site, np.tile(beam, (n, 1)), 1e3, max_swaps=1)
    return res, res.initial_rates[0]


@pytest.mark.parametrize("beam", [[1.9, 0.2], [-0.5, 1.3], [0.3, -0.4]])
def test_waiting_times_are_exponential_with_mean_one_over_total_rate(beam):
    res, rates = _one_swap_statistics(np.array(beam))
    total = rates.sum()
    t = res.first_time
    assert np.all(np.isfinite(t))  # with T = 1000 s every dopant swaps
    standard_error = 1.0 / total / np.sqrt(len(t))
    assert abs(t.mean() - 1.0 / total) < 4 * standard_error
    assert stats.kstest(t * total, "expon").pvalue > 1e-3


@pytest.mark.parametrize("beam", [[1.9, 0.2], [-0.5, 1.3], [0.3, -0.4]])
def test_neighbour_frequencies_match_rate_ratios_chi_square(beam):
    res, rates = _one_swap_statistics(np.array(beam), seed=4)
    observed = np.bincount(res.first_neighbour, minlength=3)
    expected = len(res.first_neighbour) * rates / rates.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # A biased sampler (neighbours uniform) would be rejected by the same test.
    assert stats.chisquare(observed, np.full(3, len(res.first_neighbour) / 3)).pvalue < 1e-6


def test_no_swap_probability_within_a_dwell_is_exp_minus_total_rate_times_dwell():
    n, dwell_s, beam = 20_000, 0.4, np.array([1.42, 0.0])
    site = np.zeros((n, 3), np.int64)
    res = simulator.dwell(np.random.default_rng(5), lattice.inverse_square, site, np.tile(beam, (n, 1)), dwell_s)
    p = np.exp(-res.initial_rates[0].sum() * dwell_s)
    assert stats.binomtest(int(np.sum(res.num_swaps == 0)), n, p).pvalue > 1e-3
    one = res.num_swaps == 1  # a single swap ends at the neighbour that was drawn
    expected = lattice.neighbour_sites(site[one])[np.arange(one.sum()), res.first_neighbour[one]]
    np.testing.assert_array_equal(res.final_site[one], expected)
    assert np.all(res.first_time[res.num_swaps == 0] == np.inf)


def test_rates_are_recomputed_after_each_swap():
    # Beam on neighbour 0 with a huge inverse-square peak: after the first swap the Si sits under
    # the beam, whose rates there are the (different) rates of the new site; a process that kept
    # the initial rates would swap again at the initial total rate.
    n, beam = 20_000, np.array([lattice.BOND, 0.0])
    rate_fn = lambda u: lattice.inverse_square(u, peak=50.0)  # noqa: E731
    site = np.zeros((n, 3), np.int64)
    res = simulator.dwell(np.random.default_rng(6), rate_fn, site, np.tile(beam, (n, 1)), 0.2)
    moved = res.final_site[res.num_swaps == 1]
    assert len(moved)
    new_rates = lattice.neighbour_rates(rate_fn, lattice.canonical_beam(np.tile(beam, (1, 1)), np.array([[0, 0, 1]])))
    old_total, new_total = res.initial_rates[0].sum(), new_rates.sum()
    assert new_total < old_total / 2
    # P(exactly one swap) = ∫₀ᵀ Λe^{−Λt} e^{−Λ'(T−t)} dt for the 0 → neighbour-0 path (+ other paths, tiny here).
    T = 0.2
    p_to0 = res.initial_rates[0][0] / old_total
    p_one_via0 = p_to0 * old_total * (np.exp(-new_total * T) - np.exp(-old_total * T)) / (old_total - new_total)
    observed = np.mean((res.num_swaps == 1) & (res.first_neighbour == 0))
    assert abs(observed - p_one_via0) < 4 * np.sqrt(p_one_via0 * (1 - p_one_via0) / n)


def test_drift_stays_within_bound_and_collect_is_seeded():
    d = simulator.random_drift(np.random.default_rng(7), 500, 4, step_std=0.2, bound=0.4)
    assert d.shape == (500, 4, 2) and np.all(np.abs(d) <= 0.4 + 1e-12)
    kwargs = dict(steps=20, batch=3, dwell_s=1.0, beam_radius=3.0, drift_step=0.05, drift_bound=0.4)
    a = simulator.collect(np.random.default_rng(8), lattice.gaussian_bump, **kwargs)
    b = simulator.collect(np.random.default_rng(8), lattice.gaussian_bump, **kwargs)
    c = simulator.collect(np.random.default_rng(9), lattice.gaussian_bump, **kwargs)
    np.testing.assert_array_equal(a.sites, b.sites)
    assert not np.array_equal(a.beams, c.beams)
    np.testing.assert_allclose(a.beams, a.commanded + a.drift[:-1])
