"""The ReDo paper's two claims on MinAtar: dormant neurons grow (faster at a higher replay
ratio), and recycling them keeps them few and helps at a high replay ratio.

    python -m algorithms.redo.experiment run [--games ...] [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.redo.experiment report

``run`` trains the ``cpu`` preset of :mod:`algorithms.redo.train` (MinAtar DQN, 20k
environment steps) under every condition of :data:`CONDITIONS` on every game and seed,
through :func:`core.grid.run_grid` (resumable: rerun the same command after a kill).
``report`` writes ``results/redo_minatar.{md,json}`` (final return and dormant fractions
per condition and game), ``results/redo_minatar_dormant.png`` (dormant fraction over
training) and ``results/redo_minatar_curves.png`` (evaluation return over training).

Replay ratio = gradient steps per environment step: 1 is ``--train-every 1``, 4 adds
``--gradient-steps 4``; the target network is copied every 1000 environment steps at
both ratios (``--target-update-every`` counts gradient steps), as in the authors' code.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Optional, Sequence

import numpy as np

from core import aggregate, cli, grid

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GAMES = ("Breakout-MinAtar", "SpaceInvaders-MinAtar")
SEEDS = (0, 1, 2)
WEIGHT_DECAY = 1e-4  # our choice of λ for the weight-decay baseline (L2 gradient ahead of Adam)
RESET_PERIOD = 20_000  # gradient steps between resets of the last layers (Nikishin et al. 2022 reset SPR every 2·10⁴ updates)
RR4 = ("--gradient-steps", "4", "--target-update-every", "4000")
CONDITIONS = {
    "DQN, RR 1": ("--recycle", "none"),
    "ReDo, RR 1": ("--recycle", "redo"),
    "DQN, RR 4": ("--recycle", "none", *RR4),
    "ReDo, RR 4": ("--recycle", "redo", *RR4),
    "Reset, RR 4": ("--recycle", "reset", "--recycle-period", str(RESET_PERIOD), *RR4),
    "WD, RR 4": ("--recycle", "none", "--weight-decay", str(WEIGHT_DECAY), *RR4),
}
"""label -> CLI overrides of the ``cpu`` preset."""


def dir_name(label: str) -> str:
    return label.lower().replace(", ", "_").replace(" ", "")


def run(args) -> int:
    conditions = {dir_name(label): extra for label, extra in CONDITIONS.items()}
    return grid.run_grid("algorithms.redo.train", "cpu", conditions, args.games, args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)


def report(args) -> int:
    finished = set(grid.finished_conditions(args.out_root, [dir_name(label) for label in CONDITIONS], GAMES))
    labels = [label for label in CONDITIONS if dir_name(label) in finished]
    roots = [grid.condition_root(args.out_root, dir_name(label)) for label in labels]
    command = "python -m algorithms.redo.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate(roots, labels, normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    prefix = os.path.join(args.results, "redo_minatar")
    os.makedirs(args.results, exist_ok=True)
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "",
             "Final greedy evaluation return (32 episodes) and dormant fractions of the online network at the "
             "end of training (τ = 0.1; 'dead' = τ 0), mean ± std over seeds (n seeds).", ""]
    lines.append("| game | condition | eval return | dormant (τ 0.1) | dead (τ 0) | grad steps |")
    lines.append("|---|---|---:|---:|---:|---:|")
    table = {}
    for env in result["envs"]:
        for label in labels:
            game = result["per_label"][label]["per_game"][env]
            dormant = [aggregate.final_metric(d, "dormant_fraction") for d in game["run_dirs"]]
            dead = [aggregate.final_metric(d, "dead_fraction") for d in game["run_dirs"]]
            steps = [aggregate.final_metric(d, "grad_steps") for d in game["run_dirs"]]
            table[f"{env}/{label}"] = {"return": game["scores"], "dormant": dormant, "dead": dead, "grad_steps": steps}
            lines.append(f"| {env} | {label} | {np.mean(game['scores']):.2f} ± {np.std(game['scores']):.2f} "
                         f"(n={game['n']}) | {100 * np.mean(dormant):.1f}% ± {100 * np.std(dormant):.1f} "
                         f"| {100 * np.mean(dead):.1f}% | {int(np.mean(steps)):,} |")
    lines.append("")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "final": table, "aggregate": result})
    aggregate.plot_curves(result, prefix + "_dormant.png", y="dormant_fraction",
                          title="Dormant fraction (τ = 0.1) over training: mean over seeds ± std")
    aggregate.plot_curves(result, prefix + "_curves.png", y="eval_return",
                          title="Greedy evaluation return over training: mean over seeds ± std")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}_dormant.png, {prefix}_curves.png")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return grid.main(argv, prog="python -m algorithms.redo.experiment", description=__doc__, run=run, report=report, games=GAMES,
                     seeds=SEEDS, results=RESULTS, runs="minatar_runs")


if __name__ == "__main__":
    raise SystemExit(main())
