"""KSMe-DQN vs MICo-DQN vs DQN on the five MinAtar games.

    python -m algorithms.ksme.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.ksme.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.ksme.train` (MinAtar DQN, 30k
environment steps, α = 0.01) with ``--metric ksme``, ``--metric mico`` and ``--metric none``
(the base agent, same network and seeds) on every game and seed, through
:func:`core.grid.run_grid` (resumable: rerun the same command after a kill). ``report``
writes ``results/ksme_minatar.{md,json,png}`` and ``results/ksme_minatar_curves.png``: the
final greedy return per game (mean ± std over seeds) and, across games, the IQM and mean of
normalised scores (0 = random policy, 1 = the DrQ(ε) cpu preset at 50k steps;
:mod:`environments.minatar_scores`) with 95% stratified-bootstrap CIs (Agarwal et al. 2021).
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Optional, Sequence

import numpy as np

from core import aggregate, cli, grid
from environments import minatar_scores

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GAMES = minatar_scores.GAMES
SEEDS = (0, 1, 2)
CONDITIONS = {"DQN": ("--metric", "none"), "MICo-DQN": ("--metric", "mico"), "KSMe-DQN": ("--metric", "ksme")}
"""label -> CLI overrides of the ``cpu`` preset."""


def dir_name(label: str) -> str:
    return label.lower().replace("-", "_")


def run(args) -> int:
    conditions = {dir_name(label): extra for label, extra in CONDITIONS.items()}
    return grid.run_grid("algorithms.ksme.train", "cpu", conditions, args.games, args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)


def report(args) -> int:
    finished = set(grid.finished_conditions(args.out_root, [dir_name(label) for label in CONDITIONS], GAMES))
    labels = [label for label in CONDITIONS if dir_name(label) in finished]
    if not labels:
        cli.fail(f"no condition has a finished run on every game under {args.out_root}; run first")
    command = "python -m algorithms.ksme.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate([grid.condition_root(args.out_root, dir_name(label)) for label in labels],
                                     labels, normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    envs = result["envs"]
    summary, tables = minatar_scores.comparison_tables(result, labels, reps=args.reps, seed=args.seed)
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             f"Normalised score: 0 = random policy, 1 = DrQ(ε) at 50k steps; {len(envs)} games; "
             f"95% stratified-bootstrap CIs ({args.reps:,} replicates).", "",
             *tables]
    prefix = os.path.join(args.results, "ksme_minatar")
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "summary": summary, "aggregate": result,
                                      "random": minatar_scores.RANDOM, "reference": minatar_scores.REFERENCE})
    _plot(result, labels, prefix + ".png")
    aggregate.plot_curves(result, prefix + "_curves.png", y="eval_return",
                          title="Greedy evaluation return: mean over seeds ± std")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png, {prefix}_curves.png")
    return 0


def _plot(result: dict, labels: Sequence[str], path: str) -> None:
    """Per game, the final return of each agent (mean ± std over seeds), normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = result["envs"]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=130, layout="constrained")
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        per_game = result["per_label"][label]["per_game"]
        scores = [minatar_scores.normalized_score(env, per_game[env]["scores"]) for env in envs]
        x = np.arange(len(envs)) + (i - (len(labels) - 1) / 2) * width
        ax.bar(x, [s.mean() for s in scores], width, yerr=[s.std() for s in scores], label=label, capsize=2)
    ax.set_xticks(np.arange(len(envs)), [e.replace("-MinAtar", "") for e in envs])
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("normalised final return")
    ax.set_title("MinAtar, 30k steps: mean ± std over seeds (0 = random, 1 = DrQ(ε))", fontsize=10)
    ax.legend(fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.ksme.experiment", description=__doc__, run=run, report=report,
                     games=GAMES, seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
