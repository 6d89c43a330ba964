"""Qsarsa-AC, Qsarsa-AC2, TD3, TD3+BC and BC on the D4RL-style datasets made here, 3 seeds.

    python -m algorithms.offline_qreg.experiment run [--envs Hopper-v4 HalfCheetah-v4] [--kinds medium medium-replay]
    python -m algorithms.offline_qreg.experiment report

``run`` trains, per dataset, every algorithm × seed *in one jitted program* (the algorithms
are weightings of the same loss terms, :class:`.train.LossWeights`, so the 15 learners are
``vmap``'d members; Q_sarsa is fitted once per seed and shared by the two Qsarsa members of
that seed). This is what makes the grid fit one CPU core: one compile per dataset instead of
15, and batched matrix products. Keys, data split, losses and hyperparameters are those of
``python -m algorithms.offline_qreg.train <preset> --algorithm A --seed S``. Evaluation:
``--eval-episodes`` deterministic episodes per member in one envpool batch. Each member
writes ``<out_root>/<kind>/<algorithm>/<env>/seed<S>/`` with ``config.json``,
``metrics.jsonl``/``.csv`` and ``summary.json`` (the CLI contract's files; no checkpoints:
a dataset whose members all have ``summary.json`` is skipped, so rerunning after a kill
redoes only the unfinished datasets).

``report`` writes ``results/offline_qreg.{md,json,png}``: final D4RL-normalised score per
dataset and algorithm (mean ± std over seeds), learning curves, the critics' Q(s, π(s))
(collapse shows as divergence), and Q_sarsa vs held-out Monte-Carlo returns.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from typing import List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from core import cli, metrics
from environments import d4rl_style
from environments.envpool_env import make

from algorithms.offline_qreg import train

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
ENVS = ("Hopper-v4", "HalfCheetah-v4")
KINDS = ("medium", "medium-replay")
SEEDS = (0, 1, 2)
COLUMNS = ["grad_steps", "eval_return", "eval_normalized", "critic_loss", "actor_loss", "q_mean", "q_pi", "reg",
           "sps", "wall_s"]


def member_dir(out_root: str, kind: str, algorithm: str, env_id: str, seed: int) -> str:
    return os.path.join(out_root, kind, algorithm, env_id.replace("/", "_"), f"seed{seed}")


def evaluate_members(actor, params, env_id: str, *, members: int, episodes: int, seed: int, mean, std) -> np.ndarray:
    """[M, E] undiscounted returns: every member's deterministic policy on its own E environments, one envpool batch."""
    with make(env_id, num_envs=members * episodes, seed=seed) as env:
        ts = env.reset()
        returns = np.zeros(members * episodes)
        done = np.zeros(members * episodes, bool)
        while not done.all():
            obs = (np.asarray(ts.observation, np.float32) - mean) / std
            act = np.asarray(actor(params, obs.reshape(members, episodes, -1))).reshape(members * episodes, -1)
            ts = env.step(act.astype(np.float64))
            returns += np.where(done, 0.0, ts.reward)
            done |= ts.step_type == 2
    return returns.reshape(members, episodes)


def run_dataset(cfg: train.Config, env_id: str, kind: str, algorithms: Sequence[str], seeds: Sequence[int],
                out_root: str, log=print) -> None:
    """Trains every (algorithm, seed) member on one dataset in one program; writes each member's run dir."""
    start = time.perf_counter()
    cfg = dataclasses.replace(cfg, env_id=env_id, dataset_kind=kind)
    dataset = d4rl_style.load(cfg.dataset_path, env_id=env_id)
    train_split, held = d4rl_style.split_episodes(dataset, holdout_fraction=cfg.holdout_fraction,
                                                  seed=train.HOLDOUT_SEED)
    obs_dim, act_dim = dataset.observations.shape[1], dataset.actions.shape[1]
    mean, std = train_split.observations.mean(0), train_split.observations.std(0) + 1e-3
    if not cfg.normalize_observations:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    data = train.to_data(train_split, mean, std)
    net, q_net, init, run = train.make_members_trainer(cfg, obs_dim, act_dim)
    sarsa_init, sarsa_run = train.make_sarsa_trainer(cfg, q_net, obs_dim, act_dim)
    keys = {s: jax.random.split(jax.random.PRNGKey(s)) for s in seeds}  # (sarsa key, learner key), as train.main
    t0 = time.perf_counter()
    sarsa_states = jax.vmap(sarsa_init)(jnp.stack([keys[s][0] for s in seeds]))
    vrun = jax.jit(jax.vmap(sarsa_run, in_axes=(0, None)))
    needs_sarsa = any(a in ("qsarsa_ac", "qsarsa_ac2") for a in algorithms)
    for _ in range(cfg.sarsa_steps // cfg.updates_per_call if needs_sarsa else 0):
        sarsa_states, _ = vrun(sarsa_states, data)
    jax.block_until_ready(sarsa_states)
    sarsa_s = time.perf_counter() - t0
    diagnostics = {}
    for i, s in enumerate(seeds):
        params = jax.tree.map(lambda x: x[i], sarsa_states.params)
        diagnostics[s] = train.sarsa_diagnostics(q_net, params, held, mean, std, gamma=cfg.gamma) if needs_sarsa else {}
    log(f"[{env_id} {kind}] Q_sarsa ({cfg.sarsa_steps} steps, {sarsa_s:.0f} s): "
        + ", ".join(f"seed {s}: spearman {diagnostics[s].get('sarsa_spearman', float('nan')):.3f}" for s in seeds))
    members = [(a, s) for a in algorithms for s in seeds]
    states = [init(keys[s][1], jax.tree.map(lambda x: x[seeds.index(s)], sarsa_states.params),
                   train.loss_weights(dataclasses.replace(cfg, algorithm=a))) for a, s in members]
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    actor = jax.jit(jax.vmap(net.actor))
    writers, cfgs = [], []
    for a, s in members:
        out_dir = member_dir(out_root, kind, a, env_id, s)
        member_cfg = dataclasses.replace(cfg, algorithm=a, seed=s, out_dir=out_dir, progress=False)
        cli.prepare_out_dir(out_dir, member_cfg, resumable=False)
        writer = metrics.MetricsWriter(out_dir, COLUMNS, step_key="grad_steps")
        writer.reset()
        writers.append(writer)
        cfgs.append(member_cfg)
    step, compile_s, sps = 0, None, []
    while step < cfg.total_steps:
        t0 = time.perf_counter()
        states, out = run(states, data)
        jax.block_until_ready(states)
        dt = time.perf_counter() - t0
        if compile_s is None:
            compile_s = dt
        else:
            sps.append(cfg.updates_per_call / dt)
        step += cfg.updates_per_call
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            returns = evaluate_members(actor, states.actor, env_id, members=len(members), episodes=cfg.eval_episodes,
                                       seed=10**6, mean=mean, std=std)
            for m, writer in enumerate(writers):
                ret = float(returns[m].mean())
                writer.write({"grad_steps": step, "eval_return": ret,
                              "eval_normalized": float(d4rl_style.normalized_score(env_id, ret)),
                              **{k: float(v[m]) for k, v in out.items()}, "sps": sps[-1] if sps else None,
                              "wall_s": time.perf_counter() - start})
            scores = returns.mean(1)
            log(f"[{env_id} {kind}] step {step}: " + ", ".join(
                f"{train.LABELS[a]} {np.mean([d4rl_style.normalized_score(env_id, scores[i]) for i, (b, _) in enumerate(members) if b == a]):.1f}"
                for a in algorithms) + f" ({time.perf_counter() - start:.0f} s)")
    wall = time.perf_counter() - start
    for (a, s), writer, member_cfg in zip(members, writers, cfgs):
        final = metrics.read_jsonl(writer.jsonl_path)[-1]
        summary = cli.summary(
            algorithm=a, preset="cpu", cfg=member_cfg, headline_name="d4rl_normalized_score",
            headline_value=final["eval_normalized"], env_steps=0, wall_s=wall, compile_s=compile_s,
            sps_steady=float(np.median(sps)) if sps else None,
            extra={"grad_steps": step, "dataset": member_cfg.dataset_path, "dataset_kind": kind,
                   "final_eval_return": final["eval_return"], "final_q_pi": final.get("q_pi"),
                   "members_in_program": len(members), "member_updates_per_s": float(np.median(sps)) * len(members)
                   if sps else None, "sarsa_pretrain_s": round(sarsa_s, 3),
                   **(diagnostics[s] if a in ("qsarsa_ac", "qsarsa_ac2") else {})})
        cli.write_json(os.path.join(member_cfg.out_dir, "summary.json"), summary)


def _done(out_root, kind, env_id, algorithms, seeds) -> bool:
    return all(os.path.isfile(os.path.join(member_dir(out_root, kind, a, env_id, s), "summary.json"))
               for a in algorithms for s in seeds)


def cmd_run(args) -> int:
    _, cfg = train.PRESETS[args.preset]
    overrides = {}
    if args.total_steps:
        overrides["total_steps"] = args.total_steps
    if args.sarsa_steps is not None:
        overrides["sarsa_steps"] = args.sarsa_steps
    if args.eval_every:
        overrides["eval_every"] = args.eval_every
    if args.bc_weight:
        overrides["bc_weight"] = args.bc_weight
    cfg = dataclasses.replace(cfg, dataset_dir=args.dataset_dir, **overrides)
    for algorithm in args.algorithms:
        if algorithm not in train.ALGORITHMS:
            cli.fail(f"--algorithms: unknown {algorithm!r}; choose from {train.ALGORITHMS}")
    try:
        cfg.validate()
        for env_id in args.envs:
            for kind in args.kinds:
                dataclasses.replace(cfg, env_id=env_id, dataset_kind=kind).validate()
    except cli.ConfigError as error:
        cli.fail(str(error))
    for env_id in args.envs:
        for kind in args.kinds:
            if _done(args.out_root, kind, env_id, args.algorithms, args.seeds):
                print(f"[{env_id} {kind}] finished, skipped")
                continue
            run_dataset(cfg, env_id, kind, args.algorithms, list(args.seeds), args.out_root)
    return 0


def cmd_report(args) -> int:
    rows = {}
    for kind in KINDS:
        for algorithm in train.ALGORITHMS:
            for env_id in ENVS:
                for s in SEEDS:
                    path = os.path.join(member_dir(args.out_root, kind, algorithm, env_id, s), "summary.json")
                    if os.path.isfile(path):
                        rows.setdefault((env_id, kind, algorithm), []).append(
                            (json.load(open(path)), metrics.read_jsonl(os.path.join(os.path.dirname(path), "metrics.jsonl"))))
    if not rows:
        cli.fail(f"no finished member under {args.out_root}; run first")
    datasets = [(e, k) for e in ENVS for k in KINDS if any((e, k, a) in rows for a in train.ALGORITHMS)]
    algorithms = [a for a in train.ALGORITHMS if any((e, k, a) in rows for e, k in datasets)]
    command = "python -m algorithms.offline_qreg.experiment " + shlex.join(sys.argv[1:] if sys.argv[1:] else ["report"])
    any_summary = next(iter(rows.values()))[0][0]
    lines = [f"Produced by `{command}` from `{os.path.relpath(args.out_root)}`.", "",
             f"D4RL-normalised score (100 · (R − R_random)/(R_expert − R_random), D4RL reference returns) of the final "
             f"policy after {any_summary['grad_steps']:,} gradient steps, mean ± std over seeds (n), "
             f"{_eval_episodes(args.out_root)} evaluation episodes per seed. Datasets made here "
             "(`environments/d4rl_style.py`), not the D4RL files.", "",
             "| dataset | " + " | ".join(train.LABELS[a] for a in algorithms) + " |",
             "|---|" + "---:|" * len(algorithms)]
    table = {}
    for e, k in datasets:
        cells = []
        for a in algorithms:
            vals = np.array([s["headline"]["value"] for s, _ in rows.get((e, k, a), [])], float)
            table[f"{d4rl_style.env_name(e)}-{k}/{a}"] = vals.tolist()
            cells.append(f"{vals.mean():.1f} ± {vals.std():.1f} ({len(vals)})" if len(vals) else "—")
        lines.append(f"| {d4rl_style.env_name(e)}-{k} | " + " | ".join(cells) + " |")
    lines += ["", "Critic's Q₁(s, π(s)) on dataset states at the end (mean ± std over seeds; a collapse of offline "
              "TD3 shows as a runaway value):", "",
              "| dataset | " + " | ".join(train.LABELS[a] for a in algorithms if a != "bc") + " |",
              "|---|" + "---:|" * len([a for a in algorithms if a != "bc"])]
    for e, k in datasets:
        cells = []
        for a in algorithms:
            if a == "bc":
                continue
            vals = np.array([s.get("final_q_pi") for s, _ in rows.get((e, k, a), [])], float)
            cells.append(f"{vals.mean():.3g} ± {vals.std():.2g}" if len(vals) else "—")
        lines.append(f"| {d4rl_style.env_name(e)}-{k} | " + " | ".join(cells) + " |")
    lines += ["", "Q_sarsa vs Monte-Carlo discounted returns (γ = 0.99) of the held-out 10% of episodes "
              "(Spearman rank correlation; per seed):", "",
              "| dataset | Spearman | Spearman, > 200 steps from a timeout | mean Q_sarsa | mean MC return |",
              "|---|---:|---:|---:|---:|"]
    sarsa = {}
    for e, k in datasets:
        summ = [s for s, _ in rows.get((e, k, "qsarsa_ac"), [])]
        if not summ:
            continue
        sp = np.array([s["sarsa_spearman"] for s in summ])
        far = np.array([s.get("sarsa_spearman_far_from_timeout", np.nan) for s in summ])
        sarsa[f"{d4rl_style.env_name(e)}-{k}"] = sp.tolist()
        lines.append(f"| {d4rl_style.env_name(e)}-{k} | {sp.mean():.3f} ± {sp.std():.3f} | {np.nanmean(far):.3f} | "
                     f"{np.mean([s['sarsa_mean_q'] for s in summ]):.1f} | {np.mean([s['mc_mean_return'] for s in summ]):.1f} |")
    os.makedirs(args.results, exist_ok=True)
    prefix = os.path.join(args.results, "offline_qreg")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "final_normalized": table, "sarsa_spearman": sarsa})
    _plot(rows, datasets, algorithms, prefix + ".png")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png")
    return 0


def _eval_episodes(out_root: str) -> str:
    for root, _, files in os.walk(out_root):
        if "config.json" in files:
            return str(json.load(open(os.path.join(root, "config.json"))).get("eval_episodes"))
    return "?"


def _plot(rows, datasets, algorithms, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(datasets), figsize=(3.6 * len(datasets), 6), dpi=120, squeeze=False,
                             layout="constrained")
    for j, (e, k) in enumerate(datasets):
        for a in algorithms:
            runs = rows.get((e, k, a), [])
            if not runs:
                continue
            for i, key in enumerate(("eval_normalized", "q_pi")):
                if key == "q_pi" and a == "bc":
                    continue
                x = np.array([r["grad_steps"] for r in runs[0][1]])
                ys = np.array([[r.get(key) if r.get(key) is not None else np.nan for r in m] for _, m in runs], float)
                mu, sd = np.nanmean(ys, 0), np.nanstd(ys, 0)
                axes[i, j].plot(x, mu, marker=".", label=train.LABELS[a])
                axes[i, j].fill_between(x, mu - sd, mu + sd, alpha=0.2)
        axes[0, j].set_title(f"{d4rl_style.env_name(e)}-{k}", fontsize=10)
        axes[0, j].set_ylabel("D4RL-normalised score")
        axes[1, j].set_ylabel("critic Q₁(s, π(s))")
        axes[1, j].set_yscale("symlog")
        axes[1, j].set_xlabel("gradient steps")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Offline learners on D4RL-style datasets made here (mean ± std over seeds)", fontsize=10)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.offline_qreg.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train every algorithm × seed on each dataset (one program per dataset)")
    r.add_argument("--envs", nargs="+", default=list(ENVS))
    r.add_argument("--kinds", nargs="+", default=list(KINDS))
    r.add_argument("--algorithms", nargs="+", default=list(train.ALGORITHMS))
    r.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    r.add_argument("--preset", default="cpu", choices=sorted(train.PRESETS))
    r.add_argument("--total-steps", type=int, default=0, help="override the preset's gradient steps")
    r.add_argument("--sarsa-steps", type=int, default=None, help="override the preset's Q_sarsa steps")
    r.add_argument("--eval-every", type=int, default=0, help="override the preset's evaluation interval")
    r.add_argument("--bc-weight", type=float, default=0.0, help="behaviour-cloning term added to the Qsarsa actors")
    r.add_argument("--dataset-dir", default="runs/d4rl_style")
    r.add_argument("--out-root", default=os.path.join(RESULTS, "grid_runs"))
    p = sub.add_parser("report", help="table and figure from the finished members")
    p.add_argument("--out-root", default=os.path.join(RESULTS, "grid_runs"))
    p.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    return cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
