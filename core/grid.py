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
