"""core.transition_dataset: round trip against a naive reconstruction, episode boundaries, frame stacks, corruption."""
import json
import os

import numpy as np
import pytest

from core import transition_dataset as td


def _episodes(rng, rows, streams, shape=(3,)):
    """Random time-major rows with dm-env step types (FIRST after every LAST)."""
    step_type = np.empty((rows, streams), np.int8)
    for b in range(streams):
        st = td.FIRST
        for t in range(rows):
            step_type[t, b] = st
            st = td.FIRST if st == td.LAST else (td.LAST if rng.random() < 0.2 and st != td.FIRST else td.MID)
    obs = rng.integers(0, 255, (rows, streams, *shape)).astype(np.uint8)
    return dict(step_type=step_type, reward=rng.normal(size=(rows, streams)).astype(np.float32),
                discount=(rng.random((rows, streams)) < 0.9).astype(np.float32), observation=obs,
                action=rng.integers(0, 4, (rows, streams)).astype(np.int32))


def _write(path, data, chunk_rows=7, shape=(3,)):
    streams = data["step_type"].shape[1]
    with td.DatasetWriter(path, num_streams=streams, observation_shape=shape, observation_dtype=np.uint8,
                          chunk_rows=chunk_rows, metadata={"env_id": "test"}) as w:
        rows = data["step_type"].shape[0]
        for start in range(0, rows, 5):  # appends that do not line up with the chunks
            w.append(**{k: v[start:start + 5] for k, v in data.items()})
    return td.TransitionDataset(path)


def test_round_trip_matches_a_naive_reconstruction(tmp_path):
    rng = np.random.default_rng(0)
    data = _episodes(rng, 40, 3)
    ds = _write(str(tmp_path / "d"), data)
    expected = [(t, b) for t in range(39) for b in range(3) if data["step_type"][t, b] != td.LAST]
    assert ds.num_transitions == len(expected)
    assert ds.metadata == {"env_id": "test"}
    got = ds.transitions(np.arange(ds.num_transitions))
    for i, (t, b) in enumerate(expected):
        np.testing.assert_array_equal(got["observation"][i], data["observation"][t, b])
        np.testing.assert_array_equal(got["next_observation"][i], data["observation"][t + 1, b])
        assert got["action"][i] == data["action"][t, b]
        assert got["reward"][i] == data["reward"][t + 1, b]
        assert got["discount"][i] == data["discount"][t + 1, b]
    batch = ds.sample(np.random.default_rng(1), 16)
    assert batch["observation"].shape == (16, 3) and batch["observation"].dtype == np.uint8


def test_frame_stack_repeats_the_first_frame_of_the_episode(tmp_path):
    rows = 6
    step_type = np.array([[0], [1], [2], [0], [1], [1]], np.int8)
    obs = np.arange(rows, dtype=np.uint8).reshape(rows, 1, 1, 1, 1) * np.ones((1, 1, 1, 2, 2), np.uint8)
    data = dict(step_type=step_type, reward=np.zeros((rows, 1), np.float32), discount=np.ones((rows, 1), np.float32),
                observation=obs, action=np.zeros((rows, 1), np.int32))
    ds = _write(str(tmp_path / "s"), data, chunk_rows=4, shape=(1, 2, 2))
    # valid transitions start at rows 0, 1, 3, 4 (row 2 is LAST, row 5 the last row)
    got = ds.transitions(np.arange(4), frame_stack=3)
    assert got["observation"].shape == (4, 3, 2, 2)
    np.testing.assert_array_equal(got["observation"][:, :, 0, 0], [[0, 0, 0], [0, 0, 1], [3, 3, 3], [3, 3, 4]])
    np.testing.assert_array_equal(got["next_observation"][:, :, 0, 0], [[0, 0, 1], [0, 1, 2], [3, 3, 4], [3, 4, 5]])


def test_writer_refuses_an_existing_dataset(tmp_path):
    data = _episodes(np.random.default_rng(0), 10, 1)
    _write(str(tmp_path / "d"), data)
    with pytest.raises(td.DatasetError, match="already holds a dataset"):
        td.DatasetWriter(str(tmp_path / "d"), num_streams=1, observation_shape=(3,), observation_dtype=np.uint8)


def _corrupt(path, how):
    manifest = json.load(open(os.path.join(path, td.MANIFEST)))
    file = os.path.join(path, manifest["chunks"][1]["files"]["observation"]["path"])
    if how == "truncate":
        with open(file, "r+b") as f:
            f.truncate(os.path.getsize(file) - 3)
    elif how == "flip":
        with open(file, "r+b") as f:
            f.seek(-1, 2)
            byte = f.read(1)
            f.seek(-1, 2)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif how == "delete":
        os.remove(file)
    elif how == "header":
        with open(file, "r+b") as f:
            f.write(b"garbage!")
    elif how == "manifest":
        with open(os.path.join(path, td.MANIFEST), "w") as f:
            f.write('{"format": "transition-dat')
    elif how == "no_manifest":
        os.remove(os.path.join(path, td.MANIFEST))
    return file


@pytest.mark.parametrize("how,message", [
    ("truncate", "truncated"), ("flip", "SHA-256"), ("delete", "missing"), ("header", "header"),
    ("manifest", "manifest.json is corrupt"), ("no_manifest", "no manifest.json"),
])
def test_corrupt_or_truncated_files_raise_one_clear_error(tmp_path, how, message):
    path = str(tmp_path / "d")
    _write(path, _episodes(np.random.default_rng(0), 30, 2))
    _corrupt(path, how)
    with pytest.raises(td.DatasetError, match=message):
        td.TransitionDataset(path)


def test_cli_reports_corruption_with_exit_status_2(tmp_path, capsys):
    path = str(tmp_path / "d")
    _write(path, _episodes(np.random.default_rng(0), 30, 2))
    assert td.main([path]) == 0
    assert "transitions" in capsys.readouterr().out
    file = _corrupt(path, "truncate")
    assert td.main([path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and os.path.basename(file) in err[0]
