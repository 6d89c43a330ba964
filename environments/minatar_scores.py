"""Reference returns of the five MinAtar games, for normalised scores across games.

Normalised score = (return − random policy) / (reference − random policy): 0 is the random
policy, 1 the reference agent. Both tables were measured in this repository on the gymnax
ports (``environments.make_jax``), so they fit the ``cpu`` presets of every paper directory.
"""
from __future__ import annotations

import numpy as np

GAMES = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar")
RANDOM = {"Asterix-MinAtar": 0.64, "Breakout-MinAtar": 0.36, "Freeway-MinAtar": 0.47, "Seaquest-MinAtar": 0.06,
          "SpaceInvaders-MinAtar": 4.04}
"""Random-policy returns, 100 episodes (algorithms/dqn/results/minatar_random.md)."""
REFERENCE = {"Asterix-MinAtar": 0.99, "Breakout-MinAtar": 6.27, "Freeway-MinAtar": 23.48,
             "Seaquest-MinAtar": 0.76, "SpaceInvaders-MinAtar": 21.18}
"""DrQ(ε) cpu preset, mean final return over 3 seeds at 50k steps (algorithms/dqn/results/minatar.json)."""


def normalized_score(env_id: str, returns) -> np.ndarray:
    """(return − random) / (reference − random) for one MinAtar game; KeyError names unknown games."""
    if env_id not in RANDOM:
        raise KeyError(f"no MinAtar reference returns for {env_id!r}; known: {sorted(RANDOM)}")
    return (np.asarray(returns, np.float64) - RANDOM[env_id]) / (REFERENCE[env_id] - RANDOM[env_id])


def aggregate(per_game, *, reps: int = 10_000, seed: int = 0) -> dict:
    """IQM and mean of normalised scores over games, with 95% stratified-bootstrap CIs.

    ``per_game`` maps each game to its per-seed final returns; every game is truncated to the
    smallest seed count (``runs``) so that the score matrix is rectangular ``[runs, games]``.
    Returns ``{"runs", "iqm": [point, lower, upper], "mean": [point, lower, upper]}``.
    """
    from core import stats

    games = list(per_game)
    runs = min(len(per_game[g]) for g in games)
    matrix = np.stack([normalized_score(g, list(per_game[g])[:runs]) for g in games], axis=1)  # [R, M]
    out = {"runs": runs}
    for name, fn in (("iqm", stats.aggregate_iqm), ("mean", stats.aggregate_mean)):
        ci = stats.stratified_bootstrap(matrix, fn, rng=seed, reps=reps)
        out[name] = [float(ci.point), float(ci.lower), float(ci.upper)]
    return out


def format_interval(interval) -> str:
    """``point [lower, upper]`` with three decimals."""
    point, lower, upper = interval
    return f"{point:.3f} [{lower:.3f}, {upper:.3f}]"


def comparison_tables(result: dict, labels, *, reps: int = 10_000, seed: int = 0):
    """The two markdown tables of a MinAtar comparison from a :func:`core.aggregate.aggregate` result.

    Returns ``(summary, lines)``: per label ``{"runs_per_game", "iqm", "mean"}``, and the lines of
    the aggregate table (IQM and mean with CIs, runs per game) followed by the per-game table
    (final greedy return, mean ± std over seeds (n)).
    """
    envs = result["envs"]
    summary, rows = {}, []
    for label in labels:
        per_game = result["per_label"][label]["per_game"]
        scores = aggregate({env: per_game[env]["scores"] for env in envs}, reps=reps, seed=seed)
        summary[label] = {"runs_per_game": scores["runs"], "iqm": scores["iqm"], "mean": scores["mean"]}
        rows.append(f"| {label} | {format_interval(scores['iqm'])} | {format_interval(scores['mean'])} "
                    f"| {scores['runs']} |")
    lines = ["| agent | IQM | mean | runs per game |", "|---|---:|---:|---:|", *rows, "",
             "Per game: final greedy evaluation return (32 episodes), mean ± std over seeds (n).", "",
             "| game | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for env in envs:
        cells = []
        for label in labels:
            game = result["per_label"][label]["per_game"][env]
            cells.append(f"{game['mean']:.2f} ± {game['std']:.2f} ({game['n']})")
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    return summary, lines
