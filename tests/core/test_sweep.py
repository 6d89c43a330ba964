"""Tests of core.sweep: planning from out dirs, dry runs, launches of a fake training module."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from core import sweep

# A stand-in for a training script: the CLI contract's flags, summary.json at the end,
# exit 1 for --fail-seed, a sleep for timeouts, one line appended to launches.txt per launch.
FAKE_TRAIN = textwrap.dedent("""
    import argparse, json, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("preset")
    p.add_argument("--env-id", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--no-progress", dest="progress", action="store_false", required=True)
    p.add_argument("--fail-seed", type=int, default=-1)
    p.add_argument("--sleep", type=float, default=0.0)
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "launches.txt"), "a") as f:
        f.write(a.preset + "\\n")
    print("training", a.env_id, a.seed, "progress", a.progress)
    time.sleep(a.sleep)
    if a.seed == a.fail_seed:
        print("boom: seed", a.seed, file=sys.stderr)
        sys.exit(1)
    with open(os.path.join(a.out_dir, "summary.json"), "w") as f:
        json.dump({"env_id": a.env_id, "seed": a.seed, "env_steps": 10,
                   "headline": {"name": "eval_return", "value": 1.0}}, f)
""")
FAKE = "sweep_fake_train"


@pytest.fixture
def fake_module(tmp_path, monkeypatch):
    """``sweep_fake_train`` importable here (find_spec) and in the launched processes."""
    pkg = tmp_path / "fakepath"
    pkg.mkdir()
    (pkg / f"{FAKE}.py").write_text(FAKE_TRAIN)
    monkeypatch.syspath_prepend(str(pkg))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(pkg) + (os.pathsep + old if old else ""))
    return FAKE


def _text(path):
    with open(path) as f:
        return f.read()


def _launches(out_dir):
    path = os.path.join(out_dir, "launches.txt")
    return _text(path).split() if os.path.exists(path) else []


# ---------------------------------------------------------------------------- planning


def test_plan_statuses_new_resume_finished(tmp_path):
    root = str(tmp_path / "sweep")
    finished = sweep.run_out_dir(root, "CartPole-v1", 0)
    resume = sweep.run_out_dir(root, "CartPole-v1", 1)
    os.makedirs(finished)
    with open(os.path.join(finished, "summary.json"), "w") as f:
        json.dump({"env_steps": 100}, f)
    os.makedirs(os.path.join(resume, "checkpoints", "500"))
    os.makedirs(sweep.run_out_dir(root, "CartPole-v1", 2))  # a dir with only config.json: new
    runs = sweep.plan_runs("algorithms.dqn.train", "cpu", ["CartPole-v1"], [0, 1, 2, 3], root)
    assert [(r.seed, r.status) for r in runs] == [(0, "finished"), (1, "resume"), (2, "new"), (3, "new")]


def test_plan_is_env_major_with_contract_command_and_extras(tmp_path):
    root = str(tmp_path)
    runs = sweep.plan_runs("algorithms.dqn.train", "cpu", ["A-v1", "B-v1"], [0, 1], root,
                           extra=["--total-steps", "1000"])
    assert [(r.env_id, r.seed) for r in runs] == [("A-v1", 0), ("A-v1", 1), ("B-v1", 0), ("B-v1", 1)]
    run = runs[3]
    assert run.out_dir == os.path.join(root, "B-v1", "seed1")
    assert run.log_path == os.path.join(root, "B-v1", "seed1.log")
    assert run.command == (
        sys.executable, "-m", "algorithms.dqn.train", "cpu", "--env-id", "B-v1", "--seed", "1",
        "--out-dir", run.out_dir, "--no-progress", "--total-steps", "1000",
    )


def test_duplicates_dropped(tmp_path):
    runs = sweep.plan_runs("m", "p", ["A", "A"], [0, 0, 1], str(tmp_path))
    assert [(r.env_id, r.seed) for r in runs] == [("A", 0), ("A", 1)]


def test_env_id_slash_sanitised(tmp_path):
    assert sweep.safe_dir_name("MinAtar/Breakout") == "MinAtar_Breakout"
    assert sweep.safe_dir_name("ALE/Pong-v5") == "ALE_Pong-v5"
    assert sweep.safe_dir_name("Breakout-MinAtar") == "Breakout-MinAtar"
    (run,) = sweep.plan_runs("m", "p", ["MinAtar/Breakout"], [3], str(tmp_path))
    assert run.out_dir == os.path.join(str(tmp_path), "MinAtar_Breakout", "seed3")
    assert run.command[run.command.index("--env-id") + 1] == "MinAtar/Breakout"  # the id itself unchanged
    with pytest.raises(ValueError):
        sweep.safe_dir_name("..")


# ---------------------------------------------------------------------------- dry run


def test_dry_run_launches_nothing(tmp_path, fake_module, monkeypatch, capsys):
    def no_launch(*args, **kwargs):
        raise AssertionError("dry run launched a process")

    monkeypatch.setattr(subprocess, "Popen", no_launch)
    root = tmp_path / "sweep"
    done = root / "A_x" / "seed0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text("{}")
    (root / "A_x" / "seed1" / "checkpoints").mkdir(parents=True)
    rc = sweep.main([fake_module, "smoke", "--envs", "A/x", "--seeds", "0", "1", "2",
                     "--out-root", str(root), "--dry-run", "--", "--sleep", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 runs (1 new, 1 resume, 1 finished)" in out
    lines = out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["finished", "resume", "new"]
    assert all("--no-progress --sleep 1" in line for line in lines)
    assert not (root / "sweep.json").exists()
    assert not (root / "A_x" / "seed2").exists()
    assert not list(root.rglob("*.log"))


# ---------------------------------------------------------------------------- launches


def test_launch_reports_failures_then_resumes_skipping_finished(tmp_path, fake_module, capsys):
    root = str(tmp_path / "sweep")
    args = [fake_module, "smoke", "--envs", "MinAtar/Breakout", "--seeds", "0", "1",
            "--out-root", root, "--jobs", "2"]
    rc = sweep.main(args + ["--", "--fail-seed", "1"])
    out = capsys.readouterr().out
    assert rc == 1
    seed0, seed1 = (os.path.join(root, "MinAtar_Breakout", f"seed{s}") for s in (0, 1))
    assert os.path.exists(os.path.join(seed0, "summary.json"))
    assert not os.path.exists(os.path.join(seed1, "summary.json"))
    assert f"failed: MinAtar/Breakout seed 1 (exit 1), log {seed1}.log" in out
    assert "1 ok, 0 already finished, 1 failed" in out
    log1 = _text(seed1 + ".log")
    assert "boom: seed 1" in log1 and "training MinAtar/Breakout 1 progress False" in log1
    record = json.loads(_text(os.path.join(root, "sweep.json")))
    assert record["module"] == fake_module and record["preset"] == "smoke"
    assert record["envs"] == ["MinAtar/Breakout"] and record["seeds"] == [0, 1]
    assert record["extra"] == ["--fail-seed", "1"]
    assert [(r["seed"], r["status"], r["returncode"]) for r in record["runs"]] == [(0, "ok", 0), (1, "failed", 1)]

    # Same sweep again without the failure: seed 0 is skipped, seed 1 relaunched.
    rc = sweep.main(args)
    out = capsys.readouterr().out
    assert rc == 0
    assert "[skip] MinAtar/Breakout seed 0: finished" in out
    assert _launches(seed0) == ["smoke"]
    assert _launches(seed1) == ["smoke", "smoke"]
    assert _text(seed1 + ".log").count("=== core.sweep") == 2  # logs are appended
    record = json.loads(_text(os.path.join(root, "sweep.json")))
    assert [(r["seed"], r["planned"], r["status"]) for r in record["runs"]] == [
        (0, "finished", "finished"), (1, "new", "ok")]


def test_timeout_terminates_run_and_fails(tmp_path, fake_module, capsys):
    root = str(tmp_path / "sweep")
    rc = sweep.main([fake_module, "smoke", "--envs", "A", "--seeds", "0", "--out-root", root,
                     "--timeout-s", "0.5", "--", "--sleep", "60"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "timeout: A seed 0" in out
    (run,) = json.loads(_text(os.path.join(root, "sweep.json")))["runs"]
    assert run["status"] == "timeout" and run["wall_s"] < 30


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep_fake_train", "smoke", "--seeds", "0", "--out-root", "R"], "--envs"),
        (["sweep_fake_train", "smoke", "--envs", "A", "--out-root", "R"], "--seeds"),
        (["sweep_fake_train", "smoke", "--envs", "A", "--seeds", "0", "--out-root", "R", "--jobs", "0"], "--jobs"),
        (["no_such_pkg.train", "smoke", "--envs", "A", "--seeds", "0", "--out-root", "R"], "no_such_pkg.train"),
        (["sweep_fake_train", "smoke", "--envs", "..", "--seeds", "0", "--out-root", "R"], "--envs"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, fake_module, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "R").exists()


def test_module_entry_point_exit_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "core.sweep", "no_such_pkg.train", "smoke", "--envs", "A", "--seeds", "0",
         "--out-root", str(tmp_path / "R")],
        capture_output=True, text=True, timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: MODULE: cannot find module 'no_such_pkg.train'")
