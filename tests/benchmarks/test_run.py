"""benchmarks.run: the README, figures and projected costs come from the stored suite rows alone."""
import json
import os

from benchmarks import common, run


def _row(group, name, value, unit, run_id, **kw):
    meta = {"benchmark": kw.pop("benchmark", group), "run_id": run_id, "quick": True, "date": "2026-12-01",
            "device": "cpu", "git_sha": "abc", "versions": {"jax": "0.10.2"}}
    return {**common.measurement(group, name, value, unit, **kw), **meta}


def _status(benchmark, run_id):
    return {"benchmark": benchmark, "group": "_status", "wall_s": 1.0, "error": None, "rows": 1, "run_id": run_id,
            "quick": True, "date": "2026-12-01", "device": "cpu", "git_sha": "abc", "versions": {"jax": "0.10.2"}}


def test_readme_from_stored_rows_uses_the_latest_run_of_each_benchmark(tmp_path):
    out = tmp_path / "results"
    path = str(out / "2026-12-01_cpu.jsonl")
    os.makedirs(out)
    rows = [
        _row("raw_env", "Pong-v5 (envpool)", 1000.0, "steps/s", "1", config={"num_envs": 1}, benchmark="envs",
             baseline="same env, 1 environment"),
        _status("envs", "1"),
        _row("raw_env", "Pong-v5 (envpool)", 2000.0, "steps/s", "2", config={"num_envs": 1}, benchmark="envs",
             baseline="same env, 1 environment"),
        _row("raw_env", "Pong-v5 (envpool)", 6000.0, "steps/s", "2", config={"num_envs": 8}, benchmark="envs",
             baseline="same env, 1 environment", baseline_value=2000.0),
        _status("envs", "2"),
        _row("learner", "dqn learner, nature network", 25.0, "updates/s", "3", config={"batch": 32},
             benchmark="learner"),
        _status("learner", "3"),
        _row("scaling", "dqn learner, 2 device(s)", 90.0, "updates/s", "4", config={"devices": 2}, benchmark="scaling",
             baseline="same update on 1 device", baseline_value=100.0),
        _status("scaling", "4"),
    ]
    for r in rows:
        common.append_jsonl(path, r)
    # A full run of the throughput module: its per-step costs give the reference column.
    common.append_jsonl(str(out / "throughput_2026-11-25_cpu.jsonl"),
                        {"benchmark": "raw_env/Pong-v5", "steps_per_s": 1000.0})
    common.append_jsonl(str(out / "throughput_2026-11-25_cpu.jsonl"),
                        {"benchmark": "learner/nature_cnn", "s_per_update": 0.01, "date": "2026-11-25"})
    figures, statuses = run.latest_rows(str(out))
    assert {r["run_id"] for r in figures if r["benchmark"] == "envs"} == {"2"}
    readme = str(tmp_path / "README.md")
    run.write_readme(str(out), readme)
    text = open(readme).read()
    assert "python -m benchmarks.run --quick" in text
    assert "6,000 steps/s" in text and "1,000 steps/s" not in text  # only the latest envs run
    assert "0.90×" in text  # 2 devices against 1
    assert os.path.exists(out / "figures" / "envs_vs_num_envs.png")
    # 50M env steps at 2,000/s + 12.5M updates at 25/s = 6,944 + 138,889 s = 40.5 h... in hours:
    assert f"{(50_000_000 / 2000 + 12_500_000 / 25) / 3600:,.0f} h" in text
    assert f"{(50_000_000 / 1000 + 12_500_000 * 0.01) / 3600:,.0f} h" in text  # the full-run reference column
    assert "BBF, Atari 100k" in text and "PVN pretraining" in text
    assert "not measured (no GPU" in text


def test_every_listed_benchmark_module_has_run():
    import importlib

    for module, _ in run.BENCHMARKS.values():
        assert callable(importlib.import_module(module).run), module


def test_bbf_paper_row_projects_from_the_measured_step_cost(tmp_path):
    cost = tmp_path / "cost_paper.json"
    cost.write_text(json.dumps({"gradient_steps_per_run": 784_000, "median_step_cpu_s": 18.0,
                                "step_cpu_s": [17.0, 18.0, 19.0]}))
    row = run.bbf_paper_row(str(cost))
    assert row[2] == "784,000"
    assert row[3].startswith(f"{784_000 * 18.0 / 3600:,.0f} h")        # 3,920 h on one core
    assert row[6].startswith(f"{784_000 * 18.0 / 8 / 3600:,.0f} h")    # learner split 8 ways
    assert "median of 3" in row[-1]
    missing = run.bbf_paper_row(str(tmp_path / "absent.json"))
    assert missing[3] == "not measured" and "algorithms.bbf.cost" in missing[-1]


def test_pvn_paper_row_scales_a_smaller_measured_batch(tmp_path):
    cost = tmp_path / "cost_paper.json"
    cost.write_text(json.dumps({"updates_per_run": 1_000_000, "preset_step_cpu_s": 40.0, "step_cpu_s": [5.0, 5.0],
                                "measured_batch_size": 32, "batch_scale": 8.0}))
    row = run.pvn_paper_row(str(cost))
    assert row[2] == "1,000,000"
    assert row[3].startswith(f"{1_000_000 * 40.0 / 3600:,.0f} h")
    assert "batch 32, scaled ×8" in row[-1] and "median of 2" in row[-1]
    missing = run.pvn_paper_row(str(tmp_path / "absent.json"))
    assert missing[3] == "not measured" and "algorithms.pvn.cost" in missing[-1]


def test_a_figure_held_by_two_benchmarks_keeps_the_newer_runs_row(tmp_path):
    """The seeds rows of an old `agents` run give way to those of the newer `seeds` benchmark (same figure)."""
    out = tmp_path / "results"
    os.makedirs(out)
    path = str(out / "2026-12-02_cpu.jsonl")
    rows = [_row("seeds", "dqn, 4 seeds vmapped", 129.0, "steps/s", "1", config={"seeds": 4}, benchmark="agents"),
            _row("end_to_end", "dqn cpu preset", 900.0, "steps/s", "1", config={"agent": "dqn"}, benchmark="agents"),
            _status("agents", "1"),
            _row("seeds", "dqn, 4 seeds vmapped", 976.0, "steps/s", "2", config={"seeds": 4}, benchmark="seeds"),
            _row("seeds", "dqn, 16 seeds vmapped", 725.0, "steps/s", "2", config={"seeds": 16}, benchmark="seeds"),
            _status("seeds", "2")]
    for r in rows:
        common.append_jsonl(path, r)
    figures, statuses = run.latest_rows(str(out))
    by_figure = {(r["group"], r["config"].get("seeds")): r["value"] for r in figures}
    assert by_figure == {("seeds", 4): 976.0, ("seeds", 16): 725.0, ("end_to_end", None): 900.0}
    assert sorted(s["benchmark"] for s in statuses) == ["agents", "seeds"]
