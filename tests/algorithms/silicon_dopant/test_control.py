"""Controllers and goal-reaching episodes."""
import numpy as np

from algorithms.silicon_dopant import control, lattice


def test_closest_neighbour_and_beam_on_neighbour_hand_cases():
    site = np.array([[0, 0, 0], [0, 0, 1]])
    goal = np.array([[5, 5, 0], [-5, -5, 1]])  # far along +x (a₁ + a₂ = (3d, 0)) and −x
    np.testing.assert_array_equal(control.closest_neighbour(site, goal), [0, 0])
    placement = control.neighbour_placements(lattice.CANONICAL_NEIGHBOURS[0])
    np.testing.assert_allclose(placement, lattice.CANONICAL_NEIGHBOURS, atol=1e-12)
    beam = control.beam_positions(np.random.default_rng(0), site, goal, placement, random_radius=1.0)
    nbr = lattice.site_position(lattice.neighbour_sites(site))[:, 0]
    np.testing.assert_allclose(beam, nbr, atol=1e-12)  # the beam sits on the chosen carbon


def test_random_placement_stays_in_its_disc():
    site = np.zeros((500, 3), np.int64)
    beam = control.beam_positions(np.random.default_rng(1), site, site, None, random_radius=2.0)
    r = np.linalg.norm(beam, axis=-1)
    assert r.max() <= 2.0 and r.mean() > 1.2  # uniform in the disc: E|r| = 2/3 · 2


def test_goals_lie_at_the_requested_distance():
    goals = control.sample_goals(np.random.default_rng(2), 100, 10.0)
    d = np.linalg.norm(lattice.site_position(goals), axis=-1)
    assert np.all(np.abs(d - 10.0) <= lattice.BOND)  # a hexagon centre is one bond from its sites


def test_greedy_oracle_beats_the_misspecified_neighbour_heuristic_beyond_the_neighbour():
    rate_fn = lattice.make_rate_fn("mixture0")
    goals = control.sample_goals(np.random.default_rng(3), 150, 8.0)
    oracle = control.neighbour_placements(lattice.argmax_position(rate_fn))
    neighbour = control.neighbour_placements(lattice.CANONICAL_NEIGHBOURS[0])
    kw = dict(dwell_s=0.5, max_time_s=12.0)
    a = control.summarize(control.run_episodes(np.random.default_rng(4), rate_fn, oracle, goals, **kw))
    b = control.summarize(control.run_episodes(np.random.default_rng(4), rate_fn, neighbour, goals, **kw))
    c = control.summarize(control.run_episodes(np.random.default_rng(4), rate_fn, None, goals, **kw))
    assert a["success_rate"] > 0.95 and a["success_rate"] > b["success_rate"] > c["success_rate"]
    assert a["mean_time_to_goal_s"] < 0.8 * b["mean_time_to_goal_s"]
    # Every successful episode needs at least the lattice distance in swaps, hence in dwells.
    res = control.run_episodes(np.random.default_rng(5), rate_fn, oracle, goals[:20], **kw)
    swaps = np.array([lattice.swap_distance((0, 0, 0), g) for g in goals[:20]])
    assert np.all(res.dwells[res.success] * 4 >= swaps[res.success])  # ≤ a few swaps per dwell
    assert np.all(res.time_s[~res.success] >= 12.0)
