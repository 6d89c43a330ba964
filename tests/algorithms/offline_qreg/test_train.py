"""The offline script: CLI errors (bad dataset, bad values), and a smoke run on a dataset collected here."""
import dataclasses
import json
import os

import numpy as np
import pytest

from algorithms.offline_qreg import experiment, train
from core import cli
from environments import d4rl_style


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.cli_main(train.PRESETS, train.main, argv=argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    return err


def test_cli_refuses_missing_and_corrupt_datasets(tmp_path, capsys):
    assert "no such dataset" in _run_cli(["smoke", "--dataset", str(tmp_path / "none.hdf5")], capsys)
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)  # an HDF5 signature, then nothing: truncated
    assert "corrupt or truncated" in _run_cli(["smoke", "--dataset", str(bad)], capsys)


def test_cli_refuses_bad_values(tmp_path, capsys):
    assert "qsarsa_ac" in _run_cli(["smoke", "--algorithm", "cql"], capsys)
    assert "--holdout-fraction" in _run_cli(["smoke", "--holdout-fraction", "1.0"], capsys)
    assert "--dataset-kind" in _run_cli(["smoke", "--dataset-kind", "expert-replay"], capsys)


def test_loss_weights_spell_out_each_algorithm():
    w = {a: train.loss_weights(dataclasses.replace(train.PRESETS["cpu"][1], algorithm=a)) for a in train.ALGORITHMS}
    assert float(w["bc"].critic_td) == 0 and float(w["bc"].actor_bc) == 1 and float(w["bc"].actor_q_norm) == 0
    assert float(w["td3"].actor_q) == 1 and float(w["td3"].actor_bc) == 0 and float(w["td3"].critic_reg) == 0
    assert float(w["td3_bc"].actor_q_norm) == 2.5 and float(w["td3_bc"].actor_bc) == 1
    assert float(w["qsarsa_ac"].critic_reg) == 1 and float(w["qsarsa_ac"].actor_reg) == 0
    assert float(w["qsarsa_ac2"].actor_reg) == 1 and float(w["qsarsa_ac2"].critic_reg) == 0


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    data = d4rl_style.collect("Hopper-v4", lambda obs: rng.uniform(-1, 1, 3), num_transitions=3_000, seed=0)
    return d4rl_style.save(str(tmp_path_factory.mktemp("data") / "hopper-random-v4.hdf5"), data,
                           env_id="Hopper-v4", kind="random")


@pytest.mark.slow
@pytest.mark.envpool
@pytest.mark.timeout(1200)
def test_smoke_main_and_resume(small_dataset, tmp_path):
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], dataset=small_dataset, out_dir=str(tmp_path / "run"),
                              progress=False)
    summary = train.main(cfg, preset="smoke")
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "learning_curve.png", "summary.json"):
        assert os.path.exists(os.path.join(cfg.out_dir, name)), name
    assert summary["grad_steps"] == 2000 and np.isfinite(summary["headline"]["value"])
    assert -1 <= summary["sarsa_spearman"] <= 1
    again = train.main(cfg, preset="smoke")  # resumes from the final checkpoint: same metrics
    assert again["headline"]["value"] == summary["headline"]["value"]


@pytest.mark.slow
@pytest.mark.envpool
@pytest.mark.timeout(1800)
def test_experiment_members_write_per_seed_runs(small_dataset, tmp_path):
    root = str(tmp_path / "runs")
    cfg = dataclasses.replace(train.PRESETS["smoke"][1], dataset_dir=os.path.dirname(small_dataset), hidden=(16,),
                              total_steps=500, sarsa_steps=500, eval_every=500)
    experiment.run_dataset(cfg, "Hopper-v4", "random", ["qsarsa_ac", "bc"], [0, 1], root, log=lambda *_: None)
    for a in ("qsarsa_ac", "bc"):
        for s in (0, 1):
            summary = json.load(open(os.path.join(experiment.member_dir(root, "random", a, "Hopper-v4", s), "summary.json")))
            assert summary["algorithm"] == a and summary["seed"] == s and summary["grad_steps"] == 500
