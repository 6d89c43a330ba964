import glob
import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import cli, metrics
from core.checkpoint import CheckpointError, Checkpointer


class State(NamedTuple):
    params: dict
    key: jax.Array
    step: jax.Array


def _state(value=1.0):
    return State({"w": jnp.full((3, 2), value), "b": jnp.zeros(2)}, jax.random.PRNGKey(3), jnp.array(7, jnp.int32))


def test_save_restore_roundtrip_keeps_structure_and_last_k(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"), max_to_keep=2)
    for step in (10, 20, 30):
        ck.save(step, {"state": _state(step)})
    assert ck.steps() == [20, 30]
    restored = ck.restore(30, {"state": _state(0.0)})
    assert isinstance(restored["state"], State)
    np.testing.assert_array_equal(restored["state"].params["w"], np.full((3, 2), 30.0))
    np.testing.assert_array_equal(restored["state"].key, jax.random.PRNGKey(3))


def test_corrupt_checkpoint_gives_clear_error_and_keeps_previous(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"), max_to_keep=3)
    ck.save(1, {"state": _state(1.0)})
    ck.save(2, {"state": _state(2.0)})
    for path in glob.glob(str(tmp_path / "ck" / "2" / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "wb") as f:
                f.write(b"garbage")
    ck = Checkpointer(str(tmp_path / "ck"), max_to_keep=3)
    with pytest.raises(CheckpointError, match=r"step 2 .*resume from step 1"):
        ck.restore(2, {"state": _state()})
    assert ck.steps() == [1, 2]  # nothing deleted
    np.testing.assert_array_equal(ck.restore(1, {"state": _state()})["state"].params["w"], 1.0)


def test_incompatible_checkpoint_names_the_problem(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(5, {"state": _state()})
    other = State({"w": jnp.zeros((4, 4)), "b": jnp.zeros(2)}, jax.random.PRNGKey(0), jnp.array(0, jnp.int32))
    with pytest.raises(CheckpointError, match="cannot restore checkpoint step 5"):
        ck.restore(5, {"state": other})


def test_metrics_writer_jsonl_csv_and_truncate(tmp_path):
    w = metrics.MetricsWriter(str(tmp_path), ["env_steps", "loss"])
    w.reset()
    for step in (100, 200, 300):
        w.write({"env_steps": step, "loss": np.float32(step / 100), "extra": None})
    assert [r["env_steps"] for r in metrics.read_jsonl(w.jsonl_path)] == [100, 200, 300]
    assert w.truncate(200) == 2
    with open(w.csv_path) as f:
        assert f.read().splitlines() == ["env_steps,loss", "100,1.0", "200,2.0"]


def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert metrics.read_jsonl(str(path)) == [{"a": 1}, {"a": 2}]


def test_plot_learning_curve_writes_png(tmp_path):
    w = metrics.MetricsWriter(str(tmp_path), ["env_steps", "eval_return"])
    for step in range(1, 5):
        w.write({"env_steps": step * 10, "eval_return": step})
    out = metrics.plot_learning_curve(str(tmp_path), str(tmp_path / "curve.png"))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_prepare_out_dir_refuses_a_different_config(tmp_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class C:
        seed: int = 0
        lr: float = 1.0
        out_dir: str = ""

    cli.prepare_out_dir(str(tmp_path), C(), resumable=False)
    cli.prepare_out_dir(str(tmp_path), C(out_dir="elsewhere"), resumable=True)
    with pytest.raises(cli.ConfigError, match=r"lr: 1.0 -> 2.0"):
        cli.prepare_out_dir(str(tmp_path), C(lr=2.0), resumable=True)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 1.0
