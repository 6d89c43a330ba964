"""Aggregate finished runs across games and seeds: tables, figures and JSON per agent.

    python -m core.aggregate RUN_ROOT [RUN_ROOT ...] [--label NAME ...] --out PREFIX
        [--normalize human|none] [--reps 50000] [--seed 0] [--title T] [--curves]

Each ``RUN_ROOT`` is one agent's sweep (``python -m core.sweep ... --out-root RUN_ROOT``);
every directory below it holding a ``summary.json`` is a run, and its
``headline.value`` (mean evaluation return) is the run's score. Runs are grouped by
``env_id``; labels default to the roots' basenames.

* ``--normalize human`` (the default when every environment is one of the 57 Atari
  games of :mod:`core.atari_scores`): human-normalised scores laid out runs × games per
  label, and the mean, median, IQM and optimality gap with stratified-bootstrap 95%
  confidence intervals of :func:`core.stats.summarize` (Agarwal et al. 2021, arXiv
  2108.13264); the figure is the score-distribution performance profile (with
  bootstrap bands) beside the interval estimates of the four aggregates.
* ``--normalize none`` (the default otherwise, e.g. MinAtar): no reference scores exist,
  so only per-game numbers are reported (with a bootstrap 95% CI of each game's mean
  over seeds) and the figure is one bar group per game.

``--metric NAME`` scores each run by the last non-null ``NAME`` of its ``metrics.jsonl``
instead (e.g. ``train_return``, the return under the exploration policy).

Always written: ``PREFIX.md`` (the command, then the tables), ``PREFIX.png`` and
``PREFIX.json`` (every number). ``--curves`` also plots ``eval_return`` against
``env_steps`` from each run's ``metrics.jsonl`` (mean over seeds, shaded ± std), one
panel per game, to ``PREFIX_curves.png``.

Every label must cover the same games. A runs × games matrix needs the same number of
runs for every game; when a label's seed counts differ between games, every game is
truncated to the smallest count (lowest seeds kept) for the aggregates, and the output
says so. Per-game tables use every run. Standard deviations are over seeds with
``ddof=0`` (as :mod:`core.report`). Bad input (no runs, a run without a headline, an
unknown game for ``--normalize human``, mismatched games) fails with one ``error: ...``
line, exit status 2.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shlex
import sys
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from core import atari_scores, cli, metrics, stats

NORMALIZE = ("human", "none")
PROFILE_REPS = 2_000  # bootstrap replicates for the profile bands (Agarwal et al. use 2,000)
_METRIC_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}


class AggregateError(ValueError):
    """Bad input; the message is printed as one ``error: ...`` line (exit status 2)."""


class RunRecord(NamedTuple):
    """One finished run read from its ``summary.json``."""

    run_dir: str  # the directory holding summary.json
    env_id: str  # summary["env_id"]
    seed: int  # summary["seed"]
    score: float  # summary["headline"]["value"]
    algorithm: Optional[str]  # summary["algorithm"]
    preset: Optional[str]  # summary["preset"]
    env_steps: Optional[int]  # summary["env_steps"]


# ----------------------------------------------------------------------------------------
# Loading


def find_run_dirs(root: str) -> List[str]:
    """Every directory under ``root`` (itself included) with a ``summary.json``, sorted.

    ``checkpoints/`` directories are not descended into.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "checkpoints")
        if "summary.json" in filenames:
            found.append(dirpath)
    return sorted(found)


def final_metric(run_dir: str, metric: str) -> Optional[float]:
    """The last non-null ``metric`` of the run's ``metrics.jsonl`` (None when it never appears)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise AggregateError(f"{run_dir}: no metrics.jsonl to read --metric {metric} from")
    values = [r[metric] for r in metrics.read_jsonl(path) if r.get(metric) is not None]
    return values[-1] if values else None


def load_run(run_dir: str, metric: str = "headline") -> RunRecord:
    """Reads one run's summary; :class:`AggregateError` names the dir when it is unusable.

    ``metric="headline"`` scores the run by ``summary["headline"]["value"]``; any other name
    by the last non-null value of that field in ``metrics.jsonl`` (e.g. ``train_return``).
    """
    path = os.path.join(run_dir, "summary.json")
    try:
        with open(path) as f:
            s = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise AggregateError(f"{path}: cannot read ({error})") from None
    if metric == "headline":
        headline = s.get("headline") or {}
        value = headline.get("value") if isinstance(headline, dict) else None
    else:
        value = final_metric(run_dir, metric)
    if value is None:
        what = "headline value (null headline)" if metric == "headline" else f"value of {metric!r} in metrics.jsonl"
        raise AggregateError(f"{run_dir}: summary.json has no {what}" if metric == "headline"
                             else f"{run_dir}: no {what}")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AggregateError(f"{run_dir}: {metric} value {value!r} is not a finite number")
    if not s.get("env_id"):
        raise AggregateError(f"{run_dir}: summary.json has no env_id")
    if s.get("seed") is None:
        raise AggregateError(f"{run_dir}: summary.json has no seed")
    return RunRecord(run_dir=run_dir, env_id=str(s["env_id"]), seed=int(s["seed"]), score=float(value),
                     algorithm=s.get("algorithm"), preset=s.get("preset"), env_steps=s.get("env_steps"))


def load_root(root: str, metric: str = "headline") -> Dict[str, List[RunRecord]]:
    """env_id -> runs of one agent's sweep, each list sorted by seed.

    Raises:
      AggregateError: no run dirs, an unusable run, or two runs of the same env and seed.
    """
    if not os.path.isdir(root):
        raise AggregateError(f"{root}: not a directory")
    dirs = find_run_dirs(root)
    if not dirs:
        raise AggregateError(f"{root}: no run dirs found (no summary.json below it)")
    by_env: Dict[str, Dict[int, RunRecord]] = {}
    for d in dirs:
        rec = load_run(d, metric)
        seen = by_env.setdefault(rec.env_id, {})
        if rec.seed in seen:
            raise AggregateError(
                f"{root}: two runs of {rec.env_id} seed {rec.seed} ({seen[rec.seed].run_dir}, {d})")
        seen[rec.seed] = rec
    return {env: [runs[s] for s in sorted(runs)] for env, runs in sorted(by_env.items())}


def all_atari(envs: Sequence[str]) -> bool:
    """Whether every id is one of the 57 games of :mod:`core.atari_scores`."""
    for env in envs:
        try:
            atari_scores.game_key(env)
        except ValueError:
            return False
    return True


def _truncate(runs_by_env: Mapping[str, Sequence[RunRecord]]) -> Dict[str, List[RunRecord]]:
    """Every game cut to the smallest run count (lowest seeds kept)."""
    n = min(len(runs) for runs in runs_by_env.values())
    return {env: list(runs[:n]) for env, runs in runs_by_env.items()}


def _mean_std(values: Sequence[float]) -> Dict[str, Any]:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


# ----------------------------------------------------------------------------------------
# Computation


def aggregate(
    roots: Sequence[str],
    labels: Optional[Sequence[str]] = None,
    *,
    normalize: Optional[str] = None,
    reps: int = 50_000,
    seed: int = 0,
    metric: str = "headline",
) -> Dict[str, Any]:
    """Everything the outputs show, as a JSON-serialisable dict.

    Args:
      roots: one sweep directory per agent.
      labels: one name per root (default: the roots' basenames); must be distinct.
      normalize: ``"human"``, ``"none"`` or None (human when every env is an Atari game).
      reps: bootstrap replicates for the intervals.
      seed: bootstrap seed; every label's bootstrap starts from it.

    Returns:
      ``{"normalize", "reps", "seed", "envs", "labels": [...], "notes": [...], ["skipped"],
      "per_label": {label: {"root", "algorithms", "presets", "per_game": {env: {"seeds",
      "scores", "run_dirs", "mean", "std", "n", ["ci_lower", "ci_upper"] | ["hns_mean"]}},
      ["num_runs", "truncated", "summary" (of stats.summarize), "hns_matrix" [R][M],
      "profile"]}}, ["taus"]}``; the bracketed keys only for ``none`` | ``human``.

    Raises:
      AggregateError: for any bad input (see the module docstring).
    """
    if not roots:
        raise AggregateError("give at least one RUN_ROOT")
    if labels is None or len(labels) == 0:
        labels = [os.path.basename(os.path.normpath(os.path.abspath(r))) for r in roots]
    if len(labels) != len(roots):
        raise AggregateError(f"--label: got {len(labels)} labels for {len(roots)} run roots; give one per root")
    if len(set(labels)) != len(labels):
        raise AggregateError(f"--label: labels must be distinct; got {list(labels)} (name them with --label)")
    if normalize is not None and normalize not in NORMALIZE:
        raise AggregateError(f"--normalize: must be one of {NORMALIZE}; got {normalize!r}")
    if reps < 1:
        raise AggregateError(f"--reps: must be >= 1; got {reps}")

    loaded = {label: load_root(root, metric) for label, root in zip(labels, roots)}
    envs = sorted(loaded[labels[0]])
    for label in labels[1:]:
        other = sorted(loaded[label])
        if other != envs:
            missing = sorted(set(envs) - set(other))
            extra = sorted(set(other) - set(envs))
            raise AggregateError(
                f"games differ between labels {labels[0]!r} and {label!r}: "
                f"missing from {label!r}: {missing or 'none'}; only in {label!r}: {extra or 'none'}")

    if normalize is None:
        normalize = "human" if all_atari(envs) else "none"
    if normalize == "human":
        unknown = {}
        for env in envs:
            try:
                atari_scores.game_key(env)
            except ValueError as error:
                unknown[env] = str(error)
        if unknown:
            first = next(iter(unknown.values()))
            raise AggregateError(
                f"--normalize human: no human reference score for {sorted(unknown)} ({first}); "
                "use --normalize none for non-Atari environments")
        keys = [atari_scores.game_key(e) for e in envs]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise AggregateError(f"--normalize human: several env ids of the same game {dupes}: {envs}")

    result: Dict[str, Any] = {
        "normalize": normalize, "reps": int(reps), "seed": int(seed), "envs": envs, "metric": metric,
        "labels": list(labels), "notes": [], "per_label": {},
    }
    for label, root in zip(labels, roots):
        runs_by_env = loaded[label]
        entry: Dict[str, Any] = {
            "root": root,
            "algorithms": sorted({str(r.algorithm) for rs in runs_by_env.values() for r in rs}),
            "presets": sorted({str(r.preset) for rs in runs_by_env.values() for r in rs}),
            "per_game": {},
        }
        for env in envs:
            runs = runs_by_env[env]
            game = {"seeds": [r.seed for r in runs], "scores": [r.score for r in runs],
                    "run_dirs": [r.run_dir for r in runs], **_mean_std([r.score for r in runs])}
            if normalize == "none":
                ci = stats.stratified_bootstrap(
                    np.asarray(game["scores"])[:, None], stats.aggregate_mean, rng=seed, reps=reps)
                game["ci_lower"], game["ci_upper"] = float(ci.lower), float(ci.upper)
            else:
                game["hns_mean"] = float(np.mean(stats.human_normalized_score(env, game["scores"])))
            entry["per_game"][env] = game
        if normalize == "human":
            counts = {env: len(runs) for env, runs in runs_by_env.items()}
            kept = _truncate(runs_by_env)
            num_runs = min(counts.values())
            entry["num_runs"] = num_runs
            entry["truncated"] = len(set(counts.values())) > 1
            if entry["truncated"]:
                result["notes"].append(
                    f"{label}: seed counts differ between games ({_counts_text(counts)}); the aggregates "
                    f"use the {num_runs} lowest seeds of every game, the per-game table all runs.")
            scores_by_game = {env: [r.score for r in runs] for env, runs in kept.items()}
            entry["summary"] = stats.summarize(scores_by_game, rng=seed, reps=reps)
            entry["hns_matrix"] = stats.human_normalized_matrix(scores_by_game).scores.tolist()
        result["per_label"][label] = entry

    if normalize == "human":
        _add_profiles(result, reps=min(reps, PROFILE_REPS), seed=seed)
    else:
        result["skipped"] = (
            "--normalize none: no reference scores put the games on one scale, so the mean, "
            "median, IQM and optimality gap across games are not computed; per-game results only.")
    return result


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{env}: {n}" for env, n in counts.items())


def _add_profiles(result: Dict[str, Any], *, reps: int, seed: int) -> None:
    """Performance profiles (point and bootstrap band) on one τ grid shared by all labels."""
    pooled = np.concatenate([np.ravel(e["hns_matrix"]) for e in result["per_label"].values()])
    tau_max = float(min(8.0, max(1.0, np.percentile(pooled, 95) * 1.1)))
    taus = np.linspace(0.0, tau_max, 101)
    result["taus"] = taus.tolist()
    profile_fn = functools.partial(stats.performance_profile, taus=taus)
    for entry in result["per_label"].values():
        matrix = np.asarray(entry["hns_matrix"])
        band = stats.stratified_bootstrap(matrix, profile_fn, rng=seed, reps=reps)
        entry["profile"] = {"point": band.point.tolist(), "lower": band.lower.tolist(),
                            "upper": band.upper.tolist(), "reps": int(reps)}


# ----------------------------------------------------------------------------------------
# Markdown


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def to_markdown(result: Mapping[str, Any], command: str) -> str:
    """``PREFIX.md``: the producing command, aggregates (human) and per-game tables."""
    labels = result["labels"]
    per = result["per_label"]
    lines = [f"Produced by `{command}`.", ""]
    lines.append("| label | run root | algorithm | preset | games | runs |")
    lines.append("|---|---|---|---|---:|---:|")
    for label in labels:
        e = per[label]
        n_runs = sum(g["n"] for g in e["per_game"].values())
        lines.append(f"| {label} | `{e['root']}` | {', '.join(e['algorithms'])} | {', '.join(e['presets'])} "
                     f"| {len(e['per_game'])} | {n_runs} |")
    lines.append("")
    conf = "95%"
    if result["normalize"] == "human":
        lines.append(f"## Aggregate human-normalised scores ({conf} stratified-bootstrap CIs)")
        lines.append("")
        lines.append("| label | " + " | ".join(_METRIC_TITLES[m] for m in stats.METRIC_NAMES) + " |")
        lines.append("|---|" + "---:|" * len(stats.METRIC_NAMES))
        for label in labels:
            aggs = per[label]["summary"]["aggregates"]
            cells = [f"{aggs[m]['point']:.3f} [{aggs[m]['lower']:.3f}, {aggs[m]['upper']:.3f}]"
                     for m in stats.METRIC_NAMES]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        first = per[labels[0]]["summary"]
        lines.append(
            f"{len(result['envs'])} games; runs per game: "
            + ", ".join(f"{label} {per[label]['num_runs']}" for label in labels)
            + f". Percentile CIs from {first['reps']:,} stratified-bootstrap replicates "
            f"({first['backend']}); IQM = interquartile mean of all runs × games; optimality gap: "
            "lower is better (Agarwal et al. 2021, arXiv 2108.13264).")
        lines.append("")
    else:
        lines.append("## Aggregates")
        lines.append("")
        lines.append("Skipped: " + result["skipped"])
        lines.append("")
    for note in result["notes"]:
        lines.append(f"Note: {note}")
    if result["notes"]:
        lines.append("")

    what = "headline value" if result.get("metric", "headline") == "headline" else f"final {result['metric']}"
    lines.append(f"## Per game (raw scores: {what} of each run)")
    lines.append("")
    lines.append("| game | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---:|" * len(labels))
    for env in result["envs"]:
        cells = []
        for label in labels:
            g = per[label]["per_game"][env]
            cell = f"{_fmt(g['mean'])} ± {_fmt(g['std'])} (n={g['n']})"
            if "ci_lower" in g:
                cell += f" [{_fmt(g['ci_lower'])}, {_fmt(g['ci_upper'])}]"
            if "hns_mean" in g:
                cell += f"; HNS {g['hns_mean']:.3f}"
            cells.append(cell)
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    lines.append("")
    caption = "mean ± std over seeds (std with ddof=0), n seeds"
    if result["normalize"] == "none":
        caption += (f"; [{conf} CI of the mean from {result['reps']:,} bootstrap resamples of the seeds]")
    else:
        caption += "; HNS: mean human-normalised score (0 random, 1 human)"
    lines.append(caption + ".")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(labels: Sequence[str]) -> Dict[str, Any]:
    plt = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _grid(n: int):
    ncols = n if n <= 5 else math.ceil(math.sqrt(n))
    return math.ceil(n / ncols), ncols


def plot_human(result: Mapping[str, Any], path: str, *, title: str = "") -> str:
    """Performance profile with bootstrap bands | interval estimates of the four aggregates."""
    plt = _pyplot()
    labels = result["labels"]
    colors = _colors(labels)
    fig = plt.figure(figsize=(15, 3.6 + 0.25 * len(labels)), dpi=120, layout="constrained")
    grid = fig.add_gridspec(1, 5, width_ratios=[1.6, 1, 1, 1, 1])
    ax = fig.add_subplot(grid[0, 0])
    taus = np.asarray(result["taus"])
    for label in labels:
        prof = result["per_label"][label]["profile"]
        ax.plot(taus, prof["point"], color=colors[label], label=label, linewidth=2)
        ax.fill_between(taus, prof["lower"], prof["upper"], color=colors[label], alpha=0.2, linewidth=0)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("human-normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(taus[0], taus[-1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Performance profile", fontsize=10)
    for k, metric in enumerate(stats.METRIC_NAMES):
        ax = fig.add_subplot(grid[0, k + 1])
        for i, label in enumerate(labels):
            agg = result["per_label"][label]["summary"]["aggregates"][metric]
            y = len(labels) - 1 - i
            ax.barh(y, agg["upper"] - agg["lower"], left=agg["lower"], height=0.6,
                    color=colors[label], alpha=0.6)
            ax.plot([agg["point"]] * 2, [y - 0.3, y + 0.3], color="black", linewidth=1.5)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(list(reversed(labels)) if k == 0 else [""] * len(labels), fontsize=8)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_title(_METRIC_TITLES[metric] + (" (lower is better)" if metric == "optimality_gap" else ""),
                     fontsize=10)
        ax.margins(x=0.15)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("human-normalised score", fontsize=8)
    fig.suptitle(title or f"{len(result['envs'])} games, 95% stratified-bootstrap CIs", fontsize=11)
    return _save(fig, path)


def plot_per_game(result: Mapping[str, Any], path: str, *, title: str = "") -> str:
    """One panel per game: a bar per label (mean over seeds, bootstrap CI), seeds as dots."""
    plt = _pyplot()
    labels, envs = result["labels"], result["envs"]
    colors = _colors(labels)
    rows, cols = _grid(len(envs))
    width = max(2.6, 0.6 * len(labels) + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.0 * rows + 0.4), dpi=120, squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(envs):]:
        ax.set_visible(False)
    for ax, env in zip(axes.flat, envs):
        for i, label in enumerate(labels):
            g = result["per_label"][label]["per_game"][env]
            lo, hi = g.get("ci_lower", g["mean"]), g.get("ci_upper", g["mean"])
            ax.bar(i, g["mean"], color=colors[label], alpha=0.75, width=0.7,
                   yerr=[[g["mean"] - lo], [hi - g["mean"]]], capsize=4, label=label)
            jitter = np.linspace(-0.2, 0.2, len(g["scores"])) if len(g["scores"]) > 1 else [0.0]
            ax.scatter(i + np.asarray(jitter), g["scores"], s=12, facecolors="white", edgecolors="black",
                       linewidths=0.8, zorder=3)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30 if len(labels) > 2 else 0, ha="right" if len(labels) > 2 else "center",
                           fontsize=8)
        ax.set_title(env, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for r in range(rows):
        axes[r, 0].set_ylabel("mean return (95% CI)", fontsize=8)
    fig.suptitle(title or "Per-game score: mean over seeds, 95% bootstrap CI, dots = seeds", fontsize=11)
    return _save(fig, path)


def _curve(run_dirs: Sequence[str], x: str, y: str):
    """Mean and std over runs of ``y`` on the union of their ``x`` grids (each run interpolated
    within its own range, missing outside it); also the number of runs at each point."""
    series = []
    for d in run_dirs:
        recs = [r for r in metrics.read_jsonl(os.path.join(d, "metrics.jsonl"))
                if r.get(y) is not None and r.get(x) is not None]
        if recs:
            xs = np.asarray([r[x] for r in recs], np.float64)
            order = np.argsort(xs, kind="stable")
            series.append((xs[order], np.asarray([r[y] for r in recs], np.float64)[order]))
    if not series:
        return None
    grid = np.unique(np.concatenate([s[0] for s in series]))
    values = np.full((len(series), grid.size), np.nan)
    for k, (xs, ys) in enumerate(series):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        values[k, inside] = np.interp(grid[inside], xs, ys)
    count = np.sum(~np.isnan(values), axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
    return grid, mean, std, count


def plot_curves(result: Mapping[str, Any], path: str, *, title: str = "",
                x: str = "env_steps", y: str = "eval_return") -> str:
    """Learning curves, one panel per game, one line per label (mean over seeds ± std).

    Seeds are put on the union of their ``x`` grids (each interpolated within its own
    range, so runs logged at the same steps are averaged exactly); the legend gives the
    number of seeds of each label.
    """
    plt = _pyplot()
    from matplotlib.ticker import EngFormatter

    labels, envs = result["labels"], result["envs"]
    colors = _colors(labels)
    rows, cols = _grid(len(envs))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows + 0.7), dpi=130,
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(envs):]:
        ax.set_visible(False)
    handles: Dict[str, Any] = {}
    for ax, env in zip(axes.flat, envs):
        for label in labels:
            g = result["per_label"][label]["per_game"][env]
            curve = _curve(g["run_dirs"], x, y)
            if curve is None:
                continue
            grid, mean, std, _ = curve
            handles[label] = ax.plot(grid, mean, color=colors[label], linewidth=1.8)[0]
            ax.fill_between(grid, mean - std, mean + std, color=colors[label], alpha=0.2, linewidth=0)
        ax.set_title(env, fontsize=10)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for r in range(rows):
        axes[r, 0].set_ylabel(y.replace("_", " "), fontsize=9)
    for c in range(cols):
        column = [axes[r, c] for r in range(rows) if axes[r, c].get_visible()]
        if column:
            column[-1].set_xlabel(x.replace("_", " ").replace("env", "environment"), fontsize=9)
    if handles:
        seeds = {label: max(g["n"] for g in result["per_label"][label]["per_game"].values()) for label in handles}
        fig.legend(list(handles.values()), [f"{label} ({seeds[label]} seeds)" for label in handles],
                   loc="outside lower center", ncol=min(len(handles), 6), fontsize=9, frameon=False)
    fig.suptitle(title or f"{y.replace('_', ' ')}: mean over seeds, shaded ± std", fontsize=11)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    plt = _pyplot()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------
# CLI


def _json_result(result: Mapping[str, Any], command: str) -> Dict[str, Any]:
    return {"command": command, **result}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI; returns 0, bad input raises ``SystemExit(2)`` after one ``error:`` line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m core.aggregate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("roots", nargs="+", metavar="RUN_ROOT", help="one sweep directory per agent")
    parser.add_argument("--label", nargs="+", default=None, help="one name per RUN_ROOT (default: basenames)")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.md, PREFIX.png, PREFIX.json")
    parser.add_argument("--normalize", choices=NORMALIZE, default=None,
                        help="human (default when every env is an Atari game) or none")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap replicates (default 50000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--title", default="", help="figure title")
    parser.add_argument("--curves", action="store_true", help="also PREFIX_curves.png from metrics.jsonl")
    parser.add_argument("--metric", default="headline",
                        help="score of a run: its summary headline (default) or the last value of this "
                             "metrics.jsonl field, e.g. train_return")
    args = parser.parse_args(argv)
    command = "python -m core.aggregate " + shlex.join(argv)
    try:
        result = aggregate(args.roots, args.label, normalize=args.normalize, reps=args.reps, seed=args.seed,
                           metric=args.metric)
    except AggregateError as error:
        cli.fail(str(error))

    prefix = args.out
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write(to_markdown(result, command))
    cli.write_json(prefix + ".json", _json_result(result, command))
    if result["normalize"] == "human":
        plot_human(result, prefix + ".png", title=args.title)
    else:
        plot_per_game(result, prefix + ".png", title=args.title)
    written = [prefix + ".md", prefix + ".png", prefix + ".json"]
    if args.curves:
        written.append(plot_curves(result, prefix + "_curves.png", title=args.title))
    with open(prefix + ".md") as f:
        print(f.read(), end="")
    print("wrote " + ", ".join(written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
