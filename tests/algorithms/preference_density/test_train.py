"""The preference-density script: presets, the CLI contract, a smoke run, resuming, sequences."""
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from algorithms.preference_density import train
from core import cli, metrics

SMOKE = train.PRESETS["smoke"][1]


def test_presets_validate():
    for name, (description, cfg) in train.PRESETS.items():
        cfg.validate()
        assert description
    assert (SMOKE.loss, SMOKE.beta, SMOKE.needs_pretraining) == ("dpo", 4.0, True)
    seq = train.PRESETS["sequences"][1]
    assert (seq.domain, seq.proposal, seq.needs_pretraining) == ("sequences", "pretrained", True)
    assert train.PRESETS["cpu"][1].total_steps == 3_000  # BT on Luce preferences needs no π_pre


@pytest.mark.parametrize("argv, field", [
    (["smoke", "--loss", "ppo"], "--loss"),
    (["smoke", "--beta", "0"], "--beta"),
    (["smoke", "--target-means", "1.0"], "--target-means"),
    (["smoke", "--log-every", "7"], "--log-every"),
    (["smoke", "--domain", "sequences", "--annotator", "luce"], "--annotator"),
    (["smokee"], "smoke"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, field, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.cli_main(train.PRESETS, train.main, argv=argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and field in err[0]


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_run_writes_the_contract_and_resumes_bit_identically(tmp_path):
    cfg = dataclasses.replace(SMOKE, out_dir=str(tmp_path / "run"), progress=False)
    out = train.main(cfg, preset="smoke")
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "densities.png", "learning_curve.png",
                 "summary.json", "densities.npz"):
        assert os.path.exists(os.path.join(cfg.out_dir, name)), name
    summary = json.load(open(os.path.join(cfg.out_dir, "summary.json")))
    assert summary["headline"]["name"] == "tv_to_theory" and summary["preset"] == "smoke"
    assert summary["steps"] == 300 and summary["env_steps"] is None
    final = out["final"]
    # 200 DPO steps on 4k pairs already move π_pre towards π_pre·p*^(1/4).
    assert final["tv_to_theory"] < final["tv_pre_to_theory"]
    records = metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))
    assert [r["step"] for r in records] == [100, 200, 300]
    assert [r["stage"] for r in records] == ["pretrain", "preferences", "preferences"]

    # Kill after step 200: drop the last checkpoint, resume, and end where the full run ended.
    shutil.rmtree(os.path.join(cfg.out_dir, "checkpoints", "300"))
    again = train.main(cfg, preset="smoke")
    assert again["final"] == final
    assert [r["step"] for r in metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))] == [100, 200, 300]

    with pytest.raises(cli.ConfigError, match="different config"):
        train.main(dataclasses.replace(cfg, beta=2.0))


@pytest.mark.slow
def test_sequences_smoke_run(tmp_path):
    cfg = dataclasses.replace(train.PRESETS["sequences_smoke"][1], out_dir=str(tmp_path / "seq"), progress=False)
    out = train.main(cfg, preset="sequences_smoke")
    assert out["headline"]["name"] == "length_tv_to_density_mixture"
    got = np.load(os.path.join(cfg.out_dir, "densities.npz"))
    assert got["model_lengths"].shape == (cfg.max_length + 1,)
    np.testing.assert_allclose(got["reference_lengths"].sum(axis=1), 1.0, rtol=1e-6)
    short, long = got["reference_lengths"][1], got["reference_lengths"][2]
    lengths = np.arange(cfg.max_length + 1)
    assert short @ lengths < long @ lengths  # the pretrained annotators differ in length as designed


@pytest.mark.slow
@pytest.mark.parametrize("overrides, name, bound", [
    (dict(proposal="inner"), "tv_to_theory", 0.05),
    (dict(loss="dpo", beta=4.0), "tv_to_theory", 0.04),
    (dict(loss="mixture", annotator="population"), "tv_per_component_mean", 0.1),
])
def test_cpu_runs_reach_the_theory(tmp_path, overrides, name, bound):
    cfg = dataclasses.replace(train.PRESETS["cpu"][1], out_dir=str(tmp_path / "cpu"), progress=False, **overrides)
    assert train.main(cfg)["final"][name] < bound


def test_experiment_items_are_valid_runs_and_bad_items_are_refused():
    from algorithms.preference_density import experiment

    for preset in ("smoke", "cpu", "paper"):
        cfg = experiment.PRESETS[preset][1]
        cfg.validate()
        for item in experiment.ITEMS:
            runs = experiment.settings(item, cfg.base)
            assert runs, item
            for name, overrides in runs.items():
                run_cfg = experiment.run_config(cfg, item, overrides, name)
                run_cfg.validate()
                assert run_cfg.out_dir.endswith(os.path.join(item, name))
                assert train.headline_name(run_cfg) in experiment.ROW_METRICS[item] + (
                    "tv_per_component_mean", "tv_to_p_star_on_support")
    runs = experiment.settings("misspecification", "cpu")
    assert runs["mixture"]["annotator"] == runs["single_bt"]["annotator"] == "population"
    with pytest.raises(cli.ConfigError, match="--items"):
        dataclasses.replace(experiment.PRESETS["cpu"][1], items=("nope",)).validate()
