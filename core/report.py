"""Results table and figure from finished run dirs (the README results of every paper).

    python -m core.report RUN_DIR [RUN_DIR ...] --figure FIG.png [--table TABLE.md]
        [--y eval_return] [--target 475]

Reads each run's ``summary.json`` and ``metrics.jsonl``; prints (and optionally writes) a
markdown table with one row per run plus the mean ± std over runs, and plots every run's
``--y`` curve against environment steps in one figure.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional, Sequence

import numpy as np

from core import metrics


def load_summary(run_dir: str) -> dict:
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: {run_dir} has no summary.json (unfinished run?)")
    with open(path) as f:
        return json.load(f)


def results_table(run_dirs: Sequence[str], *, y: str = "eval_return", target: Optional[float] = None) -> str:
    """Markdown: run, seed, env steps, final headline, best ``y`` and when, wall time."""
    rows = ["| run | seed | env steps | final " + y + " | best " + y + " (at step) | wall | steps/s |",
            "|---|---|---|---|---|---|---|"]
    finals = []
    for run_dir in run_dirs:
        s = load_summary(run_dir)
        recs = [r for r in metrics.read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if r.get(y) is not None]
        best = max(recs, key=lambda r: r[y]) if recs else None
        value = s["headline"]["value"]
        finals.append(value)
        rows.append(
            f"| {os.path.basename(os.path.normpath(run_dir))} | {s['seed']} | {s['env_steps']:,} | {value:.1f} "
            f"| {best[y]:.1f} ({best['env_steps']:,}) | {s['wall_s'] / 60:.1f} min | {s['sps_steady'] or 0:,.0f} |"
            if best else f"| {run_dir} | {s['seed']} | {s['env_steps']} | {value} | – | – | – |")
    finals = np.asarray([f for f in finals if f is not None], float)
    if len(finals):
        line = f"| **mean ± std over {len(finals)} runs** | | | **{finals.mean():.1f} ± {finals.std():.1f}** | | | |"
        rows.append(line)
        if target is not None:
            rows.append(f"\nRuns with final {y} ≥ {target:g}: {int((finals >= target).sum())} of {len(finals)}.")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--figure", required=True, help="PNG path for the learning curves")
    parser.add_argument("--table", help="also write the markdown table here")
    parser.add_argument("--y", default="eval_return", help="metric to tabulate and plot")
    parser.add_argument("--target", type=float, help="draw and count against this threshold")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    table = results_table(args.runs, y=args.y, target=args.target)
    print(table)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")
    labels = [f"seed {load_summary(r)['seed']}" for r in args.runs]
    metrics.plot_learning_curve(args.runs, args.figure, y=args.y, title=args.title, labels=labels, hline=args.target)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
