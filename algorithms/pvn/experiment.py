"""The PVN scaling study: four rooms (exact successor measure) and MinAtar (offline pretraining, online linear evaluation).

    python -m algorithms.pvn.experiment gridworld [--tasks 4 16 64] [--features 8 16 32] [--seeds 0 1 2]
    python -m algorithms.pvn.experiment minatar [--games ...] [--seeds 0 1 2] [--dry-run]
    python -m algorithms.pvn.experiment minatar-value [--game Breakout-MinAtar] [--conditions ...] [--no-pretrain]
    python -m algorithms.pvn.experiment report

``gridworld`` pretrains PVN encoders (random-network indicators, p = 0.05, γ = 0.9) on the
four-rooms transition table for every (tasks, features) pair, vmapped over seeds, and
measures the downstream linear value error of 200 random reward functions and the
principal angles between the features' span and the successor measure's top singular
subspace, against a frozen random encoder of the same architecture and the SVD oracle
(:mod:`algorithms.pvn.gridworld`). One JSON per condition under
``results/gridworld_runs/`` (a finished condition is skipped when rerun).

``minatar`` runs the MinAtar pipeline for every game and seed, each step skipped when
its output exists: collect the offline dataset (:mod:`algorithms.pvn.dataset`, behaviour
policies: uniform random and an ε-greedy DQN checkpoint trained here), pretrain PVN
encoders at every (tasks, features) condition (:mod:`algorithms.pvn.pretrain`), then
train the linear double-DQN head online on the frozen features
(:mod:`algorithms.pvn.train`), and the same head on a frozen random encoder of the same
size. ``report`` writes ``results/pvn_{gridworld,minatar}.{md,json,png}``.

``minatar-value`` is the cheap offline test of the same encoders (:mod:`algorithms.pvn.value_error`):
the held-out linear value error of the behaviour policy's Monte-Carlo returns on the
dataset's ε-greedy DQN streams and, separately, its uniform-random streams, for PVN
encoders (pretraining the missing ones with the study's arguments), frozen random
encoders (the PVN learner's initial encoder at each seed) and raw pixels; it writes
``results/pvn_minatar_value_<game>.{md,json,png}`` (and ``pvn_minatar_scaling_<game>.png``).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Optional, Sequence

import numpy as np

from core import cli

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GRID_TASKS = (4, 16, 64)
GRID_FEATURES = (8, 16, 32)
SEEDS = (0, 1, 2)
NUM_REWARDS = 200


# --------------------------------------------------------------------------- four rooms


def gridworld(args) -> int:
    import jax

    from algorithms.pvn import gridworld as gw

    mdp = gw.four_rooms()
    psi = np.linalg.inv(np.eye(len(mdp.cells)) - args.gamma * gw.uniform_policy_matrix(mdp.transitions))
    rewards = np.random.default_rng(12345).normal(size=(len(mdp.cells), NUM_REWARDS))
    runs = os.path.join(args.results, "gridworld_runs")
    os.makedirs(runs, exist_ok=True)
    conditions = [(t, d, "random_network") for t in args.tasks for d in args.features]
    conditions += [(t, d, "random_network") for t, d in args.extra_conditions if (t, d, "random_network") not in conditions]
    conditions += [(t, d, "hash") for t, d in args.hash_conditions]
    for tasks, features, indicator in conditions:
        path = os.path.join(runs, f"{indicator}_T{tasks}_D{features}.json")
        if os.path.exists(path):
            continue
        cfg = gw.StudyConfig(num_tasks=tasks, num_features=features, indicator=indicator, gamma=args.gamma,
                             num_updates=args.updates)
        start = time.perf_counter()
        phi, rphi, loss, rate = jax.block_until_ready(gw.pretrain_features(cfg, mdp, args.seeds))
        wall = time.perf_counter() - start
        per_seed = [{"seed": s, "pvn": gw.evaluate(np.asarray(phi[i]), psi, rewards),
                     "random": gw.evaluate(np.asarray(rphi[i]), psi, rewards),
                     "td_loss": float(loss[i]), "firing_rate": float(rate[i])} for i, s in enumerate(args.seeds)]
        cli.write_json(path, {"config": cfg._asdict(), "seeds": list(args.seeds), "wall_s": round(wall, 1),
                              "oracle_value_error": gw.oracle(psi, rewards, features), "runs": per_seed})
        print(f"T={tasks} D={features} {indicator}: {wall:.0f} s, value error PVN "
              f"{np.mean([r['pvn']['value_error'] for r in per_seed]):.3f} random "
              f"{np.mean([r['random']['value_error'] for r in per_seed]):.3f}", flush=True)
    return report_gridworld(args.results)


def _mean_std(values):
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std():.3f}"


def report_gridworld(results: str) -> int:
    runs = os.path.join(results, "gridworld_runs")
    if not os.path.isdir(runs):
        return 0
    records = [json.load(open(os.path.join(runs, f))) for f in sorted(os.listdir(runs)) if f.endswith(".json")]
    if not records:
        return 0
    records.sort(key=lambda r: (r["config"]["indicator"] != "random_network", r["config"]["num_features"],
                                r["config"]["num_tasks"]))
    lines = ["Produced by `python -m algorithms.pvn.experiment gridworld` (four rooms, 104 states, γ = "
             f"{records[0]['config']['gamma']}, {records[0]['config']['num_updates']} updates of batch "
             f"{records[0]['config']['batch_size']}, {NUM_REWARDS} random rewards r ~ N(0, I)). Value error: "
             "least-squares fit of V = (I − γP^unif)⁻¹ r by the features, as a fraction of the variance of V "
             "(lower is better). cos²: mean squared cosine of the principal angles between the features' span "
             "and the top-rank(Φ) left singular subspace of the successor measure (1 = the same span). "
             "Mean ± std over seeds.", "",
             "| indicator | tasks T | features D | value error PVN | value error random enc. | SVD oracle | "
             "cos² PVN | cos² random | rank PVN | TD loss | firing rate | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c, rs = r["config"], r["runs"]
        lines.append(
            f"| {c['indicator']} | {c['num_tasks']} | {c['num_features']} | "
            f"{_mean_std([x['pvn']['value_error'] for x in rs])} | {_mean_std([x['random']['value_error'] for x in rs])} | "
            f"{r['oracle_value_error']:.3f} | {_mean_std([x['pvn']['mean_cos2'] for x in rs])} | "
            f"{_mean_std([x['random']['mean_cos2'] for x in rs])} | "
            f"{np.mean([x['pvn']['rank'] for x in rs]):.1f} | {np.mean([x['td_loss'] for x in rs]):.4f} | "
            f"{np.mean([x['firing_rate'] for x in rs]):.3f} | {r['wall_s']} |")
    prefix = os.path.join(results, "pvn_gridworld")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", records)
    _plot_gridworld(records, prefix + ".png")
    print("\n".join(lines))
    return 0


def _plot_gridworld(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rn = [r for r in records if r["config"]["indicator"] == "random_network"]
    widths = sorted({r["config"]["num_features"] for r in rn})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=130, layout="constrained")
    for d in widths:
        rows = sorted((r for r in rn if r["config"]["num_features"] == d), key=lambda r: r["config"]["num_tasks"])
        tasks = [r["config"]["num_tasks"] for r in rows]
        for ax, key in zip(axes, ("value_error", "mean_cos2")):
            m = [np.mean([x["pvn"][key] for x in r["runs"]]) for r in rows]
            s = [np.std([x["pvn"][key] for x in r["runs"]]) for r in rows]
            line = ax.errorbar(tasks, m, yerr=s, marker="o", capsize=2, label=f"PVN D={d}")
            rnd = np.mean([x["random"][key] for r in rows for x in r["runs"]])
            ax.axhline(rnd, color=line[0].get_color(), ls=":", lw=1)
            if key == "value_error":
                ax.axhline(rows[0]["oracle_value_error"], color=line[0].get_color(), ls="--", lw=0.8)
    axes[0].set_ylabel("linear value error (fraction of variance)")
    axes[1].set_ylabel("mean cos² of principal angles")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("number of tasks T")
        ax.grid(alpha=0.3)
    axes[0].set_title("dotted: random encoder, dashed: SVD oracle", fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Four rooms: PVN features vs tasks and width (mean ± std over seeds)", fontsize=10)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- entry point


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.pvn.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gridworld", help="the four-rooms scaling study (in process, vmapped over seeds)")
    g.add_argument("--tasks", nargs="+", type=int, default=list(GRID_TASKS))
    g.add_argument("--features", nargs="+", type=int, default=list(GRID_FEATURES))
    g.add_argument("--hash-conditions", nargs="*", default=["16x16"],
                   help="TxD pairs also run with hash indicators")
    g.add_argument("--extra-conditions", nargs="*", default=["16x64", "64x64"],
                   help="further TxD pairs with random-network indicators (width and tasks scaled together)")
    g.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    g.add_argument("--updates", type=int, default=4000)
    g.add_argument("--gamma", type=float, default=0.9)
    g.add_argument("--results", default=RESULTS)
    m = sub.add_parser("minatar", help="datasets, pretraining, linear evaluation (resumable)")
    m.add_argument("--games", nargs="+", default=list(MINATAR_GAMES))
    m.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    m.add_argument("--results", default=RESULTS)
    m.add_argument("--runs", default="runs/pvn_minatar", help="datasets, checkpoints and run dirs (not committed)")
    m.add_argument("--dry-run", action="store_true")
    v = sub.add_parser("minatar-value", help="offline linear value error of frozen encoders (pretrains what is missing)")
    v.add_argument("--game", default="Breakout-MinAtar")
    v.add_argument("--conditions", nargs="+", default=list(VALUE_ENCODERS),
                   help=f"encoders to evaluate (raw pixels always): {list(VALUE_ENCODERS)}")
    v.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    v.add_argument("--gamma", type=float, default=VALUE_GAMMA)
    v.add_argument("--no-pretrain", action="store_true", help="evaluate only the encoders already pretrained")
    v.add_argument("--results", default=RESULTS)
    v.add_argument("--runs", default="runs/pvn_minatar", help="datasets and pretraining runs (not committed)")
    v.add_argument("--dry-run", action="store_true")
    r = sub.add_parser("report", help="tables and figures from what has finished")
    r.add_argument("--results", default=RESULTS)
    r.add_argument("--runs", default="runs/pvn_minatar")
    args = parser.parse_args(argv)
    if args.command == "gridworld":
        try:
            args.hash_conditions = [tuple(int(v) for v in s.split("x")) for s in args.hash_conditions]
            args.extra_conditions = [tuple(int(v) for v in s.split("x")) for s in args.extra_conditions]
        except ValueError:
            cli.fail(f"--hash-conditions/--extra-conditions: expected TxD pairs such as 16x16, got "
                     f"{args.hash_conditions} / {args.extra_conditions}")
        return gridworld(args)
    if args.command == "minatar":
        return minatar(args)
    if args.command == "minatar-value":
        return minatar_value(args)
    report_gridworld(args.results)
    for name in sorted(os.listdir(args.results)):
        if re.fullmatch(r"pvn_minatar_value_\w+\.json", name):
            with open(os.path.join(args.results, name)) as f:
                report_minatar_value(args.results, json.load(f))
    return report_minatar(args)


MINATAR_GAMES = ("Breakout-MinAtar", "SpaceInvaders-MinAtar")
MINATAR_CONDITIONS = {"random encoder": None, "PVN T=100": 100, "PVN T=10": 10}
"""label -> number of indicator tasks of the pretrained encoder (None: frozen random encoder); D = 256 throughout."""
DATASET_ARGS = ("cpu", "--behaviour", "mixed", "--epsilon", "0.1", "--total-steps", "48000", "--num-envs", "16",
                "--no-progress")
DQN_ARGS = ("cpu", "--total-steps", "30000", "--eval-every", "10000", "--checkpoint-every", "10000", "--no-progress")
PRETRAIN_ARGS = ("cpu", "--num-updates", "2000", "--batch-size", "64", "--warmup-updates", "250", "--log-every", "250",
                 "--checkpoint-every", "1000", "--no-progress")
LINEAR_ARGS = ("cpu", "--total-steps", "20000", "--eval-every", "10000", "--checkpoint-every", "10000",
               "--log-every", "5000", "--no-progress")
MAIN_COMPARISON = ("random encoder", "PVN T=100")
"""Run first at every seed (then the other conditions), so that a study stopped early holds the main comparison."""


def _label_dir(label: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", label.lower().replace(" ", "_"))


def _run(command, log_path, dry_run) -> bool:
    """Runs one step as its own process (log to ``log_path``); returns whether it succeeded."""
    print(("[dry-run] " if dry_run else "") + shlex.join(command), flush=True)
    if dry_run:
        return True
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    print(f"  -> exit {code} in {time.perf_counter() - start:.0f} s (log {log_path})", flush=True)
    return code == 0


def _ensure_dataset(runs: str, game: str, dry_run: bool) -> int:
    """Trains the DQN behaviour policy and collects the offline dataset of ``game`` unless they exist; failures."""
    py, failed = sys.executable, 0
    dqn_dir = os.path.join(runs, "dqn_behaviour", game)
    if not os.path.exists(os.path.join(dqn_dir, "summary.json")):
        failed += not _run([py, "-m", "algorithms.dqn.train", *DQN_ARGS, "--env-id", game, "--out-dir", dqn_dir],
                           dqn_dir + ".log", dry_run)
    data_dir = os.path.join(runs, "data", game)
    if not os.path.exists(os.path.join(data_dir, "summary.json")):
        failed += not _run([py, "-m", "algorithms.pvn.dataset", *DATASET_ARGS, "--env-id", game, "--dqn-dir",
                            dqn_dir, "--out-dir", data_dir], data_dir + ".log", dry_run)
    return failed


def minatar(args) -> int:
    """The main comparison at every seed and game first, then the other conditions (each seed-major)."""
    py = sys.executable
    failed = 0
    runs_dir = os.path.join(args.results, "minatar_runs")
    for game in args.games:
        failed += _ensure_dataset(args.runs, game, args.dry_run)
    groups = (MAIN_COMPARISON, tuple(label for label in MINATAR_CONDITIONS if label not in MAIN_COMPARISON))
    order = [(seed, game, label) for group in groups for seed in args.seeds for game in args.games for label in group]
    for seed, game, label in order:
        tasks = MINATAR_CONDITIONS[label]
        data_dir = os.path.join(args.runs, "data", game)
        out = os.path.join(runs_dir, _label_dir(label), game, f"seed{seed}")
        if os.path.exists(os.path.join(out, "summary.json")):
            continue
        extra = ["--encoder", "random"]
        if tasks is not None:
            pre = os.path.join(args.runs, "pretrain", _label_dir(label), game, f"seed{seed}")
            if not os.path.exists(os.path.join(pre, "summary.json")) and not _run(
                    [py, "-m", "algorithms.pvn.pretrain", *PRETRAIN_ARGS, "--dataset-dir", data_dir,
                     "--num-tasks", str(tasks), "--seed", str(seed), "--out-dir", pre], pre + ".log", args.dry_run):
                failed += 1
                continue
            if not args.dry_run:  # the pretraining summary travels with the committed results
                os.makedirs(out, exist_ok=True)
                with open(os.path.join(pre, "summary.json")) as f:
                    cli.write_json(os.path.join(out, "pretrain_summary.json"), json.load(f))
            extra = ["--encoder", "pvn", "--pretrained-dir", pre]
        failed += not _run([py, "-m", "algorithms.pvn.train", *LINEAR_ARGS, "--env-id", game, "--seed",
                            str(seed), "--out-dir", out, *extra], out + ".log", args.dry_run)
    if not args.dry_run:
        report_minatar(args)
    return 1 if failed else 0


def report_minatar(args) -> int:
    runs_dir = os.path.join(args.results, "minatar_runs")
    table = {}
    for label in MINATAR_CONDITIONS:
        for game in MINATAR_GAMES:
            root = os.path.join(runs_dir, _label_dir(label), game)
            if not os.path.isdir(root):
                continue
            for seed_dir in sorted(os.listdir(root)):
                path = os.path.join(root, seed_dir, "summary.json")
                if os.path.exists(path):
                    with open(path) as f:
                        summary = json.load(f)
                    pre_path = os.path.join(root, seed_dir, "pretrain_summary.json")
                    pre = json.load(open(pre_path)) if os.path.exists(pre_path) else {}
                    table.setdefault(game, {}).setdefault(label, []).append(
                        {"seed": summary["seed"], "eval_return": summary["headline"]["value"],
                         "wall_s": summary["wall_s"], "pretrain_td_loss": pre.get("headline", {}).get("value"),
                         "pretrain_wall_s": pre.get("wall_s")})
    if not table:
        return 0
    from environments import minatar_scores

    lines = ["Produced by `python -m algorithms.pvn.experiment minatar` then `report`. Offline datasets of "
             "48k time steps per game (16 streams: 8 uniform-random, 8 ε-greedy (ε = 0.1) DQN after 30k steps of "
             "`algorithms.dqn.train cpu`); PVN pretraining 2,000 updates of batch 64 (MinAtar CNN + 256 features, "
             "random-network indicators p = 0.01, lr 1e-3, γ 0.99, EMA 0.99, 250 warm-up updates); linear "
             "double-DQN head trained online for 20k steps on the frozen features; greedy evaluation return over "
             "32 episodes at the end, mean ± std over seeds (n).", "",
             "| game | " + " | ".join(MINATAR_CONDITIONS) + " | random policy |",
             "|---|" + "---|" * (len(MINATAR_CONDITIONS) + 1)]
    for game, per in table.items():
        cells = []
        for label in MINATAR_CONDITIONS:
            vals = [r["eval_return"] for r in per.get(label, []) if r["eval_return"] is not None]
            cells.append(f"{np.mean(vals):.2f} ± {np.std(vals):.2f} ({len(vals)})" if vals else "–")
        lines.append(f"| {game} | " + " | ".join(cells) + f" | {minatar_scores.RANDOM.get(game, float('nan')):.2f} |")
    prefix = os.path.join(args.results, "pvn_minatar")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", table)
    _plot_minatar(table, prefix + ".png")
    print("\n".join(lines))
    return 0


def _plot_minatar(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = list(table)
    labels = list(MINATAR_CONDITIONS)
    fig, ax = plt.subplots(figsize=(6.5, 3.3), dpi=130, layout="constrained")
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        vals = [[r["eval_return"] for r in table[g].get(label, []) if r["eval_return"] is not None] for g in games]
        x = np.arange(len(games)) + (i - (len(labels) - 1) / 2) * width
        ax.bar(x, [np.mean(v) if v else 0 for v in vals], width, yerr=[np.std(v) if v else 0 for v in vals],
               capsize=2, label=label)
    ax.set_xticks(np.arange(len(games)), [g.replace("-MinAtar", "") for g in games])
    ax.set_ylabel("greedy return after 20k steps")
    ax.set_title("Linear evaluation on frozen features (mean ± std over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- MinAtar: offline linear value error

VALUE_ENCODERS = {
    "random encoder": (None, 256, None),
    "PVN T=10": (10, 256, 2_000),
    "PVN T=100": (100, 256, 2_000),
    "PVN T=100, 20k updates": (100, 256, 20_000),
    "random encoder D=64": (None, 64, None),
    "PVN T=100 D=64": (100, 64, 2_000),
    "PVN T=10, 20k updates": (10, 256, 20_000),
    "PVN T=1000, 20k updates": (1000, 256, 20_000),
    "PVN T=10 D=64, 20k updates": (10, 64, 20_000),
    "PVN T=100 D=64, 20k updates": (100, 64, 20_000),
    "PVN T=1000 D=64, 20k updates": (1000, 64, 20_000),
}
"""label -> (indicator tasks of the pretrained encoder, None for the frozen random encoder; features D;
pretraining updates, otherwise as ``PRETRAIN_ARGS``)."""
RAW_PIXELS = "raw pixels"
VALUE_GAMMA = 0.99
VALUE_FOLDS = 5
VALUE_SPLIT_SEED = 0


def load_rows(dataset_dir: str) -> dict:
    """Every row of a dataset as ``[T, B, ...]`` numpy arrays (checksums verified first); MinAtar-sized sets only."""
    from core import transition_dataset as td

    dataset = td.TransitionDataset(dataset_dir)  # raises DatasetError naming the bad file
    with open(os.path.join(dataset_dir, td.MANIFEST)) as f:
        chunks = json.load(f)["chunks"]
    rows = {name: np.concatenate([np.load(os.path.join(dataset_dir, c["files"][name]["path"])) for c in chunks])
            for name in dataset.fields}
    rows["metadata"] = dataset.metadata
    return rows


@functools.lru_cache(maxsize=None)
def _encoder_apply(encoder_cfg):
    """The jitted ``apply(params, obs)`` of one encoder architecture (one per config, so that jit's cache is reused)."""
    import haiku as hk
    import jax

    from algorithms.pvn import networks

    return jax.jit(hk.without_apply_rng(hk.transform(lambda o: networks.Encoder(encoder_cfg)(o))).apply)


def encoder_features(encoder_cfg, params, observations: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    """φ(x) ``[N, D]`` float32 of the frozen encoder for ``[N, *O]`` observations (float32, as pretraining sees them)."""
    apply = _encoder_apply(encoder_cfg._replace(hidden_sizes=tuple(encoder_cfg.hidden_sizes)))
    out = [np.asarray(apply(params, observations[i:i + batch_size].astype(np.float32)))
           for i in range(0, len(observations), batch_size)]
    return np.concatenate(out)


def random_encoder_params(encoder_cfg, *, seed: int, num_actions: int, example: np.ndarray):
    """The encoder the PVN learner starts from at ``seed`` (``learner.init(PRNGKey(seed))``): a frozen random encoder."""
    import jax

    from algorithms.pvn import networks

    # as learner_lib.make_learner's init(key): the PVN network gets the first half of split(key)
    k_net, _ = jax.random.split(jax.random.PRNGKey(seed))
    net = networks.make_pvn_network(encoder_cfg, num_actions=num_actions, num_tasks=1)
    return networks.encoder_params(jax.jit(net.init)(k_net, example))


MAX_SM_STATES = 6_000
"""Above this many distinct observations the Ψ̂ metrics are skipped (dense [n, n] inverse and SVDs)."""


def successor_measure_study(rows: dict, *, gamma: float, num_rewards: int = NUM_REWARDS):
    """The dataset's empirical successor measure Ψ̂ and the four-rooms protocol's random rewards on its states.

    States are the dataset's distinct observations (MinAtar: a few thousand); Ψ̂ is the
    uniform policy's successor measure of the empirical MDP of all streams
    (:func:`value_error.empirical_successor_measure`), the fixed point PVN's TD rule reaches on
    this data. Returns ``(sm, observations [n, *O] of Ψ̂'s states, rewards [n, num_rewards] ~ N(0, I),
    Ψ̂'s left singular vectors [n, n])`` (computed once for every encoder's metrics),
    or None when the dataset has more than ``MAX_SM_STATES`` distinct observations.
    """
    from algorithms.pvn import value_error as ve

    observation = rows["observation"]
    num_rows, num_streams = observation.shape[:2]
    flat = observation.reshape(num_rows * num_streams, -1)
    _, first_row, state = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    if first_row.size > MAX_SM_STATES:
        print(f"{first_row.size} distinct observations > {MAX_SM_STATES}: no Ψ̂ (a dense inverse)", flush=True)
        return None
    state = state.reshape(num_rows, num_streams)
    sm = ve.empirical_successor_measure(state, rows["action"], rows["discount"], rows["step_type"],
                                        num_actions=int(rows["metadata"]["num_actions"]), gamma=gamma)
    observations = observation.reshape(num_rows * num_streams, *observation.shape[2:])[first_row[sm.states]]
    rewards = np.random.default_rng(12345).normal(size=(sm.states.size, num_rewards))
    return sm, observations, rewards, np.linalg.svd(sm.psi)[0]


def _successor_measure_metrics(features: np.ndarray, study) -> dict:
    """The four-rooms metrics (:func:`gridworld.evaluate`) of features on Ψ̂'s states."""
    from algorithms.pvn import gridworld as gw

    if study is None:
        return {}
    sm, _, rewards, psi_left = study
    out = gw.evaluate(np.asarray(features, np.float64), sm.psi, rewards, psi_left=psi_left)
    out["oracle"] = gw.oracle(sm.psi, rewards, min(out["rank"], sm.psi.shape[0]), psi_left=psi_left)
    return out


def _value_errors(features: np.ndarray, parts: dict) -> dict:
    """Cross-validated value error of ``features`` on every row subset."""
    from algorithms.pvn import value_error as ve

    out = {"active_features": int(np.sum(features.std(0) > 0)), "num_features": int(features.shape[1])}
    for name, part in parts.items():
        res = ve.cross_validated_value_error(features[part["rows"]], part["returns"], part["episodes"],
                                             num_folds=VALUE_FOLDS, seed=VALUE_SPLIT_SEED)
        out[name] = {"value_error": res.value_error, "fold_errors": res.fold_errors.tolist(),
                     "ridges": res.ridges.tolist(), "train_error": res.train_error}
    return out


def minatar_value(args) -> int:
    """Offline linear value error of frozen encoders on a MinAtar dataset (pretraining what is missing first)."""
    from algorithms.pvn import value_error as ve

    labels = args.conditions
    unknown = [label for label in labels if label not in VALUE_ENCODERS]
    if unknown:
        cli.fail(f"--conditions: unknown {unknown}; choose from {list(VALUE_ENCODERS)}")
    game, py, failed = args.game, sys.executable, 0
    failed += _ensure_dataset(args.runs, game, args.dry_run)
    data_dir = os.path.join(args.runs, "data", game)
    pre_dirs = {}
    for label in labels:
        tasks, features, updates = VALUE_ENCODERS[label]
        if tasks is None:
            continue
        pretrain_args = list(PRETRAIN_ARGS)
        pretrain_args[pretrain_args.index("--num-updates") + 1] = str(updates)
        for seed in args.seeds:
            pre = os.path.join(args.runs, "pretrain", _label_dir(label), game, f"seed{seed}")
            pre_dirs[label, seed] = pre
            if not os.path.exists(os.path.join(pre, "summary.json")) and not args.no_pretrain:
                failed += not _run([py, "-m", "algorithms.pvn.pretrain", *pretrain_args, "--dataset-dir", data_dir,
                                    "--num-tasks", str(tasks), "--num-features", str(features), "--seed", str(seed),
                                    "--out-dir", pre], pre + ".log", args.dry_run)
    if args.dry_run:
        return 1 if failed else 0
    from algorithms.pvn import networks
    from algorithms.pvn.pretrain import load_encoder

    start = time.perf_counter()
    rows = load_rows(data_dir)
    meta = rows["metadata"]
    mc = ve.monte_carlo_returns(rows["reward"], rows["discount"], rows["step_type"], gamma=args.gamma)
    episodes = ve.episode_ids(rows["step_type"])
    dqn_streams = np.asarray(meta["dqn_streams"], bool)
    flat_valid = np.flatnonzero(mc.valid.reshape(-1))  # rows t·B + b with a known return
    observations = rows["observation"].reshape(-1, *rows["observation"].shape[2:])[flat_valid]
    stream = flat_valid % mc.valid.shape[1]
    parts = {}
    for name, mask in (("dqn_streams", dqn_streams[stream]), ("random_streams", ~dqn_streams[stream])):
        sel = np.flatnonzero(mask)
        g = mc.returns.reshape(-1)[flat_valid][sel]
        parts[name] = {"rows": sel, "returns": g, "episodes": episodes.reshape(-1)[flat_valid][sel]}
    study = successor_measure_study(rows, gamma=args.gamma)
    data_info = {name: {"rows": int(p["rows"].size), "episodes": int(np.unique(p["episodes"]).size),
                        "mean_return": float(p["returns"].mean()), "var_return": float(p["returns"].var())}
                 for name, p in parts.items()}
    if study is not None:
        sm = study[0]
        data_info["successor_measure"] = {"states": int(sm.states.size), "all_actions_seen": sm.all_actions_seen,
                                          "escaped": sm.escaped, "rewards": NUM_REWARDS}
    data_info["dropped_rows_unfinished"] = int((~mc.valid & (rows["step_type"] != ve.LAST)).sum())
    print(f"{game}: {data_info}", flush=True)
    records = {RAW_PIXELS: [{"seed": None, **_value_errors(observations.reshape(len(observations), -1)
                                                           .astype(np.float32), parts),
                             "successor_measure": _successor_measure_metrics(
                                 study and study[1].reshape(len(study[1]), -1).astype(np.float32), study)}]}
    for label in labels:
        tasks, features, _ = VALUE_ENCODERS[label]
        encoder_cfg = networks.EncoderConfig(num_features=features)
        for seed in args.seeds:
            t0 = time.perf_counter()
            extra = {}
            if tasks is None:
                params = random_encoder_params(encoder_cfg, seed=seed, num_actions=int(meta["num_actions"]),
                                               example=observations[:1].astype(np.float32))
            else:
                pre = pre_dirs[label, seed]
                if not os.path.exists(os.path.join(pre, "summary.json")):
                    print(f"  {label} seed {seed}: no finished pretraining in {pre}; skipped", flush=True)
                    continue
                params, pre_cfg, _ = load_encoder(pre)
                encoder_cfg = pre_cfg.encoder
                with open(os.path.join(pre, "summary.json")) as f:
                    pre_summary = json.load(f)
                extra = {"pretrain_td_loss": pre_summary["headline"]["value"], "pretrain_wall_s": pre_summary["wall_s"],
                         "pretrain_updates": pre_summary.get("updates")}
            phi = encoder_features(encoder_cfg, params, observations)
            record = {"seed": seed, **_value_errors(phi, parts),
                      "successor_measure": _successor_measure_metrics(
                          study and encoder_features(encoder_cfg, params, study[1]), study),
                      **extra, "eval_s": round(time.perf_counter() - t0, 1)}
            records.setdefault(label, []).append(record)
            print(f"  {label} seed {seed}: value error DQN streams {record['dqn_streams']['value_error']:.3f}, "
                  f"random streams {record['random_streams']['value_error']:.3f}, "
                  f"Ψ̂ random rewards {record['successor_measure'].get('value_error', float('nan')):.3f} "
                  f"(cos² {record['successor_measure'].get('mean_cos2', float('nan')):.3f}), "
                  f"{record['active_features']}/{record['num_features']} active features "
                  f"({record['eval_s']} s)", flush=True)
    result = {"game": game, "dataset_dir": data_dir, "gamma": args.gamma, "folds": VALUE_FOLDS,
              "split_seed": VALUE_SPLIT_SEED, "ridges": list(ve.DEFAULT_RIDGES), "data": data_info,
              "conditions": records, "wall_s": round(time.perf_counter() - start, 1)}
    report_minatar_value(args.results, result)
    return 1 if failed else 0


def _game_slug(game: str) -> str:
    return _label_dir(game.replace("-MinAtar", ""))


def report_minatar_value(results: str, result: dict) -> None:
    prefix = os.path.join(results, f"pvn_minatar_value_{_game_slug(result['game'])}")
    os.makedirs(results, exist_ok=True)
    cli.write_json(prefix + ".json", result)
    d = result["data"]
    lines = [f"Produced by `python -m algorithms.pvn.experiment minatar-value` on {result['game']} "
             f"(dataset `{result['dataset_dir']}`). Target: the behaviour policy's discounted Monte-Carlo return "
             f"G_t (γ = {result['gamma']}) of every non-terminal row whose episode terminated within the data "
             f"({d['dropped_rows_unfinished']} rows of episodes still running at the end of a stream dropped). "
             f"Ridge regression of G_t on the frozen features (centred, divided by the RMS feature std, unpenalised bias), {result['folds']}-fold "
             f"over episodes: λ ∈ {{{', '.join(f'{r:g}' for r in result['ridges'])}}} chosen on a validation fold, "
             "refit on train + validation, error on the held-out fold = MSE / Var(G) = 1 − R², averaged over folds "
             "(0: G is a linear function of φ; 1: no better than a constant). Mean ± std over encoder seeds (n). "
             f"ε-greedy DQN streams: {d['dqn_streams']['rows']} rows, {d['dqn_streams']['episodes']} episodes, "
             f"Var(G) = {d['dqn_streams']['var_return']:.3f}; uniform-random streams: {d['random_streams']['rows']} "
             f"rows, {d['random_streams']['episodes']} episodes, Var(G) = {d['random_streams']['var_return']:.3f}.",
             ""]
    sm = d.get("successor_measure")
    if sm:
        lines += [f"Ψ̂ columns: the uniform policy's successor measure of the dataset's empirical MDP over its "
                  f"{sm['states']} distinct observations with a transition out (all streams; every action seen at "
                  f"{sm['all_actions_seen']:.0%} of them, elsewhere the mean over the actions seen; "
                  f"{sm['escaped']:.1%} of the mass escapes to unseen states), the four-rooms protocol on it: "
                  f"least-squares value error of V = Ψ̂ r for {sm['rewards']} random rewards r ~ N(0, I) over those "
                  "states (fraction of Var V left), mean cos² of the principal angles between span φ and Ψ̂'s "
                  "top-rank(φ) left singular subspace, and the SVD oracle (Ψ̂'s own top-rank(φ) singular vectors).",
                  ""]
    lines += ["| features | D | value error, ε-greedy DQN streams | value error, random streams | "
              "train error (DQN) | Ψ̂ value error | cos² to Ψ̂ | SVD oracle | active features | n |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, recs in result["conditions"].items():
        def cell(part, key="value_error"):
            vals = [r[part][key] for r in recs if key in r.get(part, {})]
            if not vals:
                return "–"
            return f"{np.mean(vals):.3f}" if len(vals) == 1 else f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"
        lines.append(f"| {label} | {recs[0]['num_features']} | {cell('dqn_streams')} | {cell('random_streams')} | "
                     f"{cell('dqn_streams', 'train_error')} | {cell('successor_measure')} | "
                     f"{cell('successor_measure', 'mean_cos2')} | {cell('successor_measure', 'oracle')} | "
                     f"{np.mean([r['active_features'] for r in recs]):.0f} | {len(recs)} |")
    lines.append("")
    lines.append(f"Wall-clock of the evaluation (features + ridge for every row above): {result['wall_s']} s.")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    _plot_minatar_value(result, prefix + ".png")
    _plot_minatar_scaling(result, os.path.join(results, f"pvn_minatar_scaling_{_game_slug(result['game'])}.png"))
    print("\n".join(lines))


def _plot_minatar_scaling(result, path):
    """Tasks × width at 20k pretraining updates: the three errors against T, one line per D, random encoders dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = result["conditions"]
    grid = {label: VALUE_ENCODERS[label] for label in conditions
            if label in VALUE_ENCODERS and VALUE_ENCODERS[label][2] == 20_000}
    if len({tasks for tasks, _, _ in grid.values()}) < 2:
        return  # no curve to draw
    panels = (("successor_measure", "value_error", "value error of V = Ψ r, empirical Ψ (200 random r)"),
              ("successor_measure", "mean_cos2", "cos² between span φ and empirical Ψ's top subspace"),
              ("dqn_streams", "value_error", "held-out return error, ε-greedy DQN streams"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=130, layout="constrained")
    for ax, (part, key, title) in zip(axes, panels):
        for i, width in enumerate(sorted({d for _, d, _ in grid.values()})):
            points = sorted((t, [r[part][key] for r in conditions[label] if key in r.get(part, {})])
                            for label, (t, d, _) in grid.items() if d == width)
            points = [(t, v) for t, v in points if v]
            if points:
                ax.errorbar([t for t, _ in points], [np.mean(v) for _, v in points],
                            yerr=[np.std(v) for _, v in points], marker="o", capsize=3, color=f"C{i}",
                            label=f"PVN D={width}")
            random_label = "random encoder" if width == 256 else f"random encoder D={width}"
            vals = [r[part][key] for r in conditions.get(random_label, []) if key in r.get(part, {})]
            if vals:
                ax.axhline(np.mean(vals), color=f"C{i}", ls="--", lw=1, label=f"random encoder D={width}")
        ax.set_xscale("log")
        ax.set_xlabel("indicator tasks T")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['game']}: PVN after 20k pretraining updates, tasks × width (mean ± std over seeds)",
                 fontsize=10)
    fig.savefig(path)
    plt.close(fig)


def _plot_minatar_value(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label in result["conditions"] if label != RAW_PIXELS]
    parts = (("dqn_streams", "ε-greedy DQN streams"), ("random_streams", "uniform-random streams"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=130, layout="constrained", sharey=True)
    for ax, (part, title) in zip(axes, parts):
        for i, label in enumerate(labels):
            vals = [r[part]["value_error"] for r in result["conditions"][label]]
            ax.bar(i, np.mean(vals), yerr=np.std(vals), capsize=3, color=f"C{0 if 'random' in label else 1}")
            ax.plot(np.full(len(vals), i), vals, "k.", ms=3)
        if RAW_PIXELS in result["conditions"]:
            ax.axhline(result["conditions"][RAW_PIXELS][0][part]["value_error"], color="k", ls="--", lw=1,
                       label="raw pixels")
        ax.set_xticks(range(len(labels)), [label.replace("random encoder", "random").replace(", ", "\n")
                                           for label in labels], rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("held-out value error (1 − R²)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['game']}: linear value error of frozen features (mean ± std over seeds, dots: seeds)",
                 fontsize=10)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
