"""The shape of the paper's DQN table at MinAtar scale: return of dense DQN against six ways of
reaching 98% sparsity (gradual magnitude, gradual random, global magnitude, static sparse, SET, RigL).

    python -m algorithms.jaxpruner.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.jaxpruner.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.jaxpruner.train` (MinAtar DQN, 98% ERK
sparsity; pruning from 20% to 80% of the gradient steps every 100, SET/RigL updating
their masks every 100 gradient steps from the first with an initial drop fraction of 0.3)
under every condition of :data:`CONDITIONS` on every game and seed, seed-major, through
:func:`core.grid.run_grid` (resumable: rerun the same command after a kill). ``report``
writes ``results/dqn_minatar.{md,json,png}``: per game the final greedy return (mean ± std
over seeds), the final sparsity of the online network, and across games the IQM of
normalised scores with 95% stratified-bootstrap CIs.

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

from core import aggregate, cli, grid, stats
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
    finished = set(grid.finished_conditions(args.out_root, [dir_name(label) for label in CONDITIONS], GAMES))
    labels = [label for label in CONDITIONS if dir_name(label) in finished]
    command = "python -m algorithms.jaxpruner.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate([grid.condition_root(args.out_root, dir_name(label)) for label in labels], labels,
                                     normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    envs = result["envs"]
    rows, summary = [], {}
    for label in labels:
        per_game = result["per_label"][label]["per_game"]
        runs = min(g["n"] for g in per_game.values())
        matrix = np.stack([minatar_scores.normalized_score(env, per_game[env]["scores"][:runs]) for env in envs],
                          axis=1)  # [R, M]
        iqm = stats.stratified_bootstrap(matrix, stats.aggregate_iqm, rng=args.seed, reps=args.reps)
        mean = stats.stratified_bootstrap(matrix, stats.aggregate_mean, rng=args.seed, reps=args.reps)
        dirs = [d for g in per_game.values() for d in g["run_dirs"]]
        sparsity = [aggregate.final_metric(d, "sparsity") for d in dirs]
        wall = [json.load(open(os.path.join(d, "summary.json")))["wall_s"] for d in dirs]
        summary[label] = {"runs_per_game": runs, "iqm": [float(iqm.point), float(iqm.lower), float(iqm.upper)],
                          "mean": [float(mean.point), float(mean.lower), float(mean.upper)],
                          "final_sparsity": float(np.mean(sparsity)), "wall_s_mean": float(np.mean(wall))}
        rows.append(f"| {label} | {100 * np.mean(sparsity):.1f}% | {iqm.point:.3f} [{iqm.lower:.3f}, {iqm.upper:.3f}] "
                    f"| {mean.point:.3f} [{mean.lower:.3f}, {mean.upper:.3f}] | {runs} |")
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             f"DQN on MinAtar, the `cpu` preset of `algorithms.jaxpruner.train`; target sparsity 98% (ERK). "
             f"Sparsity: share of zero weights among the prunable (≥ 2-D) parameters of the online network at the "
             f"end. Normalised score: 0 = random policy, 1 = DrQ(ε) at 50k steps; {len(envs)} games; 95% "
             f"stratified-bootstrap CIs ({args.reps:,} replicates).", "",
             "| condition | sparsity | IQM | mean | runs per game |", "|---|---:|---:|---:|---:|", *rows, "",
             "Per game: final greedy evaluation return (32 episodes), mean ± std over seeds (n).", "",
             "| game | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for env in envs:
        cells = [f"{result['per_label'][n]['per_game'][env]['mean']:.2f} ± {result['per_label'][n]['per_game'][env]['std']:.2f}"
                 f" ({result['per_label'][n]['per_game'][env]['n']})" for n in labels]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    prefix = os.path.join(args.results, "dqn_minatar")
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "summary": summary, "aggregate": result})
    _plot(summary, prefix + ".png")
    aggregate.plot_per_game(result, prefix + "_per_game.png", title="Final greedy return per game: mean over seeds")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png, {prefix}_per_game.png")
    return 0


def _plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)
    fig, ax = plt.subplots(figsize=(6.5, 3.5), dpi=130, layout="constrained")
    point = np.array([summary[k]["iqm"][0] for k in labels])
    lower = np.array([summary[k]["iqm"][1] for k in labels])
    upper = np.array([summary[k]["iqm"][2] for k in labels])
    colors = ["tab:gray"] + ["tab:blue"] * (len(labels) - 1)
    ax.bar(range(len(labels)), point, yerr=[point - lower, upper - point], color=colors, capsize=3)
    ax.set_xticks(range(len(labels)), [k.replace(" (gradual)", "\n(gradual)") for k in labels], fontsize=8)
    ax.set_ylabel("IQM normalised score")
    ax.set_title("DQN on MinAtar at 98% sparsity: IQM over games with 95% CIs", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.jaxpruner.experiment", description=__doc__, run=run,
                     report=report, games=GAMES, seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
