import json
import os

import pytest

from core import metrics, report


def _run(tmp_path, name, seed, finals):
    d = tmp_path / name
    w = metrics.MetricsWriter(str(d), ["env_steps", "eval_return"])
    for i, v in enumerate(finals, 1):
        w.write({"env_steps": i * 100, "eval_return": v})
    (d / "summary.json").write_text(json.dumps({
        "seed": seed, "env_steps": 100 * len(finals), "headline": {"name": "eval_return", "value": finals[-1]},
        "wall_s": 60.0, "sps_steady": 1000.0}))
    return str(d)


def test_table_rows_best_and_mean_over_runs(tmp_path):
    runs = [_run(tmp_path, "a", 0, [10, 500, 480]), _run(tmp_path, "b", 1, [20, 30, 500])]
    table = report.results_table(runs, target=475)
    assert "| a | 0 | 300 | 480.0 | 500.0 (200) | 1.0 min | 1,000 |" in table
    assert "**490.0 ± 10.0**" in table
    assert "Runs with final eval_return ≥ 475: 2 of 2." in table


def test_cli_writes_table_and_figure(tmp_path):
    runs = [_run(tmp_path, "a", 0, [1, 2])]
    report.main([*runs, "--figure", str(tmp_path / "f.png"), "--table", str(tmp_path / "t.md")])
    assert os.path.getsize(tmp_path / "f.png") > 1000
    assert "| a | 0 |" in (tmp_path / "t.md").read_text()


def test_unfinished_run_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(SystemExit, match="has no summary.json"):
        report.results_table([str(tmp_path / "x")])
