"""The training script: CLI errors before any work, presets valid; slow: smoke runs, resume, Miniworld transfer."""
import dataclasses
import json
import os

import numpy as np
import pytest

from algorithms.minigrid_transfer import networks, train
from core import cli, metrics

SMOKE = train.PRESETS["smoke"][1]


def _needs_miniworld():
    import importlib.util

    if importlib.util.find_spec("miniworld") is None:  # never import it directly: headless comes first
        pytest.skip("pip install '.[miniworld]'")


def _exit_message(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.cli_main(train.PRESETS, train.main, argv=argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_every_preset_validates():
    for name, (_, cfg) in train.PRESETS.items():
        cfg.validate()
        assert cfg.total_steps % cfg.log_every == 0, name


def test_unknown_minigrid_id_names_the_closest(capsys, tmp_path):
    msg = _exit_message(capsys, ["smoke", "--env-id", "MiniGrid-DoorKey-8x9-v0", "--out-dir", str(tmp_path / "r")])
    assert "--env-id" in msg and "MiniGrid-DoorKey-8x8-v0" in msg
    assert not (tmp_path / "r").exists()  # nothing written


def test_unknown_miniworld_id_names_the_closest(capsys, tmp_path):
    _needs_miniworld()
    msg = _exit_message(capsys, ["twin_miniworld", "--env-id", "MiniWorld-OneRom-v0", "--out-dir", str(tmp_path)])
    assert "MiniWorld-OneRoom-v0" in msg


@pytest.mark.parametrize("argv,field", [
    (["smoke", "--num-minibatches", "3"], "--num-minibatches"),
    (["smoke", "--log-every", "1000"], "--log-every"),
    (["smoke", "--transfer-parts", "policy"], "--transfer-parts"),
    (["smoke", "--transfer-from", "/nonexistent/run"], "--transfer-from"),
    (["smoke", "--gamma", "1.5"], "--gamma"),
])
def test_bad_values_fail_with_the_field(capsys, argv, field):
    assert field in _exit_message(capsys, argv)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smoke_learns_doorkey_5x5_and_resumes(tmp_path):
    out = str(tmp_path / "smoke")
    cfg = dataclasses.replace(SMOKE, out_dir=out, progress=False)
    summary = train.main(cfg, preset="smoke")
    records = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    assert [r["env_steps"] for r in records] == [16_384, 32_768]
    assert summary["headline"]["value"] is not None and summary["env_steps"] == 32_768
    for name in ("config.json", "metrics.csv", "learning_curve.png", "summary.json", train.PARAMS_FILE):
        assert os.path.isfile(os.path.join(out, name)), name
    # Resuming a finished run recomputes nothing new and keeps the same records.
    again = train.main(cfg, preset="smoke")
    assert metrics.read_jsonl(os.path.join(out, "metrics.jsonl")) == records
    assert again["headline"]["value"] == summary["headline"]["value"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_miniworld_host_loop_with_transferred_parts(tmp_path):
    _needs_miniworld()
    source = dataclasses.replace(train.PRESETS["twin_minigrid"][1], total_steps=16_384, log_every=16_384,
                                 checkpoint_every=16_384, eval_episodes=4, out_dir=str(tmp_path / "src"),
                                 progress=False)
    train.main(source, preset="twin_minigrid")
    target = dataclasses.replace(train.PRESETS["twin_miniworld"][1], total_steps=512, log_every=512,
                                 checkpoint_every=512, eval_episodes=1, out_dir=str(tmp_path / "dst"),
                                 transfer_from=source.out_dir, progress=False)
    # The transferred parts start equal to the source's.
    import jax

    from environments import miniworld
    env = miniworld.DmEnv(target.env_id)
    obs = env.reset().observation
    env.close()
    net = train.make_network(target, 3)
    params = train.init_params(target, net, jax.random.PRNGKey(0), obs["image"], obs["mission"])
    src = train.load_params(os.path.join(source.out_dir, train.PARAMS_FILE))
    for module, p in params.items():
        if networks.part_of(module) in target.transfer_parts:
            for name, value in p.items():
                np.testing.assert_array_equal(value, src[module][name])
    summary = train.main(target, preset="twin_miniworld")
    assert summary["env_steps"] == 512 and summary["env_id"] == "MiniWorld-GoToObjTwin-v0"
    assert json.load(open(os.path.join(target.out_dir, "config.json")))["transfer_from"] == source.out_dir
