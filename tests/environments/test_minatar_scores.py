"""MinAtar normalised scores and their aggregate over games."""
import numpy as np
import pytest

from environments import minatar_scores


def test_normalized_score_maps_random_to_zero_and_reference_to_one():
    for game in minatar_scores.GAMES:
        np.testing.assert_allclose(minatar_scores.normalized_score(game, [minatar_scores.RANDOM[game],
                                                                          minatar_scores.REFERENCE[game]]), [0, 1])
    with pytest.raises(KeyError, match="Pong"):
        minatar_scores.normalized_score("Pong-v5", [1.0])


def test_aggregate_truncates_to_the_smallest_seed_count_and_computes_iqm_and_mean():
    # Game A: scores 0, 1, 2 (normalised); game B: 4, 5 (the third seed is dropped).
    per_game = {}
    for game, normalised in (("Breakout-MinAtar", [0.0, 1.0, 2.0]), ("Freeway-MinAtar", [4.0, 5.0])):
        lo, hi = minatar_scores.RANDOM[game], minatar_scores.REFERENCE[game]
        per_game[game] = [lo + x * (hi - lo) for x in normalised]
    out = minatar_scores.aggregate(per_game, reps=200, seed=0)
    assert out["runs"] == 2
    # Pooled runs 0, 1, 4, 5: mean 2.5; IQM = mean of the middle half (1, 4) = 2.5.
    assert out["mean"][0] == pytest.approx(2.5)
    assert out["iqm"][0] == pytest.approx(2.5)
    for point, lower, upper in (out["mean"], out["iqm"]):
        assert lower <= point <= upper
    assert minatar_scores.format_interval(out["mean"]).startswith("2.500 [")
