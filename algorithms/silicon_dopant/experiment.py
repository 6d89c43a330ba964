"""The paper's evidence on this machine: learned controller vs beam-on-neighbour vs random placement
(and the oracle) over several ground-truth rate functions, with rate-map recovery and atom detection.

    python -m algorithms.silicon_dopant.experiment [--preset cpu] [--rate-functions ...] [--seed 0]

Runs :mod:`algorithms.silicon_dopant.train` (in process, one run per ground truth, each
resumable; a finished run is only re-read) under ``--out-root`` and writes
``results/control.{md,json,png}``: per ground truth the transitions kept by the pipeline, the
learned rate map's error and argmax distance, and each controller's success rate and mean
time to goal over the preset's episodes; plus atom-detection precision/recall per dose.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from typing import Optional, Sequence

import numpy as np

from core import cli

HERE = os.path.dirname(os.path.abspath(__file__))
RATE_FUNCTIONS = ("inverse_square", "gaussian", "mixture0", "mixture1", "mixture2")
LABELS = {"learned": "learned (distilled)", "neighbour": "beam on neighbour", "random": "random placement",
          "oracle": "oracle (true argmax)"}


def run(args) -> dict:
    from algorithms.silicon_dopant import train

    base = train.PRESETS[args.preset][1]
    summaries = {}
    for name in args.rate_functions:
        out_dir = os.path.join(args.out_root, name)
        path = os.path.join(out_dir, "summary.json")
        cfg = dataclasses.replace(base, rate_function=name, seed=args.seed, out_dir=out_dir, progress=args.progress)
        if not os.path.exists(path):
            start = time.time()
            train.main(cfg, preset=args.preset)
            print(f"{name}: {time.time() - start:.0f} s", flush=True)
        with open(path) as f:
            summaries[name] = json.load(f)
    return summaries


def report(args, summaries: dict) -> None:
    command = "python -m algorithms.silicon_dopant.experiment " + shlex.join(sys.argv[1:])
    first = next(iter(summaries.values()))
    cfg = json.load(open(os.path.join(args.out_root, next(iter(summaries)), "config.json")))
    wall = sum(s["wall_s"] for s in summaries.values())
    lines = [f"Produced by `{command}` ({len(summaries)} runs of the `{args.preset}` preset, seed {args.seed}, "
             f"{wall / 60:.1f} min of wall time on 2 shared CPU cores).", "",
             f"Each run: {cfg['fields'] * cfg['dwells_per_field']:,} recorded dwells of {cfg['dwell_s']:g} s → frames "
             f"(dose {cfg['dose']:g}) → pipeline → {cfg['ensemble_size']}-member ensemble → distilled model; "
             f"{cfg['episodes']} goal-reaching episodes per controller, goals {cfg['goal_distance']:g} Å away, "
             f"dwell {cfg['control_dwell_s']:g} s, budget {cfg['max_time_s']:g} s of beam time.", "",
             "| ground truth | true argmax (Å) | transitions kept (swaps) | rate-map rel. L2 | argmax dist. (Å) | "
             + " | ".join(f"{LABELS[c]}: success, time (s)" for c in LABELS) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(LABELS)]
    for name, s in summaries.items():
        rm = s["rate_map"]["distilled"]
        cells = []
        for c in LABELS:
            r = s["control"][c]
            t = "–" if r["mean_time_to_goal_s"] is None else f"{r['mean_time_to_goal_s']:.1f}"
            cells.append(f"{100 * r['success_rate']:.0f}%, {t}")
        lines.append(f"| {name} | {np.linalg.norm(rm['true_argmax']):.2f} | {s['transitions']['kept']:,} "
                     f"({s['transitions']['swaps']:,}) | {rm['relative_l2']:.3f} | {rm['argmax_distance_A']:.2f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "True argmax: distance of the true optimum from the Si (the neighbouring carbon is at 1.42 Å). "
              "Rate-map errors on the disc of radius "
              f"{cfg['map_radius']:g} Å around the Si, for neighbour 0 of the distilled model. Time: mean beam time "
              "to goal over successful episodes.", "",
              "Pipeline (first ground truth): " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v:,}"
                                                          for k, v in first["pipeline"].items()), "",
              "Atom detection on fresh frames (match within 0.5 Å; Si site from the brightest spot):", "",
              "| dose (counts per C peak) | precision | recall | position error (Å) | Si site correct | three-fold |",
              "|---:|---:|---:|---:|---:|---:|"]
    for dose, d in first["detection"].items():
        lines.append(f"| {dose} | {d['precision']:.3f} | {d['recall']:.3f} | {d['position_error_A']:.3f} | "
                     f"{d['si_site_accuracy']:.3f} | {d['three_fold_rate']:.3f} |")
    os.makedirs(args.results, exist_ok=True)
    prefix = os.path.join(args.results, "control")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    slim = {k: {f: s[f] for f in ("rate_map", "control", "transitions", "pipeline", "detection", "wall_s", "headline")}
            for k, s in summaries.items()}
    cli.write_json(prefix + ".json", {"command": command, "preset": args.preset, "seed": args.seed, "runs": slim})
    _plot(args, summaries, prefix + ".png")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png")


def _plot(args, summaries: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from algorithms.silicon_dopant import lattice

    names = list(summaries)
    fig = plt.figure(figsize=(3.2 * len(names), 9.5), dpi=110)
    grid = fig.add_gridspec(3, len(names), height_ratios=[1, 1, 1.1])
    for i, name in enumerate(names):
        maps = np.load(os.path.join(args.out_root, name, "rate_map.npz"))
        vmax = float(max(maps["true"].max(), maps["learned"].max()))
        for row, key in enumerate(("true", "learned")):
            ax = fig.add_subplot(grid[row, i])
            ax.tricontourf(maps["grid"][:, 0], maps["grid"][:, 1], maps[key], levels=20, vmin=0, vmax=vmax,
                           cmap="viridis")
            ax.scatter(*lattice.CANONICAL_NEIGHBOURS.T, c="white", s=25, edgecolors="k")
            ax.scatter([0], [0], c="orange", s=50, edgecolors="k")
            ax.scatter(*maps["grid"][int(np.argmax(maps[key]))], marker="x", c="red", s=50)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {'true' if key == 'true' else 'learned'} λ₀", fontsize=9)
    ax = fig.add_subplot(grid[2, :])
    width = 0.8 / len(LABELS)
    x = np.arange(len(names))
    for j, c in enumerate(LABELS):
        success = [summaries[n]["control"][c]["success_rate"] for n in names]
        times = [summaries[n]["control"][c]["mean_time_to_goal_s"] for n in names]
        bars = ax.bar(x + (j - (len(LABELS) - 1) / 2) * width, success, width, label=LABELS[c])
        for b, t in zip(bars, times):
            if t is not None:
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{t:.1f}s", ha="center", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("success rate (label: mean time to goal)")
    ax.legend(fontsize=8, ncol=len(LABELS), loc="upper center")
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Si dopant control: rate maps (Si orange, C white, argmax ×) and goal reaching", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.silicon_dopant.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="preset of algorithms.silicon_dopant.train (default cpu)")
    parser.add_argument("--rate-functions", nargs="+", default=list(RATE_FUNCTIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-root", default="runs/silicon_dopant_experiment")
    parser.add_argument("--results", default=os.path.relpath(os.path.join(HERE, "results")))
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    from algorithms.silicon_dopant import lattice, train

    if args.preset not in train.PRESETS:
        cli.fail(f"--preset: unknown {args.preset!r}; choose one of {sorted(train.PRESETS)}")
    for name in args.rate_functions:
        try:
            lattice.make_rate_fn(name)
        except ValueError as error:
            cli.fail(f"--rate-functions: {error}")
    try:
        summaries = run(args)
    except cli.ConfigError as error:
        cli.fail(str(error))
    report(args, summaries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
