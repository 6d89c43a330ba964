"""A grid of conditions × environments × seeds of one training script, run as one resumable sweep.

A paper's experiment compares *conditions* (e.g. "ReDo at replay ratio 4", "8 experts"):
each is a label and the CLI overrides that make it. :func:`run_grid` runs every
(condition, environment, seed) as its own process through :mod:`core.sweep` (same
commands, logs, resume-after-kill and timeouts), seed-major, so that a grid stopped early
holds every condition at the first seeds rather than some conditions at every seed. Each
condition's runs go to ``out_root/<label>/<env>/seed<S>``, a run root that
:mod:`core.aggregate` reads.
"""
from __future__ import annotations

import os
import time
from typing import Callable, List, Mapping, Optional, Sequence

from core import cli, sweep


def condition_root(out_root: str, label: str) -> str:
    """``out_root/<label>``: the run root of one condition."""
    return os.path.join(out_root, label)


def plan_grid(module: str, preset: str, conditions: Mapping[str, Sequence[str]], envs: Sequence[str],
              seeds: Sequence[int], out_root: str) -> List[sweep.Run]:
    """Every run of the grid, seed-major (then condition, then environment), with its status."""
    runs = []
    for seed in seeds:
        for label, extra in conditions.items():
            runs += sweep.plan_runs(module, preset, envs, [seed], condition_root(out_root, label), list(extra))
    return runs


def run_grid(module: str, preset: str, conditions: Mapping[str, Sequence[str]], envs: Sequence[str],
             seeds: Sequence[int], out_root: str, *, jobs: int = 1, timeout_s: Optional[float] = None,
             dry_run: bool = False, log: Callable[[str], None] = print) -> int:
    """Runs (or resumes) the grid; writes ``out_root/grid.json``; returns 0, or 1 when a run failed."""
    runs = plan_grid(module, preset, conditions, envs, seeds, out_root)
    todo = [r for r in runs if r.status != "finished"]
    log(f"{len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to launch with {jobs} job(s)")
    if dry_run:
        for run in todo:
            log(" ".join(run.command))
        return 0
    start = time.perf_counter()
    results = sweep.execute(runs, jobs=jobs, timeout_s=timeout_s, log=log)
    os.makedirs(out_root, exist_ok=True)
    record = {"module": module, "preset": preset, "conditions": {k: list(v) for k, v in conditions.items()},
              **sweep.sweep_record(module, preset, envs, seeds, out_root, [], results, time.perf_counter() - start)}
    cli.write_json(os.path.join(out_root, "grid.json"), record)
    failed = [r for r in results if r.status in ("failed", "timeout")]
    for r in failed:
        log(f"[{r.status}] {r.run.out_dir}: see {r.run.log_path}")
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]], *, prog: str, description: str, run: Callable, report: Callable,
         games: Sequence[str], seeds: Sequence[int], results: str, runs: str = "runs") -> int:
    """The ``run`` / ``report`` command line of a paper's experiment module.

    ``run(args)`` gets ``games``, ``seeds``, ``jobs``, ``timeout_s``, ``dry_run`` and
    ``out_root``; ``report(args)`` gets ``out_root``, ``results``, ``reps`` and ``seed``.
    Runs go to ``<results>/<runs>`` unless ``--out-root`` says otherwise.
    """
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train every condition × game × seed (resumable: rerun after a kill)")
    r.add_argument("--games", nargs="+", default=list(games))
    r.add_argument("--seeds", nargs="+", type=int, default=list(seeds))
    r.add_argument("--jobs", type=int, default=1, help="runs at once")
    r.add_argument("--timeout-s", type=float, default=None, help="terminate a run after S seconds")
    r.add_argument("--dry-run", action="store_true", help="print the commands, launch nothing")
    r.add_argument("--out-root", default=os.path.join(results, runs))
    p = sub.add_parser("report", help="tables and figures from the finished runs")
    p.add_argument("--out-root", default=os.path.join(results, runs))
    p.add_argument("--results", default=results, help="where the tables and figures go")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else report(args)


def finished_conditions(out_root: str, labels: Sequence[str], envs: Sequence[str]) -> List[str]:
    """The labels whose run root holds at least one finished run (``summary.json``) of every env."""
    kept = []
    for label in labels:
        root = condition_root(out_root, label)
        if all(any(os.path.isfile(os.path.join(d, "summary.json")) for d in _seed_dirs(root, env)) for env in envs):
            kept.append(label)
    return kept


def _seed_dirs(root: str, env_id: str) -> List[str]:
    env_dir = os.path.join(root, sweep.safe_dir_name(env_id))
    if not os.path.isdir(env_dir):
        return []
    return [os.path.join(env_dir, d) for d in sorted(os.listdir(env_dir)) if d.startswith("seed")]
