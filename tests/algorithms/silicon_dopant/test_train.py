"""The script: CLI contract, in-process smoke run, resume, presets; the cpu-preset evidence (slow)."""
import dataclasses
import json
import os

import numpy as np
import pytest

from algorithms.silicon_dopant import train
from core import cli, metrics

SMOKE = train.PRESETS["smoke"][1]


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_run_writes_the_contract_outputs_and_a_finished_run_resumes(tmp_path):
    cfg = dataclasses.replace(SMOKE, out_dir=str(tmp_path / "run"), progress=False)
    out = train.main(cfg, preset="smoke")
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "silicon_dopant.png", "summary.json", "checkpoints"):
        assert os.path.exists(os.path.join(cfg.out_dir, name)), name
    summary = json.load(open(os.path.join(cfg.out_dir, "summary.json")))
    assert summary["headline"]["name"] == "learned_controller_success_rate"
    assert 0.0 <= summary["headline"]["value"] <= 1.0
    assert summary["algorithm"] == "silicon_dopant" and summary["preset"] == "smoke" and summary["seed"] == 0
    records = metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))
    assert [r["step"] for r in records] == [100, 200, 300]
    assert [r["phase"] for r in records] == ["ensemble", "ensemble", "distill"]
    assert all(np.isfinite(r["loss"]) for r in records)
    # The pipeline kept most dwells, saw swaps, and found the Si where it was.
    assert out["transitions"]["kept"] > 500 and out["transitions"]["swaps"] > 100
    assert out["pipeline"]["si_site_accuracy"] > 0.99 and out["pipeline"]["beam_position_error_A"] < 0.1
    assert out["detection"]["20"]["precision"] > 0.95 and out["detection"]["20"]["recall"] > 0.95
    assert set(out["control"]) == set(train.CONTROLLERS)
    assert out["control"]["oracle"]["success_rate"] > out["control"]["random"]["success_rate"]
    # Rerunning on the finished out dir restores the last checkpoint and re-evaluates identically.
    again = train.main(cfg, preset="smoke")
    assert again["compile_s"] is None
    assert again["control"] == out["control"] and again["rate_map"] == out["rate_map"]
    assert len(metrics.read_jsonl(os.path.join(cfg.out_dir, "metrics.jsonl"))) == 3
    # A different config in the same out dir is refused, naming the field.
    with pytest.raises(cli.ConfigError, match="hidden"):
        train.main(dataclasses.replace(cfg, hidden=16), preset="smoke")


@pytest.mark.parametrize("argv, needle", [
    (["smoke", "--rate-function", "cubic"], "--rate-function"),
    (["smoke", "--drift-bound", "0.9"], "--drift-bound"),
    (["smoke", "--train-steps", "150"], "--train-steps"),
    (["smok"], "smoke"),
])
def test_bad_input_fails_with_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as error:
        cli.cli_main(train.PRESETS, train.main, argv=argv)
    assert error.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


def test_presets_validate_and_record_thousands_of_transitions():
    for name, (description, cfg) in train.PRESETS.items():
        cfg.validate()
        assert description
    cpu = train.PRESETS["cpu"][1]
    assert cpu.fields * cpu.dwells_per_field >= 10_000 and cpu.episodes >= 100
    assert train.PRESETS["paper"][1].fields * train.PRESETS["paper"][1].dwells_per_field >= 100_000


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics_and_summary(tmp_path, scripts):
    killed, clean = str(tmp_path / "killed"), str(tmp_path / "clean")
    scripts.kill_at_checkpoint_and_resume("algorithms.silicon_dopant.train", "smoke", killed, 100, timeout=600)
    result = scripts.run("algorithms.silicon_dopant.train", "smoke", "--out-dir", clean, "--no-progress", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert scripts.learning_metrics(killed) == scripts.learning_metrics(clean)
    a, b = (json.load(open(os.path.join(d, "summary.json"))) for d in (killed, clean))
    assert a["control"] == b["control"] and a["rate_map"] == b["rate_map"]


@pytest.mark.slow
def test_cpu_preset_recovers_the_rate_map_and_the_learned_controller_beats_the_heuristic(tmp_path):
    cfg = dataclasses.replace(train.PRESETS["cpu"][1], out_dir=str(tmp_path / "cpu"), progress=False)
    out = train.main(cfg, preset="cpu")
    assert out["transitions"]["swaps"] > 1_500
    assert out["rate_map"]["distilled"]["argmax_distance_A"] < 0.3
    assert out["rate_map"]["distilled"]["relative_l2"] < 0.25
    learned, heuristic = out["control"]["learned"], out["control"]["neighbour"]
    assert learned["success_rate"] >= heuristic["success_rate"]
    assert learned["mean_time_to_goal_s"] < 0.8 * heuristic["mean_time_to_goal_s"]
