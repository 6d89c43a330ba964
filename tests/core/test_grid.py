"""core.grid: conditions × environments × seeds planned seed-major, one run root per condition."""
import os

from core import grid


def test_plan_is_seed_major_with_one_root_per_condition(tmp_path):
    conditions = {"a": ("--x", "1"), "b": ("--x", "2")}
    runs = grid.plan_grid("algorithms.dqn.train", "smoke", conditions, ["E1", "E2"], [0, 1], str(tmp_path))
    assert [(r.seed, os.path.relpath(r.out_dir, tmp_path)) for r in runs] == [
        (0, "a/E1/seed0"), (0, "a/E2/seed0"), (0, "b/E1/seed0"), (0, "b/E2/seed0"),
        (1, "a/E1/seed1"), (1, "a/E2/seed1"), (1, "b/E1/seed1"), (1, "b/E2/seed1")]
    assert runs[2].command[-2:] == ("--x", "2") and all(r.status == "new" for r in runs)


def test_finished_runs_are_skipped_and_dry_run_launches_nothing(tmp_path):
    done = tmp_path / "a" / "E1" / "seed0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text("{}")
    lines = []
    assert grid.run_grid("algorithms.dqn.train", "smoke", {"a": ()}, ["E1", "E2"], [0], str(tmp_path),
                         dry_run=True, log=lines.append) == 0
    assert lines[0].startswith("2 runs, 1 finished, 1 to launch")
    assert len(lines) == 2 and "--env-id E2" in lines[1]
    assert not (tmp_path / "a" / "E2").exists()


def test_finished_conditions_need_a_finished_run_of_every_game(tmp_path):
    for label, envs in (("both", ["E1", "E2"]), ("one", ["E1"])):
        for env in envs:
            run = tmp_path / label / env / "seed0"
            run.mkdir(parents=True)
            (run / "summary.json").write_text("{}")
    (tmp_path / "started" / "E1" / "seed0").mkdir(parents=True)
    assert grid.finished_conditions(str(tmp_path), ["both", "one", "started", "absent"], ["E1", "E2"]) == ["both"]
