"""BBF vs its ablations and an SPR-style baseline on the five MinAtar games (NOT run yet).

    python -m algorithms.bbf.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.bbf.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.bbf.train` (100k environment steps,
replay ratio 8, scaled-down Impala) under every condition below on every game and seed,
through :func:`core.grid.run_grid` (resumable: rerun the same command after a kill).
``report`` writes ``results/bbf_minatar.{md,json}`` and ``results/bbf_minatar_curves.png``:
the final greedy return per game (mean ± std over seeds) and, across games, the IQM and mean
of normalised scores (0 = random policy, 1 = the DrQ(ε) ``cpu`` preset;
:mod:`environments.minatar_scores`) with 95% stratified-bootstrap CIs.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Optional, Sequence

from core import aggregate, cli, grid
from environments import minatar_scores

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GAMES = minatar_scores.GAMES
SEEDS = (0, 1, 2)
CONDITIONS = {
    "BBF": (),
    "BBF-Resets": ("--no-resets",),
    "BBF-SPR": ("--spr-weight", "0"),
    "BBF-Annealing": ("--no-anneal-n", "--no-anneal-gamma"),
    "BBF-WD": ("--weight-decay", "0"),
    "BBF n=10": ("--no-anneal-n", "--n-step", "10"),
    "BBF gamma=0.99": ("--no-anneal-gamma", "--gamma", "0.99"),
    # The cpu_spr preset as overrides of cpu: MinAtar CNN, n = 10, γ = 0.99, no resets, no decay, RR 1.
    "SPR-style": ("--encoder", "minatar", "--no-resets", "--no-anneal-n", "--n-step", "10", "--no-anneal-gamma",
                  "--gamma", "0.99", "--weight-decay", "0", "--gradient-steps", "1"),
}
"""label -> CLI overrides of the ``cpu`` preset (the paper's ablations of Fig. 5, and an SPR-style baseline)."""


def dir_name(label: str) -> str:
    return label.lower().replace("bbf-", "bbf_minus_").replace("-", "_").replace(" ", "_").replace("=", "").replace(
        ".", "")


def run(args) -> int:
    conditions = {dir_name(label): tuple(extra) for label, extra in CONDITIONS.items()}
    return grid.run_grid("algorithms.bbf.train", "cpu", conditions, args.games, args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)


def report(args) -> int:
    finished = set(grid.finished_conditions(args.out_root, [dir_name(label) for label in CONDITIONS], GAMES))
    labels = [label for label in CONDITIONS if dir_name(label) in finished]
    if not labels:
        cli.fail(f"no condition has a finished run on every game under {args.out_root}; run first")
    command = "python -m algorithms.bbf.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate([grid.condition_root(args.out_root, dir_name(label)) for label in labels],
                                     labels, normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    envs = result["envs"]
    summary, tables = minatar_scores.comparison_tables(result, labels, reps=args.reps, seed=args.seed)
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             f"Normalised score: 0 = random policy, 1 = DrQ(ε) cpu preset; {len(envs)} games; "
             f"95% stratified-bootstrap CIs ({args.reps:,} replicates).", "",
             *tables]
    prefix = os.path.join(args.results, "bbf_minatar")
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "summary": summary, "aggregate": result})
    aggregate.plot_curves(result, prefix + "_curves.png", y="eval_return",
                          title="BBF on MinAtar: greedy evaluation return, mean over seeds ± std")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}_curves.png")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.bbf.experiment", description=__doc__, run=run, report=report,
                     games=GAMES, seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
