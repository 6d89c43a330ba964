"""Sweep launcher: one training process per (environment, seed), resumable after a kill.

    python -m core.sweep MODULE PRESET --envs E1 [E2 ...] --seeds 0 [1 ...] --out-root DIR
        [--jobs N] [--dry-run] [--timeout-s S] [-- --extra-field value ...]

Each run is a separate process (``sys.executable``)::

    python -m MODULE PRESET --env-id E --seed S --out-dir DIR/<env>/seed<S> --no-progress [extra ...]

so envpool runs (which cannot be vmapped over seeds) sweep the same way as JAX ones, and
the same command scales from a CPU to a GPU box with ``--jobs``. Whatever follows ``--``
is passed to every run unchanged (e.g. ``-- --total-steps 200000``). ``<env>`` is the
environment id with ``/`` replaced by ``_`` (``MinAtar/Breakout`` -> ``MinAtar_Breakout``).

Resuming. A run's status is decided from its out dir alone:

* ``finished``: ``summary.json`` exists. A training script writes it (atomically) only
  at the end of a run, so its presence means the run completed; it is skipped. (No
  ``env_steps >= total_steps`` check: the total lives in the training module's preset,
  and a script resumed with a different config refuses to run anyway.)
* ``resume``: no summary but a ``checkpoints/`` dir; relaunched, and the training
  script restores its own orbax checkpoint.
* ``new``: anything else; launched from scratch.

So after a kill (of the sweep or of single runs) the same command picks up where it
stopped. Each run's stdout and stderr are appended to ``DIR/<env>/seed<S>.log``;
``DIR/sweep.json`` records the module, preset, environments, seeds, extra overrides and
every run's status (``finished``, ``ok``, ``failed``, ``timeout``), exit code and wall
time. Exit status: 0 when every run finished or succeeded, 1 when any failed (listed
with their logs), 2 for bad input (one ``error: ...`` line).

The environment of the child processes is the sweep's own (``JAX_PLATFORMS``,
``CUDA_VISIBLE_DEVICES`` untouched), except that with ``--jobs N > 1`` and no
``OMP_NUM_THREADS`` set, ``OMP_NUM_THREADS`` is set to ``cpu_count // N`` so that
concurrent runs do not oversubscribe the cores; and when ``N`` reaches the core count,
XLA's CPU backend is made single-threaded (``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` appended to ``XLA_FLAGS``, unless it already names
them). On 2 cores a DrQ(ε) MinAtar run took 55 s single-threaded against 40 s with both
cores, so two single-threaded runs side by side do 1.45x the work of one run at a time.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from core import cli

STATUSES = ("new", "resume", "finished")
"""Plan statuses of a run (see the module docstring)."""


class Run(NamedTuple):
    """One planned training process."""

    env_id: str  # environment id passed as --env-id
    seed: int  # passed as --seed
    out_dir: str  # DIR/<safe env>/seed<S>
    command: Tuple[str, ...]  # argv of the process, sys.executable first
    status: str  # "new" | "resume" | "finished"

    @property
    def log_path(self) -> str:
        """``DIR/<safe env>/seed<S>.log``: the run's stdout and stderr."""
        return os.path.normpath(self.out_dir) + ".log"


class Result(NamedTuple):
    """What happened to one run of the sweep."""

    run: Run
    status: str  # "finished" (skipped) | "ok" | "failed" | "timeout"
    returncode: Optional[int]  # None when skipped
    wall_s: Optional[float]  # None when skipped


def safe_dir_name(env_id: str) -> str:
    """A directory name for an environment id: ``/`` (and the OS separator) become ``_``.

    >>> safe_dir_name("MinAtar/Breakout")
    'MinAtar_Breakout'
    """
    name = env_id.replace("/", "_").replace(os.sep, "_")
    if os.altsep:
        name = name.replace(os.altsep, "_")
    if name in ("", ".", ".."):
        raise ValueError(f"environment id {env_id!r} does not make a directory name")
    return name


def run_out_dir(out_root: str, env_id: str, seed: int) -> str:
    """``out_root/<safe env>/seed<seed>``."""
    return os.path.join(out_root, safe_dir_name(env_id), f"seed{seed}")


def run_status(out_dir: str) -> str:
    """``finished`` (has summary.json), ``resume`` (has checkpoints/) or ``new``."""
    if os.path.isfile(os.path.join(out_dir, "summary.json")):
        return "finished"
    if os.path.isdir(os.path.join(out_dir, "checkpoints")):
        return "resume"
    return "new"


def run_command(
    module: str, preset: str, env_id: str, seed: int, out_dir: str, extra: Sequence[str] = ()
) -> Tuple[str, ...]:
    """The argv of one training process (``sys.executable -m MODULE PRESET ...``)."""
    return (
        sys.executable, "-m", module, preset,
        "--env-id", env_id, "--seed", str(seed), "--out-dir", out_dir,
        "--no-progress", *extra,
    )


def plan_runs(
    module: str,
    preset: str,
    envs: Sequence[str],
    seeds: Sequence[int],
    out_root: str,
    extra: Sequence[str] = (),
) -> List[Run]:
    """Every (environment, seed) run of the sweep, environment-major, with its status.

    Duplicate environments or seeds are dropped (first occurrence kept). Reads the out
    dirs only; launches and writes nothing.
    """
    runs = []
    for env_id in dict.fromkeys(envs):
        for seed in dict.fromkeys(int(s) for s in seeds):
            out_dir = run_out_dir(out_root, env_id, seed)
            runs.append(Run(
                env_id=env_id,
                seed=seed,
                out_dir=out_dir,
                command=run_command(module, preset, env_id, seed, out_dir, extra),
                status=run_status(out_dir),
            ))
    return runs


SINGLE_THREADED_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""XLA flags of runs that share the cores with as many other runs as there are cores."""


def child_env(jobs: int) -> Dict[str, str]:
    """The sweep's environment, plus ``OMP_NUM_THREADS = cpu_count // jobs`` if unset and jobs > 1,
    and single-threaded XLA when ``jobs >= cpu_count``."""
    env = dict(os.environ)
    cores = os.cpu_count() or 1
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, cores // jobs))
    xla_flags = env.get("XLA_FLAGS", "")
    if jobs > 1 and jobs >= cores and "multi_thread_eigen" not in xla_flags:
        env["XLA_FLAGS"] = f"{xla_flags} {SINGLE_THREADED_XLA}".strip()
    return env


def _show(command: Sequence[str]) -> str:
    return shlex.join(command)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate one launched run (its own process group), SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def execute(
    runs: Sequence[Run],
    *,
    jobs: int = 1,
    timeout_s: Optional[float] = None,
    poll_s: float = 0.1,
    log=print,
) -> List[Result]:
    """Launches the runs that are not finished, up to ``jobs`` at once; returns one
    :class:`Result` per run, in the order of ``runs``.

    Each process runs in its own session (process group), with stdout and stderr appended
    to ``run.log_path``. A run past ``timeout_s`` is terminated (status ``timeout``). On
    KeyboardInterrupt the running processes are terminated and the interrupt re-raised.
    """
    results: Dict[int, Result] = {}
    pending = []
    for i, run in enumerate(runs):
        if run.status == "finished":
            results[i] = Result(run, "finished", None, None)
            log(f"[skip] {run.env_id} seed {run.seed}: finished ({run.out_dir}/summary.json)")
        else:
            pending.append(i)
    env = child_env(jobs)
    running: Dict[int, Tuple[subprocess.Popen, float, object]] = {}
    total = len(pending)
    done = 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i = pending.pop(0)
                run = runs[i]
                os.makedirs(os.path.dirname(run.log_path) or ".", exist_ok=True)
                logf = open(run.log_path, "a")
                logf.write(f"=== core.sweep {time.strftime('%Y-%m-%d %H:%M:%S')} "
                           f"({run.status}): {_show(run.command)}\n")
                logf.flush()
                proc = subprocess.Popen(
                    run.command, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True,
                )
                running[i] = (proc, time.monotonic(), logf)
                log(f"[start] {run.env_id} seed {run.seed} ({run.status}) pid {proc.pid} -> {run.log_path}")
            time.sleep(poll_s)
            for i in list(running):
                proc, start, logf = running[i]
                wall = time.monotonic() - start
                rc = proc.poll()
                status = None
                if rc is None and timeout_s is not None and wall > timeout_s:
                    _stop(proc)
                    rc, status = proc.returncode, "timeout"
                if rc is None:
                    continue
                status = status or ("ok" if rc == 0 else "failed")
                logf.close()
                del running[i]
                done += 1
                run = runs[i]
                results[i] = Result(run, status, rc, round(wall, 3))
                log(f"[{'done' if status == 'ok' else status}] {run.env_id} seed {run.seed}: "
                    f"exit {rc}, {wall:.1f} s ({done}/{total})")
    except KeyboardInterrupt:
        for proc, _, logf in running.values():
            _stop(proc)
            logf.close()
        raise
    return [results[i] for i in range(len(runs))]


def sweep_record(
    module: str, preset: str, envs: Sequence[str], seeds: Sequence[int], out_root: str,
    extra: Sequence[str], results: Sequence[Result], wall_s: float,
) -> dict:
    """The ``sweep.json`` object."""
    return {
        "module": module,
        "preset": preset,
        "envs": list(dict.fromkeys(envs)),
        "seeds": list(dict.fromkeys(int(s) for s in seeds)),
        "out_root": out_root,
        "extra": list(extra),
        "wall_s": round(wall_s, 3),
        "runs": [
            {
                "env_id": r.run.env_id, "seed": r.run.seed, "out_dir": r.run.out_dir,
                "log": r.run.log_path, "planned": r.run.status, "status": r.status,
                "returncode": r.returncode, "wall_s": r.wall_s, "command": list(r.run.command),
            }
            for r in results
        ],
    }


def _split_extra(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    argv = list(argv)
    if "--" in argv:
        k = argv.index("--")
        return argv[:k], argv[k + 1:]
    return argv, []


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI; returns the exit status (bad input raises ``SystemExit(2)``)."""
    own, extra = _split_extra(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m core.sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("module", help="training module, e.g. algorithms.dqn.train")
    parser.add_argument("preset", help="preset passed to every run, e.g. cpu")
    parser.add_argument("--envs", nargs="+", default=[], help="environment ids")
    parser.add_argument("--seeds", nargs="+", type=int, default=[], help="integer seeds")
    parser.add_argument("--out-root", required=True, help="sweep directory: <env>/seed<S> per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, launch nothing")
    parser.add_argument("--timeout-s", type=float, default=None, help="terminate a run after S seconds")
    args = parser.parse_args(own)

    if not args.envs:
        cli.fail("--envs: give at least one environment id")
    if not args.seeds:
        cli.fail("--seeds: give at least one integer seed")
    if args.jobs < 1:
        cli.fail(f"--jobs: must be >= 1; got {args.jobs}")
    if args.timeout_s is not None and args.timeout_s <= 0:
        cli.fail(f"--timeout-s: must be > 0; got {args.timeout_s}")
    if not _module_exists(args.module):
        cli.fail(f"MODULE: cannot find module {args.module!r} (e.g. algorithms.dqn.train; "
                 "run from the repository root)")
    try:
        runs = plan_runs(args.module, args.preset, args.envs, args.seeds, args.out_root, extra)
    except ValueError as error:
        cli.fail(f"--envs: {error}")

    counts = {s: sum(r.status == s for r in runs) for s in STATUSES}
    header = (f"sweep {args.module} {args.preset}: {len(runs)} runs "
              f"({counts['new']} new, {counts['resume']} resume, {counts['finished']} finished), "
              f"jobs {args.jobs}, out {args.out_root}")
    if args.dry_run:
        print(header + " [dry run]")
        for run in runs:
            print(f"{run.status:<8} {run.env_id} seed {run.seed}: {_show(run.command)}")
        return 0

    print(header, flush=True)
    os.makedirs(args.out_root, exist_ok=True)
    start = time.monotonic()
    results = execute(runs, jobs=args.jobs, timeout_s=args.timeout_s,
                      log=lambda line: print(line, flush=True))
    wall = time.monotonic() - start
    sweep_path = os.path.join(args.out_root, "sweep.json")
    cli.write_json(sweep_path, sweep_record(
        args.module, args.preset, args.envs, args.seeds, args.out_root, extra, results, wall))

    by_status = {s: [r for r in results if r.status == s] for s in ("finished", "ok", "failed", "timeout")}
    bad = by_status["failed"] + by_status["timeout"]
    print(f"sweep done in {wall:.1f} s: {len(by_status['ok'])} ok, {len(by_status['finished'])} "
          f"already finished, {len(by_status['failed'])} failed, {len(by_status['timeout'])} timed out "
          f"({sweep_path})")
    for r in bad:
        print(f"  {r.status}: {r.run.env_id} seed {r.run.seed} (exit {r.returncode}), log {r.run.log_path}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
