"""Tests of core.aggregate: fabricated sweeps -> tables, JSON and figures."""
import json
import os

import numpy as np
import pytest

from core import aggregate, atari_scores

GAMES = ("Pong-v5", "Breakout-v5", "Alien-v5")  # three Atari 100k games
MINATAR = ("Breakout-MinAtar", "Asterix-MinAtar")
REPS = ["--reps", "200"]


def _run(root, env_id, seed, value, *, curve=None, algorithm="dqn", preset="cpu"):
    """A run dir as a training script leaves it: summary.json (+ metrics.jsonl)."""
    d = os.path.join(str(root), env_id.replace("/", "_"), f"seed{seed}")
    os.makedirs(os.path.join(d, "checkpoints", "10"), exist_ok=True)
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"algorithm": algorithm, "preset": preset, "seed": seed, "env_id": env_id,
                   "headline": {"name": "eval_return", "value": value}, "env_steps": 1000,
                   "wall_s": 1.0}, f)
    if curve is not None:
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for step, ret in curve:
                f.write(json.dumps({"env_steps": step, "loss": 0.5}) + "\n")  # a training record
                f.write(json.dumps({"env_steps": step, "eval_return": ret}) + "\n")
    return d


def _sweep(root, envs, seeds, value_fn):
    for env in envs:
        for seed in seeds:
            _run(root, env, seed, value_fn(env, seed))
    return str(root)


def _random_sweep(root, envs, seeds, rng_seed, scale=100.0):
    rng = np.random.default_rng(rng_seed)
    return _sweep(root, envs, seeds, lambda env, seed: float(rng.uniform(0, scale)))


def _read(prefix):
    with open(str(prefix) + ".md") as md, open(str(prefix) + ".json") as js:
        return md.read(), json.load(js)


# ---------------------------------------------------------------------------- human


def test_human_tables_have_every_label_and_metric(tmp_path, capsys):
    a = _random_sweep(tmp_path / "dqn_cpu", GAMES, range(3), 0)
    b = _random_sweep(tmp_path / "redo_cpu", GAMES, range(3), 1)
    prefix = tmp_path / "out" / "atari"
    assert aggregate.main([a, b, "--out", str(prefix), *REPS]) == 0
    md, js = _read(prefix)
    assert md.splitlines()[0].startswith("Produced by `python -m core.aggregate ")
    assert "--out " + str(prefix) in md.splitlines()[0]
    for word in ("dqn_cpu", "redo_cpu", "Mean", "Median", "IQM", "Optimality gap", *GAMES):
        assert word in md
    assert js["normalize"] == "human"  # the default: every env is an Atari game
    assert js["labels"] == ["dqn_cpu", "redo_cpu"]
    for label in js["labels"]:
        aggs = js["per_label"][label]["summary"]["aggregates"]
        assert set(aggs) == {"mean", "median", "iqm", "optimality_gap"}
        for agg in aggs.values():
            assert agg["lower"] <= agg["point"] <= agg["upper"]
    assert os.path.getsize(str(prefix) + ".png") > 5000
    assert "wrote " in capsys.readouterr().out


def test_human_score_everywhere_is_one_with_point_intervals(tmp_path):
    human = lambda env, seed: atari_scores.game_scores(env).human  # noqa: E731
    root = _sweep(tmp_path / "human", GAMES, range(3), human)
    js = aggregate.aggregate([root], normalize="human", reps=200)
    entry = js["per_label"]["human"]
    assert np.array_equal(entry["hns_matrix"], np.ones((3, 3)))
    aggs = entry["summary"]["aggregates"]
    for name, expected in (("mean", 1.0), ("median", 1.0), ("iqm", 1.0), ("optimality_gap", 0.0)):
        assert aggs[name] == {"point": expected, "lower": expected, "upper": expected}, name
    for game in entry["per_game"].values():
        assert game["hns_mean"] == 1.0 and game["std"] == 0.0
    taus = np.asarray(js["taus"])
    profile = np.asarray(entry["profile"]["point"])
    np.testing.assert_array_equal(profile, (taus < 1.0).astype(float))  # fraction of runs with score > τ
    np.testing.assert_array_equal(entry["profile"]["lower"], entry["profile"]["upper"])


def test_half_human_half_random_hand_computed(tmp_path):
    # Pong at its human score (HNS 1), Breakout at its random score (HNS 0), 2 seeds each.
    def value(env, seed):
        ref = atari_scores.game_scores(env)
        return ref.human if env == "Pong-v5" else ref.random

    root = _sweep(tmp_path / "half", ("Pong-v5", "Breakout-v5"), (0, 1), value)
    aggs = aggregate.aggregate([root], reps=100)["per_label"]["half"]["summary"]["aggregates"]
    assert aggs["mean"]["point"] == pytest.approx(0.5)
    assert aggs["median"]["point"] == pytest.approx(0.5)  # median of the two game means
    assert aggs["iqm"]["point"] == pytest.approx(0.5)  # middle two of {0, 0, 1, 1}
    assert aggs["optimality_gap"]["point"] == pytest.approx(0.5)


def test_unequal_seed_counts_truncated_and_said(tmp_path):
    root = _random_sweep(tmp_path / "agent", GAMES[:2], range(3), 0)
    _run(root, "Alien-v5", 0, 500.0)
    _run(root, "Alien-v5", 1, 700.0)
    prefix = tmp_path / "o"
    aggregate.main([root, "--label", "A", "--out", str(prefix), *REPS])
    md, js = _read(prefix)
    entry = js["per_label"]["A"]
    assert entry["num_runs"] == 2 and entry["truncated"]
    assert np.shape(entry["hns_matrix"]) == (2, 3)
    assert "the aggregates use the 2 lowest seeds of every game" in md
    assert entry["per_game"]["Pong-v5"]["n"] == 3  # the per-game table keeps every run


# ---------------------------------------------------------------------------- none


def test_normalize_none_per_game_matches_numpy(tmp_path):
    a = _random_sweep(tmp_path / "a", MINATAR, range(4), 0)
    b = _random_sweep(tmp_path / "b", MINATAR, range(4), 1)
    prefix = tmp_path / "minatar"
    aggregate.main([a, b, "--label", "DQN", "ReDo", "--out", str(prefix), "--normalize", "none", *REPS])
    md, js = _read(prefix)
    assert js["normalize"] == "none" and "taus" not in js
    for label in ("DQN", "ReDo"):
        for env in MINATAR:
            g = js["per_label"][label]["per_game"][env]
            scores = np.asarray(g["scores"])
            assert len(scores) == 4 and g["n"] == 4
            assert g["mean"] == pytest.approx(np.mean(scores))
            assert g["std"] == pytest.approx(np.std(scores))
            assert scores.min() <= g["ci_lower"] <= g["mean"] <= g["ci_upper"] <= scores.max()
            assert f"{g['mean']:,.1f} ± {g['std']:,.1f} (n=4)" in md
        assert "summary" not in js["per_label"][label]
    assert "Skipped: --normalize none" in md and "| label | Mean" not in md
    assert os.path.getsize(str(prefix) + ".png") > 5000


def test_default_normalize_is_none_without_reference_scores(tmp_path):
    root = _random_sweep(tmp_path / "m", MINATAR, range(2), 0)
    assert aggregate.aggregate([root], reps=50)["normalize"] == "none"


def test_curves_mean_over_seeds_and_figure(tmp_path):
    root = tmp_path / "agent"
    _run(root, "Breakout-MinAtar", 0, 3.0, curve=[(100, 1.0), (200, 3.0)])
    _run(root, "Breakout-MinAtar", 1, 5.0, curve=[(100, 3.0), (200, 5.0)])
    grid, mean, std, count = aggregate._curve(
        [str(root / "Breakout-MinAtar" / f"seed{s}") for s in (0, 1)], "env_steps", "eval_return")
    np.testing.assert_array_equal(grid, [100, 200])
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(std, [1.0, 1.0])
    np.testing.assert_array_equal(count, [2, 2])
    prefix = tmp_path / "c"
    aggregate.main([str(root), "--out", str(prefix), "--curves", *REPS])
    assert os.path.getsize(str(prefix) + "_curves.png") > 5000


# ---------------------------------------------------------------------------- bad input


def _expect_exit_2(argv, capsys, *needles):
    with pytest.raises(SystemExit) as exit_info:
        aggregate.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0]


def test_no_run_dirs_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _expect_exit_2([str(tmp_path / "empty"), "--out", str(tmp_path / "o")], capsys, "no run dirs")
    assert not (tmp_path / "o.md").exists()


def test_unknown_game_for_human_exits_2(tmp_path, capsys):
    root = _random_sweep(tmp_path / "m", MINATAR, range(2), 0)
    _expect_exit_2([root, "--out", str(tmp_path / "o"), "--normalize", "human"], capsys,
                   "--normalize human", "Breakout-MinAtar")


def test_mismatched_games_exit_2(tmp_path, capsys):
    a = _random_sweep(tmp_path / "a", GAMES, range(2), 0)
    b = _random_sweep(tmp_path / "b", GAMES[:2], range(2), 1)
    _expect_exit_2([a, b, "--out", str(tmp_path / "o")], capsys, "games differ", "Alien-v5")


def test_null_headline_names_the_dir(tmp_path, capsys):
    root = _random_sweep(tmp_path / "a", GAMES[:1], range(2), 0)
    bad = _run(root, GAMES[0], 7, None)
    _expect_exit_2([root, "--out", str(tmp_path / "o")], capsys, bad, "null headline")


def test_label_count_must_match_roots(tmp_path, capsys):
    a = _random_sweep(tmp_path / "a", GAMES[:1], range(2), 0)
    _expect_exit_2([a, "--label", "x", "y", "--out", str(tmp_path / "o")], capsys, "--label")


def test_metric_scores_runs_by_the_last_value_in_metrics_jsonl(tmp_path):
    import json as _json
    from core import aggregate as agg
    root = tmp_path / "agent"
    for seed, finals in enumerate([(1.0, 3.0), (2.0, 5.0)]):
        run = root / "Breakout-MinAtar" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(_json.dumps({
            "algorithm": "dqn", "preset": "cpu", "seed": seed, "env_id": "Breakout-MinAtar",
            "headline": {"name": "eval_return", "value": 0.0}, "env_steps": 10, "wall_s": 1.0}))
        (run / "metrics.jsonl").write_text("\n".join(_json.dumps(r) for r in [
            {"env_steps": 5, "train_return": finals[0]}, {"env_steps": 10, "train_return": finals[1]},
            {"env_steps": 15, "train_return": None}]) + "\n")
    result = agg.aggregate([str(root)], normalize="none", reps=100, metric="train_return")
    assert result["metric"] == "train_return"
    assert agg.load_run(str(root / "Breakout-MinAtar" / "seed1"), "train_return").score == 5.0
    assert agg.load_run(str(root / "Breakout-MinAtar" / "seed1")).score == 0.0
    assert "final train_return" in agg.to_markdown(result, "cmd")
    with pytest.raises(agg.AggregateError, match="no value of 'loss'"):
        agg.load_run(str(root / "Breakout-MinAtar" / "seed0"), "loss")
