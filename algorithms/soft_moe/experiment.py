"""The paper's central claim at MinAtar scale: return as the number of experts grows (1, 2, 4,
8), Soft MoE against the dense penultimate layer widened by the same factor.

    python -m algorithms.soft_moe.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.soft_moe.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.soft_moe.train` (MinAtar DQN, 25k
environment steps) with ``--moe softmoe`` and ``--moe none`` at each expert count on every
game and seed, through :func:`core.grid.run_grid` (resumable). ``report`` writes
``results/scaling_minatar.{md,json,png}``: per game the final greedy return, and across
games the IQM of normalised scores with 95% stratified-bootstrap CIs (Agarwal et al. 2021).

Normalised score = (return − random policy) / (reference − random policy) per game, with the
random-policy returns of ``algorithms/dqn/results/minatar_random.md`` and, as the fixed
reference, the DrQ(ε) ``cpu`` preset's mean final return at 50k steps
(``algorithms/dqn/results/minatar.md``): 0 = random, 1 = that DrQ(ε) agent.
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
EXPERTS = (1, 2, 4, 8)
RANDOM, REFERENCE = minatar_scores.RANDOM, minatar_scores.REFERENCE
VARIANTS = {"Soft MoE": "softmoe", "dense (widened)": "none"}


def conditions() -> dict:
    return {f"{moe}_{e}": ("--moe", moe, "--num-experts", str(e)) for moe in VARIANTS.values() for e in EXPERTS}


def run(args) -> int:
    return grid.run_grid("algorithms.soft_moe.train", "cpu", conditions(), args.games, args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)



def report(args) -> int:
    names = grid.finished_conditions(args.out_root, list(conditions()), GAMES)
    command = "python -m algorithms.soft_moe.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate([grid.condition_root(args.out_root, n) for n in names], names,
                                     normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    envs = result["envs"]
    rows, summary = [], {}
    for name in names:
        per_game = result["per_label"][name]["per_game"]
        scores = minatar_scores.aggregate({env: per_game[env]["scores"] for env in envs}, reps=args.reps,
                                          seed=args.seed)
        runs = scores["runs"]
        dormant = [aggregate.final_metric(d, "dormant_fraction") for g in per_game.values() for d in g["run_dirs"]]
        moe, experts = name.rsplit("_", 1)
        summary[name] = {"moe": moe, "experts": int(experts), "runs_per_game": runs,
                         "iqm": scores["iqm"], "mean": scores["mean"],
                         "dormant_fraction": float(np.mean(dormant))}
        label = next(k for k, v in VARIANTS.items() if v == moe)
        rows.append(f"| {label} | {experts} | {minatar_scores.format_interval(scores['iqm'])} "
                    f"| {minatar_scores.format_interval(scores['mean'])} | {100 * np.mean(dormant):.1f}% | {runs} |")
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             f"Normalised score: 0 = random policy, 1 = DrQ(ε) at 50k steps; {len(envs)} games; "
             f"95% stratified-bootstrap CIs ({args.reps:,} replicates). Dormant: share of penultimate units "
             "(expert hidden units for Soft MoE) with score ≤ 0.1 at the end of training.", "",
             "| penultimate layer | experts / width × | IQM | mean | dormant | runs per game |",
             "|---|---:|---:|---:|---:|---:|", *rows, "",
             "Per game: final greedy evaluation return, mean ± std over seeds (n).", "",
             "| game | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for env in envs:
        cells = [f"{result['per_label'][n]['per_game'][env]['mean']:.2f} ± {result['per_label'][n]['per_game'][env]['std']:.2f}"
                 f" ({result['per_label'][n]['per_game'][env]['n']})" for n in names]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    prefix = os.path.join(args.results, "scaling_minatar")
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "summary": summary, "aggregate": result,
                                      "random": RANDOM, "reference": REFERENCE})
    _plot(summary, prefix + ".png")
    aggregate.plot_curves(result, prefix + "_curves.png", y="train_return",
                          title="Training return (last 5k steps): mean over seeds ± std")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png, {prefix}_curves.png")
    return 0


def _plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=130, layout="constrained")
    for label, moe in VARIANTS.items():
        points = sorted((s["experts"], s["iqm"]) for s in summary.values() if s["moe"] == moe)
        if not points:
            continue
        x = np.array([p[0] for p in points])
        point, lower, upper = (np.array([p[1][i] for p in points]) for i in range(3))
        ax.plot(x, point, marker="o", label=label)
        ax.fill_between(x, lower, upper, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(EXPERTS), [str(e) for e in EXPERTS])
    ax.set_xlabel("experts (dense: width multiplier)")
    ax.set_ylabel("IQM normalised score")
    ax.set_title("DQN on MinAtar, 25k steps: IQM with 95% CIs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.soft_moe.experiment", description=__doc__, run=run, report=report, games=GAMES,
                     seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
