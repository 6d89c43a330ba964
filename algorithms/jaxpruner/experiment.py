"""The shape of the paper's DQN table at MinAtar scale: return of dense DQN against six ways of
reaching 98% sparsity (gradual magnitude, gradual random, global magnitude, static sparse, SET, RigL).

    python -m algorithms.jaxpruner.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.jaxpruner.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.jaxpruner.train` (MinAtar DQN, 98% ERK
sparsity; pruning from 20% to 80% of the gradient steps every 100, SET/RigL updating
their masks every 100 gradient steps from the first with an initial drop fraction of 0.3)
under every condition of :data:`CONDITIONS` on every game and seed, seed-major, through
:func:`core.grid.run_grid` (resumable: rerun the same command after a kill). ``report``
writes ``results/dqn_minatar.{md,json,png}`` from whatever has finished: per game the final
greedy return (mean ± std over seeds), the final sparsity of the online network, and over
the games every condition has finished, the IQM and mean of normalised scores with 95%
stratified-bootstrap CIs.

Normalised score = (return − random policy) / (reference − random policy) per game
(:mod:`environments.minatar_scores`: 0 = random policy, 1 = DrQ(ε) at 50k steps).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Optional, Sequence

import numpy as np

from core import aggregate, cli, grid
from algorithms.jaxpruner.train import PRESETS
from environments import minatar_scores

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GAMES = minatar_scores.GAMES
SEEDS = (0, 1, 2)
DST = ("--update-start-fraction", "0")
CONDITIONS = {
    "no pruning": ("--pruner", "no_prune"),
    "magnitude (gradual)": ("--pruner", "magnitude"),
    "random (gradual)": ("--pruner", "random"),
    "global magnitude": ("--pruner", "global_magnitude"),
    "static sparse": ("--pruner", "static_sparse"),
    "SET": ("--pruner", "set", *DST),
    "RigL": ("--pruner", "rigl", *DST),
}
"""label -> CLI overrides of the ``cpu`` preset."""


def dir_name(label: str) -> str:
    return label.split(" (")[0].lower().replace(" ", "_")


def run(args) -> int:
    conditions = {dir_name(label): extra for label, extra in CONDITIONS.items()}
    return grid.run_grid("algorithms.jaxpruner.train", "cpu", conditions, args.games, args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)


def report(args) -> int:
    command = "python -m algorithms.jaxpruner.experiment " + shlex.join(sys.argv[1:])
    loaded = {}
    try:
        for label in CONDITIONS:
            root = grid.condition_root(args.out_root, dir_name(label))
            if os.path.isdir(root) and aggregate.find_run_dirs(root):
                loaded[label] = aggregate.load_root(root)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    if not loaded:
        cli.fail(f"no finished runs under {args.out_root}; run `python -m algorithms.jaxpruner.experiment run` first")
    labels = list(loaded)
    games = [g for g in GAMES if any(g in runs for runs in loaded.values())]
    common = [g for g in games if all(g in runs for runs in loaded.values())]
    summary, rows = {}, []
    for label in labels:
        runs = loaded[label]
        dirs = [r.run_dir for g in runs for r in runs[g]]
        sparsity = [aggregate.final_metric(d, "sparsity") for d in dirs]
        wall = [json.load(open(os.path.join(d, "summary.json")))["wall_s"] for d in dirs]
        entry = {"final_sparsity": float(np.mean(sparsity)), "wall_s_mean": float(np.mean(wall)), "runs": len(dirs),
                 "per_game": {g: [r.score for r in runs[g]] for g in runs}}
        cells = "— | — | —"
        if common:
            scores = minatar_scores.aggregate({g: [r.score for r in runs[g]] for g in common}, reps=args.reps,
                                              seed=args.seed)
            entry.update(runs_per_game=scores["runs"], iqm=scores["iqm"], mean=scores["mean"])
            cells = (f"{minatar_scores.format_interval(scores['iqm'])} | "
                     f"{minatar_scores.format_interval(scores['mean'])} | {scores['runs']}")
        summary[label] = entry
        rows.append(f"| {label} | {100 * np.mean(sparsity):.1f}% | {cells} | {np.mean(wall):.0f} s |")
    cfg = PRESETS["cpu"][1]
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             f"DQN on MinAtar, the `cpu` preset of `algorithms.jaxpruner.train` ({cfg.total_steps // 1000}k environment "
             f"steps, {cfg.total_updates:,} gradient steps); target sparsity 98% (ERK). Sparsity: share of zero weights among the prunable (≥ 2-D) "
             "parameters of the online network at the end. Normalised score: 0 = random policy, 1 = DrQ(ε) at 50k "
             f"steps; IQM and mean over the games every condition has finished ({', '.join(common) or 'none'}), "
             f"with 95% stratified-bootstrap CIs ({args.reps:,} replicates). Wall: mean per run, on 2 CPU cores "
             "shared with other work.", "",
             "| condition | sparsity | IQM | mean | runs per game | wall |", "|---|---:|---:|---:|---:|---:|", *rows, "",
             "Per game: final greedy evaluation return (32 episodes), mean ± std over seeds (n); — = not run.", "",
             "| game | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for game in games:
        cells = []
        for label in labels:
            scores = summary[label]["per_game"].get(game)
            cells.append(f"{np.mean(scores):.2f} ± {np.std(scores):.2f} ({len(scores)})" if scores else "—")
        lines.append(f"| {game} | " + " | ".join(cells) + " |")
    prefix = os.path.join(args.results, "dqn_minatar")
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "common_games": common, "summary": summary})
    _plot(summary, games, prefix + ".png", cfg.total_steps)
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png")
    return 0


def _plot(summary: dict, games, path: str, total_steps: int) -> None:
    """Per game: final return of every condition (mean over seeds, ± std, seeds as dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)
    fig, axes = plt.subplots(1, len(games), figsize=(3.2 * len(games), 3.4), dpi=130, layout="constrained",
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, game in zip(axes[0], games):
        for i, label in enumerate(labels):
            scores = summary[label]["per_game"].get(game)
            if not scores:
                continue
            ax.bar(i, np.mean(scores), yerr=np.std(scores) if len(scores) > 1 else None, color=colors(i), capsize=3)
            ax.scatter([i] * len(scores), scores, color="k", s=8, zorder=3)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(game, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("final greedy return")
    fig.suptitle(f"DQN on MinAtar at 98% sparsity ({total_steps // 1000}k steps): final return per condition", fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.jaxpruner.experiment", description=__doc__, run=run,
                     report=report, games=GAMES, seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
