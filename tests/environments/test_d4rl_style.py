"""D4RL-style datasets: layout, validation, corrupt files, collection semantics, returns, scores."""
import os

import h5py
import numpy as np
import pytest

from environments import d4rl_style as ds


def make_data(n=10, obs=3, act=2, seed=0):
    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[3] = True
    timeouts[n - 1] = True
    return ds.Dataset(observations=rng.normal(size=(n, obs)).astype(np.float32),
                      actions=rng.uniform(-1, 1, (n, act)).astype(np.float32),
                      rewards=rng.normal(size=n).astype(np.float32),
                      next_observations=rng.normal(size=(n, obs)).astype(np.float32),
                      next_actions=rng.uniform(-1, 1, (n, act)).astype(np.float32),
                      terminals=terminals, timeouts=timeouts)


def test_roundtrip_is_plain_h5py_d4rl_layout(tmp_path):
    data = make_data()
    path = ds.save(str(tmp_path / "d.hdf5"), data, env_id="Hopper-v4", kind="medium")
    with h5py.File(path, "r") as f:  # a user's standard tools read it
        assert set(ds.KEYS) <= set(f.keys())
        assert f["observations"].dtype == np.float32 and f["terminals"].dtype == np.bool_
        assert f.attrs["env_id"] == "Hopper-v4" and f.attrs["kind"] == "medium"
    back = ds.load(path, env_id="Hopper-v4")
    for key in ds.KEYS:
        np.testing.assert_array_equal(getattr(back, key), getattr(data, key))
    np.testing.assert_array_equal(back.discounts, np.where(data.terminals, 0.0, 1.0))


def test_load_refuses_other_env(tmp_path):
    path = ds.save(str(tmp_path / "d.hdf5"), make_data(), env_id="Hopper-v4", kind="medium")
    with pytest.raises(ds.DatasetError, match="HalfCheetah"):
        ds.load(path, env_id="HalfCheetah-v4")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_key", "dtype", "shape", "nan", "both_flags"])
def test_corrupt_files_are_refused_with_one_clear_error(tmp_path, damage):
    path = str(tmp_path / "d.hdf5")
    data = make_data(n=200)
    if damage in ("garbage", "truncated"):
        ds.save(path, data, env_id="Hopper-v4", kind="medium")
        raw = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(b"not an hdf5 file" * 10 if damage == "garbage" else raw[: len(raw) // 2])
    else:
        arrays = data._asdict()
        if damage == "missing_key":
            arrays.pop("next_actions")
        elif damage == "dtype":
            arrays["rewards"] = arrays["rewards"].astype(np.float64)
        elif damage == "shape":
            arrays["actions"] = arrays["actions"][:-1]
        elif damage == "nan":
            arrays["observations"][5, 0] = np.nan
        elif damage == "both_flags":
            arrays["timeouts"][3] = True
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
    with pytest.raises(ds.DatasetError) as error:
        ds.load(path)
    assert path in str(error.value) and "\n" not in str(error.value)


def test_missing_file_and_cli_exit_2(tmp_path, capsys):
    with pytest.raises(ds.DatasetError, match="no such"):
        ds.load(str(tmp_path / "nope.hdf5"))
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x00" * 100)
    assert ds.main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and err.count("\n") == 1


def test_save_is_atomic_and_validates(tmp_path):
    path = str(tmp_path / "d.hdf5")
    ds.save(path, make_data(), env_id="Hopper-v4", kind="medium")
    bad = make_data()._asdict()
    bad["rewards"] = bad["rewards"].astype(np.float64)
    with pytest.raises(ds.DatasetError):
        ds.save(path, bad, env_id="Hopper-v4", kind="medium")
    ds.load(path)  # the earlier file is intact


def test_collector_next_action_terminal_timeout_by_hand():
    """Episode 1: s0 -a0-> s1 -a1-> s2 (terminal); reset step (action a2 drawn at s2, ignored);
    episode 2: s3 -a3-> s4 (timeout); reset; s5 -a5-> s6, then a6 drawn at s6 closes it."""
    c = ds.Collector()
    o = lambda i: np.full(2, i, np.float32)  # noqa: E731
    a = lambda i: np.full(1, 10 + i, np.float32)  # noqa: E731
    c.add(o(0), a(0), 1.0, o(1), last=False, discount=1.0)
    c.add(o(1), a(1), 2.0, o(2), last=True, discount=0.0)
    c.add(o(2), a(2), 0.0, o(3), last=False, discount=1.0)  # reset step: not a transition
    c.add(o(3), a(3), 3.0, o(4), last=True, discount=1.0)  # truncated
    c.add(o(4), a(4), 0.0, o(5), last=False, discount=1.0)  # reset step
    c.add(o(5), a(5), 5.0, o(6), last=False, discount=1.0)
    c.add(o(6), a(6), 6.0, o(7), last=False, discount=1.0)  # pending: dropped
    d = c.dataset()
    np.testing.assert_array_equal(d.observations[:, 0], [0, 1, 3, 5])
    np.testing.assert_array_equal(d.next_observations[:, 0], [1, 2, 4, 6])
    np.testing.assert_array_equal(d.actions[:, 0], [10, 11, 13, 15])
    np.testing.assert_array_equal(d.next_actions[:, 0], [11, 12, 14, 16])  # drawn at s', also at episode ends
    np.testing.assert_array_equal(d.rewards, [1, 2, 3, 5])
    np.testing.assert_array_equal(d.terminals, [False, True, False, False])
    np.testing.assert_array_equal(d.timeouts, [False, False, True, False])
    np.testing.assert_array_equal(d.discounts, [1, 0, 1, 1])


def test_discounted_returns_and_episodes_by_hand():
    d = make_data(n=6)._replace(rewards=np.array([1, 2, 3, 4, 5, 6], np.float32),
                                terminals=np.array([0, 1, 0, 0, 0, 0], bool),
                                timeouts=np.array([0, 0, 0, 1, 0, 1], bool))
    g = ds.discounted_returns(d, gamma=0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2, 2, 3 + 0.5 * 4, 4, 5 + 0.5 * 6, 6])
    np.testing.assert_array_equal(ds.episode_ids(d), [0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(ds.episode_returns(d), [3, 7, 11])
    train, held = ds.split_episodes(d, holdout_fraction=1 / 3, seed=0)
    assert train.size == 4 and held.size == 2
    assert held.episode_ends[-1] and np.isin(held.rewards, d.rewards).all()


def test_normalized_score_reference_points():
    assert ds.normalized_score("Hopper-v4", ds.REF_MIN_SCORE["hopper"]) == pytest.approx(0.0)
    assert ds.normalized_score("HalfCheetah-v4", 12135.0) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no D4RL reference"):
        ds.normalized_score("Pong-v5", 1.0)


@pytest.mark.envpool
def test_collect_random_hopper_is_consistent(tmp_path):
    rng = np.random.default_rng(0)
    data = ds.collect("Hopper-v4", lambda obs: rng.uniform(-1, 1, 3), num_transitions=400, seed=3)
    assert data.size == 400 and data.observations.shape == (400, 11) and data.next_actions.shape == (400, 3)
    ends = data.episode_ends
    assert ends.sum() >= 5 and ends[-1]
    inside = ~ends[:-1]  # consecutive transitions of one episode chain up
    np.testing.assert_array_equal(data.next_observations[:-1][inside], data.observations[1:][inside])
    np.testing.assert_array_equal(data.next_actions[:-1][inside], data.actions[1:][inside])
    assert data.terminals.sum() >= 4  # random hopper falls: terminations, discount 0
    path = ds.save(str(tmp_path / "r.hdf5"), data, env_id="Hopper-v4", kind="random")
    assert ds.main(["info", path]) == 0


@pytest.mark.slow
@pytest.mark.envpool
def test_generate_cli(tmp_path, capsys):
    out = str(tmp_path / "hopper-random-v4.hdf5")
    assert ds.main(["generate", "--env-id", "Hopper-v4", "--kind", "random", "--transitions", "50", "--out", out]) == 0
    assert ds.load(out).size == 50
    assert ds.main(["generate", "--env-id", "Hoper-v4", "--kind", "random", "--out", out]) == 2
    assert "Hopper-v4" in capsys.readouterr().err
    assert ds.main(["generate", "--env-id", "Hopper-v4", "--kind", "medium", "--out", out]) == 2
