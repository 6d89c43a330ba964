"""Tests of core.atari_scores and core.stats (Agarwal et al. 2021, arXiv 2108.13264)."""
import functools
import json

import numpy as np
import pytest

from core import atari_scores, stats

ATARI_100K = (
    "Alien Amidar Assault Asterix BankHeist BattleZone Boxing Breakout ChopperCommand "
    "CrazyClimber DemonAttack Freeway Frostbite Gopher Hero Jamesbond Kangaroo Krull "
    "KungFuMaster MsPacman Pong PrivateEye Qbert RoadRunner Seaquest UpNDown"
).split()


def _lognormal_scores(seed, shape):
    return np.random.default_rng(seed).lognormal(mean=-0.5, sigma=1.0, size=shape)


# ---------------------------------------------------------------------------- table


def test_table_has_57_games_and_26_atari100k():
    assert len(atari_scores.ATARI_SCORES) == 57
    assert len(atari_scores.ATARI_57_GAMES) == 57
    assert sorted(ATARI_100K) == list(atari_scores.ATARI_100K_GAMES)
    flagged = [g for g, s in atari_scores.ATARI_SCORES.items() if s.atari100k]
    assert sorted(flagged) == sorted(ATARI_100K)


def test_human_above_random_for_every_game():
    # No exception in this table: negative-score games (DoubleDunk, Skiing, Tennis, ...)
    # still have human > random, so the normalisation is increasing everywhere.
    for game, s in atari_scores.ATARI_SCORES.items():
        assert s.human > s.random, game


@pytest.mark.parametrize(
    "game, random, human",
    [
        ("Alien", 227.8, 7127.7),
        ("Pong", -20.7, 14.6),
        ("Breakout", 1.7, 30.5),
        ("MontezumaRevenge", 0.0, 4753.3),
        ("Skiing", -17098.1, -4336.9),
        ("VideoPinball", 16256.9, 17667.9),  # DQN/Dueling/DQN Zoo value (Agent57: random 0.0)
    ],
)
def test_reference_values(game, random, human):
    assert atari_scores.ATARI_SCORES[game][:2] == (random, human)


@pytest.mark.envpool
def test_keys_are_envpool_task_names():
    envpool = pytest.importorskip("envpool")
    v5 = {e[: -len("-v5")] for e in envpool.list_all_envs() if e.endswith("-v5")}
    assert set(atari_scores.ATARI_57_GAMES) <= v5


@pytest.mark.parametrize(
    "env_id, key",
    [
        ("Pong-v5", "Pong"),
        ("ALE/Pong-v5", "Pong"),
        ("PongNoFrameskip-v4", "Pong"),
        ("pong", "Pong"),
        ("MsPacman-v5", "MsPacman"),
        ("ms_pacman", "MsPacman"),
        ("kung_fu_master", "KungFuMaster"),
        ("Jamesbond-v5", "Jamesbond"),
        ("up_n_down", "UpNDown"),
        ("ALE/Hero-v5", "Hero"),
    ],
)
def test_game_key(env_id, key):
    assert atari_scores.game_key(env_id) == key


@pytest.mark.parametrize(
    "env_id, suggestion", [("Pongg-v5", "Pong"), ("ALE/MsPackman-v5", "MsPacman")]
)
def test_unknown_game_lists_close_matches(env_id, suggestion):
    with pytest.raises(ValueError, match="unknown Atari game") as err:
        atari_scores.game_key(env_id)
    assert env_id in str(err.value) and suggestion in str(err.value)


# ---------------------------------------------------------------------------- normalisation


def test_pong_random_is_zero_and_human_is_one():
    np.testing.assert_allclose(stats.human_normalized_score("Pong-v5", -20.7), 0.0, atol=1e-12)
    np.testing.assert_allclose(stats.human_normalized_score("Pong-v5", 14.6), 1.0, atol=1e-12)
    vec = stats.human_normalized_score("ALE/Pong-v5", [-20.7, 14.6, 21.0])
    np.testing.assert_allclose(vec, [0.0, 1.0, 41.7 / 35.3], atol=1e-12)


def test_matrix_is_sorted_by_game_and_rejects_bad_input():
    m = stats.human_normalized_matrix({"Pong-v5": [-20.7, 14.6], "Breakout": [1.7, 30.5]})
    assert m.games == ("Breakout", "Pong")
    np.testing.assert_allclose(m.scores, [[0.0, 0.0], [1.0, 1.0]], atol=1e-12)
    with pytest.raises(ValueError, match="same number of runs"):
        stats.human_normalized_matrix({"Pong": [1.0, 2.0], "Breakout": [1.0]})
    with pytest.raises(ValueError, match="twice"):
        stats.human_normalized_matrix({"Pong-v5": [1.0], "ALE/Pong-v5": [2.0]})
    with pytest.raises(ValueError, match="NaN"):
        stats.human_normalized_matrix({"Pong": [np.nan]})
    with pytest.raises(ValueError, match="closest: Pong"):
        stats.human_normalized_matrix({"Pongg": [1.0]})


# ---------------------------------------------------------------------------- aggregates


def test_iqm_of_one_to_eight_by_hand():
    # N = 8, k = floor(0.25 * 8) = 2 trimmed each side: mean(3, 4, 5, 6) = 4.5.
    x = np.arange(1.0, 9.0)
    assert stats.aggregate_iqm(x.reshape(2, 4)) == 4.5
    assert stats.aggregate_iqm(x.reshape(8, 1)) == 4.5
    # N = 10, k = floor(2.5) = 2: mean(3..8) = 5.5 (scipy.stats.trim_mean convention).
    assert stats.aggregate_iqm(np.arange(1.0, 11.0).reshape(5, 2)) == 5.5


def test_optimality_gap_of_tiny_matrix_by_hand():
    x = np.array([[0.5, 1.5], [0.0, 1.0]])
    # shortfalls max(1 - x, 0) = 0.5, 0, 1, 0 -> 0.375
    assert stats.aggregate_optimality_gap(x) == 0.375
    assert stats.aggregate_optimality_gap(x, gamma=2.0) == (1.5 + 0.5 + 2.0 + 1.0) / 4


def test_median_is_of_task_means_not_of_all_scores():
    x = np.array([[0.0, 10.0, 2.0], [2.0, 0.0, 4.0]])  # task means 1, 5, 3
    assert stats.aggregate_median(x) == 3.0
    assert np.median(x) == 2.0  # the pooled median would differ
    assert stats.aggregate_mean(x) == 3.0


def test_performance_profile_by_hand():
    x = np.array([[0.1, 0.5], [1.0, 2.0]])
    np.testing.assert_array_equal(
        stats.performance_profile(x, [0.0, 0.5, 1.0, 3.0]), [1.0, 0.5, 0.25, 0.0]
    )


def test_aggregates_batch_over_leading_axes():
    x = _lognormal_scores(0, (3, 5, 7))
    batched = stats.aggregate_metrics(x)
    assert batched.shape == (3, 4)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], stats.aggregate_metrics(x[i]))


def test_point_estimates_equal_rliable_exactly():
    metrics = pytest.importorskip("rliable.metrics")
    library = pytest.importorskip("rliable.library")
    for seed, shape in enumerate([(5, 26), (3, 57), (10, 7), (1, 4)]):
        x = _lognormal_scores(seed, shape)
        assert stats.aggregate_mean(x) == metrics.aggregate_mean(x)
        assert stats.aggregate_median(x) == metrics.aggregate_median(x)
        assert stats.aggregate_iqm(x) == metrics.aggregate_iqm(x)
        assert stats.aggregate_optimality_gap(x) == metrics.aggregate_optimality_gap(x, 1)
        taus = np.linspace(0.0, 3.0, 13)
        np.testing.assert_array_equal(
            stats.performance_profile(x, taus), library.score_distributions(x, taus)
        )


# ---------------------------------------------------------------------------- bootstrap


def test_ci_contains_point_estimate():
    x = _lognormal_scores(1, (5, 26))
    est = stats.stratified_bootstrap(x, stats.aggregate_metrics, rng=0, reps=2000, backend="numpy")
    assert est.point.shape == est.lower.shape == est.upper.shape == (4,)
    assert np.all(est.lower <= est.point) and np.all(est.point <= est.upper)
    assert np.all(est.lower < est.upper)


def test_ci_narrows_with_more_runs():
    def width(num_runs):
        x = _lognormal_scores(2, (num_runs, 10))
        est = stats.stratified_bootstrap(x, stats.aggregate_iqm, rng=0, reps=2000, backend="numpy")
        return float(est.upper - est.lower)

    assert width(40) < 0.6 * width(5)


def test_lower_confidence_gives_narrower_ci():
    x = _lognormal_scores(3, (5, 10))
    wide = stats.stratified_bootstrap(x, stats.aggregate_mean, rng=0, reps=2000, backend="numpy")
    narrow = stats.stratified_bootstrap(
        x, stats.aggregate_mean, rng=0, reps=2000, confidence=0.5, backend="numpy"
    )
    assert narrow.upper - narrow.lower < wide.upper - wide.lower


def test_resampling_is_within_task():
    # Runs identical within each task: every stratified resample equals the data, so the
    # interval collapses to the point (a pooled bootstrap would mix the tasks).
    x = np.array([[0.0, 1.0, 5.0]] * 4)
    for backend in ("numpy", "rliable") if stats.rliable_available() else ("numpy",):
        est = stats.stratified_bootstrap(
            x, stats.aggregate_metrics, rng=0, reps=200, backend=backend
        )
        np.testing.assert_allclose(est.lower, est.point, atol=1e-12)
        np.testing.assert_allclose(est.upper, est.point, atol=1e-12)


def test_deterministic_per_seed_and_differs_across_seeds():
    x = _lognormal_scores(4, (5, 26))
    run = functools.partial(
        stats.stratified_bootstrap, x, stats.aggregate_metrics, reps=500, backend="numpy"
    )
    a, b, c = run(rng=7), run(rng=7), run(rng=8)
    np.testing.assert_array_equal(a.lower, b.lower)
    np.testing.assert_array_equal(a.upper, b.upper)
    assert not np.array_equal(a.lower, c.lower)
    # A Generator is consumed: two calls on one generator draw different resamples.
    gen = np.random.default_rng(7)
    first, second = run(rng=gen), run(rng=gen)
    np.testing.assert_array_equal(first.lower, a.lower)
    assert not np.array_equal(first.lower, second.lower)


def test_unbatched_metric_fn_matches_batched():
    metrics = pytest.importorskip("rliable.metrics")
    x = _lognormal_scores(5, (4, 6))
    ours = stats.stratified_bootstrap(x, stats.aggregate_iqm, rng=3, reps=300, backend="numpy")
    theirs = stats.stratified_bootstrap(x, metrics.aggregate_iqm, rng=3, reps=300, backend="numpy")
    np.testing.assert_array_equal(ours.lower, theirs.lower)
    np.testing.assert_array_equal(ours.upper, theirs.upper)


def test_performance_profile_bands():
    x = _lognormal_scores(6, (5, 8))
    taus = np.linspace(0.0, 2.0, 9)
    est = stats.stratified_bootstrap(
        x, functools.partial(stats.performance_profile, taus=taus), rng=0, reps=500, backend="numpy"
    )
    assert est.point.shape == (9,)
    assert np.all(np.diff(est.point) <= 0)
    assert np.all((est.lower <= est.point) & (est.point <= est.upper))


def test_numpy_backend_agrees_with_rliable():
    pytest.importorskip("rliable.library")
    x = _lognormal_scores(7, (5, 26))
    kw = dict(rng=11, reps=2000)
    ours = stats.stratified_bootstrap(x, stats.aggregate_metrics, backend="numpy", **kw)
    theirs = stats.stratified_bootstrap(x, stats.aggregate_metrics, backend="rliable", **kw)
    np.testing.assert_array_equal(ours.point, theirs.point)
    width = ours.upper - ours.lower
    # Different resamples: bounds agree up to Monte Carlo error (measured ~2% of width).
    np.testing.assert_array_less(np.abs(ours.lower - theirs.lower), 0.1 * width)
    np.testing.assert_array_less(np.abs(ours.upper - theirs.upper), 0.1 * width)


def test_rliable_backend_is_deterministic_and_restores_global_rng():
    pytest.importorskip("rliable.library")
    x = _lognormal_scores(8, (3, 5))
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    a = stats.stratified_bootstrap(x, stats.aggregate_iqm, rng=5, reps=200, backend="rliable")
    assert np.random.random() == expected_next
    b = stats.stratified_bootstrap(x, stats.aggregate_iqm, rng=5, reps=200, backend="rliable")
    assert (a.lower, a.upper) == (b.lower, b.upper)


def test_bad_bootstrap_arguments():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="backend"):
        stats.stratified_bootstrap(x, stats.aggregate_mean, rng=0, backend="torch")
    with pytest.raises(ValueError, match="confidence"):
        stats.stratified_bootstrap(x, stats.aggregate_mean, rng=0, confidence=95)
    with pytest.raises(ValueError, match="one \\[runs, tasks\\] matrix"):
        stats.stratified_bootstrap(np.ones(3), stats.aggregate_mean, rng=0)


# ---------------------------------------------------------------------------- summary


def _raw_scores(seed, games, num_runs):
    rng = np.random.default_rng(seed)
    out = {}
    for game in games:
        ref = atari_scores.game_scores(game)
        hns = rng.lognormal(mean=-0.5, sigma=0.8, size=num_runs)
        out[f"{game}-v5"] = ref.random + hns * (ref.human - ref.random)
    return out


def test_summarize_and_markdown():
    raw = _raw_scores(0, ATARI_100K, num_runs=5)
    summary = stats.summarize(raw, rng=0, reps=1000, backend="numpy")
    json.dumps(summary)  # serialisable for summary.json
    assert summary["num_games"] == 26 and summary["num_runs"] == 5
    assert summary["games"] == sorted(ATARI_100K)
    assert list(summary["aggregates"]) == list(stats.METRIC_NAMES)
    matrix = stats.human_normalized_matrix(raw)
    for i, name in enumerate(stats.METRIC_NAMES):
        agg = summary["aggregates"][name]
        assert agg["point"] == stats.aggregate_metrics(matrix.scores)[i]
        assert agg["lower"] <= agg["point"] <= agg["upper"]
    pong = summary["per_game"]["Pong"]
    np.testing.assert_allclose(
        pong["hns_mean"], stats.human_normalized_score("Pong", pong["raw_mean"])
    )

    table = stats.to_markdown(summary)
    lines = table.splitlines()
    assert lines[0].startswith("| Metric") and "95% CI" in lines[0]
    titles = [line.split("|")[1].strip() for line in lines[2:6]]
    assert titles == ["Mean", "Median", "IQM", "Optimality gap"]
    assert "26 games × 5 runs" in table


def test_summarize_ignores_dict_order_and_is_deterministic():
    raw = _raw_scores(1, ["Pong", "Breakout", "Alien", "Seaquest"], num_runs=3)
    reordered = dict(reversed(list(raw.items())))
    a = stats.summarize(raw, rng=4, reps=300, backend="numpy")
    b = stats.summarize(reordered, rng=4, reps=300, backend="numpy")
    assert a == b
    c = stats.summarize(raw, rng=5, reps=300, backend="numpy")
    assert a["aggregates"] != c["aggregates"]
