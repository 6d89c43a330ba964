"""The paper's agent-transfer case study: Minigrid → Miniworld on the twin "go to" task.

    python -m algorithms.minigrid_transfer.experiment run [--seeds 0 1 2] [--miniworld-steps N]
    python -m algorithms.minigrid_transfer.experiment report
    python -m algorithms.minigrid_transfer.experiment random      # the uniform random policy's return

Chevalier-Boisvert et al. 2023 (arXiv 2306.13831), Sec. 5: a PPO agent trained on the
Minigrid half of the twin task (``twin_minigrid`` preset, the jitted loop, seed 0, one
source as in the paper) gives its actor, critic and mission encoder to a Miniworld agent
whose image encoder starts fresh (``transfer``); it is compared with the same agent trained
from scratch (``scratch``) on the Miniworld half (``twin_miniworld`` preset, host loop), over
the seeds. Both stages go through :func:`core.grid.run_grid` (resumable: rerun the same
command after a kill). ``report`` writes ``results/transfer.{md,json,png}``: the training
episode return against environment steps (mean ± std over seeds) and each condition's final
return.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Optional, Sequence

import numpy as np

from core import cli, grid, metrics, sweep

from algorithms.minigrid_transfer import twin

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
MODULE = "algorithms.minigrid_transfer.train"
MINIWORLD_ID = "MiniWorld-GoToObjTwin-v0"
SEEDS = (0, 1, 2)
PARTS = ("actor", "critic", "mission_encoder")


def source_dir(out_root: str) -> str:
    return os.path.join(grid.condition_root(out_root, "source"), sweep.safe_dir_name(twin.ENV_ID), "seed0")


def conditions(out_root: str) -> dict:
    """label -> CLI overrides of the ``twin_miniworld`` preset."""
    return {"scratch": (), "transfer": ("--transfer-from", source_dir(out_root), "--transfer-parts", *PARTS)}


def run(args) -> int:
    source_extra = ("--total-steps", str(args.source_steps)) if args.source_steps else ()
    status = grid.run_grid(MODULE, "twin_minigrid", {"source": source_extra}, [twin.ENV_ID], [0], args.out_root,
                           jobs=1, timeout_s=args.timeout_s, dry_run=args.dry_run)
    if status:
        return status
    extra = ("--total-steps", str(args.miniworld_steps)) if args.miniworld_steps else ()
    conds = {label: tuple(overrides) + extra for label, overrides in conditions(args.out_root).items()}
    return grid.run_grid(MODULE, "twin_miniworld", conds, [MINIWORLD_ID], args.seeds, args.out_root,
                         jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)


def _runs(root: str, env_id: str) -> list[str]:
    env_dir = os.path.join(root, sweep.safe_dir_name(env_id))
    if not os.path.isdir(env_dir):
        return []
    return [os.path.join(env_dir, d) for d in sorted(os.listdir(env_dir))
            if os.path.isfile(os.path.join(env_dir, d, "summary.json"))]


def _curves(run_dirs: Sequence[str]):
    """``(steps [K], returns [S, K])`` of the runs' ``episode_return`` (truncated to the shortest run)."""
    records = [[r for r in metrics.read_jsonl(os.path.join(d, "metrics.jsonl"))] for d in run_dirs]
    k = min(len(r) for r in records)
    steps = np.array([r["env_steps"] for r in records[0][:k]])
    returns = np.array([[np.nan if r["episode_return"] is None else r["episode_return"] for r in rec[:k]]
                        for rec in records])
    return steps, returns


def report(args) -> int:
    import json

    command = "python -m algorithms.minigrid_transfer.experiment " + shlex.join(sys.argv[1:] if args.argv is None
                                                                              else args.argv)
    labels = list(conditions(args.out_root))
    found = {label: _runs(grid.condition_root(args.out_root, label), MINIWORLD_ID) for label in labels}
    found = {k: v for k, v in found.items() if v}
    if not found:
        cli.fail(f"no finished Miniworld run under {args.out_root}; run first")
    source = _runs(grid.condition_root(args.out_root, "source"), twin.ENV_ID)
    rows, result = [], {"command": command, "conditions": {}}
    for label, dirs in found.items():
        summaries = [json.load(open(os.path.join(d, "summary.json"))) for d in dirs]
        steps, returns = _curves(dirs)
        last = np.nanmean(returns[:, -max(1, returns.shape[1] // 4):], axis=1)  # last quarter of training
        first = returns[:, 0]
        evals = np.array([s["headline"]["value"] for s in summaries], float)
        wall = np.array([s["wall_s"] for s in summaries], float)
        result["conditions"][label] = {"seeds": [s["seed"] for s in summaries], "steps": steps.tolist(),
                                       "episode_return": returns.tolist(), "first_chunk": first.tolist(),
                                       "last_quarter": last.tolist(), "eval_return": evals.tolist(),
                                       "wall_s": wall.tolist(), "env_steps": summaries[0]["env_steps"]}
        rows.append([label, str(len(dirs)), f"{np.mean(first):.3f} ± {np.std(first):.3f}",
                     f"{np.mean(last):.3f} ± {np.std(last):.3f}", f"{np.mean(evals):.3f} ± {np.std(evals):.3f}",
                     f"{np.mean(wall):.0f} s"])
    src_line = ""
    if source:
        s = json.load(open(os.path.join(source[0], "summary.json")))
        result["source"] = {"run": source[0], "eval_return": s["headline"]["value"], "env_steps": s["env_steps"],
                            "wall_s": s["wall_s"], "sps_steady": s["sps_steady"]}
        src_line = (f"Source: PPO on `{twin.ENV_ID}` (jitted loop, seed 0), {s['env_steps']:,} steps in "
                    f"{s['wall_s']:.0f} s, evaluation return {s['headline']['value']:.3f}.")
    header = ["condition", "seeds", "return, first log chunk", "return, last quarter of training",
              "evaluation return (end)", "wall per run"]
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}`.", "", src_line, "",
             f"Miniworld `{MINIWORLD_ID}`: mean ± std over seeds of the training episode return (sampled actions); "
             "evaluation: 20 episodes with sampled actions after training.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    os.makedirs(args.results, exist_ok=True)
    prefix = os.path.join(args.results, "transfer")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", result)
    _plot(result, prefix + ".png")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}.png")
    return 0


def _plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=130, layout="constrained")
    for label, data in result["conditions"].items():
        steps, returns = np.array(data["steps"]), np.array(data["episode_return"])
        mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0)
        line, = ax.plot(steps, mean, marker=".", label=f"{label} ({returns.shape[0]} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("Miniworld environment steps")
    ax.set_ylabel("training episode return")
    ax.set_title("Minigrid → Miniworld transfer (actor, critic, mission encoder): mean ± std", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path)
    plt.close(fig)


def random_baseline(args) -> int:
    """Mean return of the uniform random policy on the Miniworld twin (``results/random_miniworld.json``)."""
    from environments import miniworld

    env = miniworld.DmEnv(MINIWORLD_ID, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    returns = []
    for _ in range(args.episodes):
        ts, total = env.reset(), 0.0
        while not (ts := env.step(int(rng.integers(3)))).last():
            total += ts.reward
        returns.append(total + ts.reward)
    env.close()
    out = {"env_id": MINIWORLD_ID, "episodes": args.episodes, "seed": args.seed, "mean_return": float(np.mean(returns)),
           "std_return": float(np.std(returns)), "success_rate": float(np.mean(np.array(returns) > 0))}
    os.makedirs(args.results, exist_ok=True)
    cli.write_json(os.path.join(args.results, "random_miniworld.json"), out)
    print(out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.minigrid_transfer.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the source, then scratch and transfer on Miniworld (resumable)")
    r.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    r.add_argument("--source-steps", type=int, default=0, help="override the source's total steps (0: preset)")
    r.add_argument("--miniworld-steps", type=int, default=0, help="override the Miniworld runs' steps (0: preset)")
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--timeout-s", type=float, default=None)
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--out-root", default=os.path.join(RESULTS, "runs"))
    p = sub.add_parser("report", help="table and figure from the finished runs")
    p.add_argument("--out-root", default=os.path.join(RESULTS, "runs"))
    p.add_argument("--results", default=RESULTS)
    b = sub.add_parser("random", help="the uniform random policy's return on the Miniworld twin")
    b.add_argument("--episodes", type=int, default=50)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    return {"run": run, "report": report, "random": random_baseline}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
