"""BBF vs DER, an SPR-style baseline and BBF's ablations on MinAtar.

    python -m algorithms.bbf.experiment run [--protocol full|reduced] [--conditions ...] [--games ...]
                                            [--seeds 0 1 2] [--jobs 1]
    python -m algorithms.bbf.experiment report [--protocol full|reduced]

``run`` trains every condition below on every game and seed through :func:`core.grid.run_grid`
(resumable: rerun the same command after a kill; seed-major, so a grid stopped early holds
every condition at the first seeds). BBF and its ablations are the ``cpu`` preset of
:mod:`algorithms.bbf.train` with CLI overrides; DER is the Rainbow script
(:mod:`algorithms.rainbow.train` ``cpu``: C51, noisy nets, dueling, double Q, prioritized
replay, MinAtar CNN) with DER's settings (n = 10, one update per environment step).

Protocols:

* ``full`` (default): the issue's protocol — all five games, 100k agent steps, BBF at replay
  ratio 8 (resets at 20k/40k/60k/80k, 10k-update annealing), every ablation, 3 seeds.
  Projected ≈ 5 h per BBF run at the ~24 ms per gradient step measured here (README "Cost").
* ``reduced``: what fitted this machine's shared CPU (README "Results"): Breakout-MinAtar,
  BBF vs DER vs SPR-style, 4k agent steps, BBF at replay ratio 2 with a narrower Impala
  (8/16/16 channels, 128 units); every schedule length scaled by 4k/100k (resets every 800
  steps, annealing over 100 updates, DER's target period 80). ``--games`` and
  ``--conditions`` widen it (e.g. ``--conditions BBF-Resets BBF-SPR``).

``report`` writes ``results/bbf_minatar[_reduced].{md,json}`` and ``…_curves.png``: the final
greedy return per game (mean ± std over seeds) and, across games, the IQM and mean of
normalised scores (0 = random policy, 1 = the DrQ(ε) ``cpu`` preset;
:mod:`environments.minatar_scores`) with 95% stratified-bootstrap CIs.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Optional, Sequence

from core import aggregate, cli, grid
from environments import minatar_scores

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.relpath(os.path.join(HERE, "results"))
GAMES = minatar_scores.GAMES
SEEDS = (0, 1, 2)
BBF_MODULE, DER_MODULE = "algorithms.bbf.train", "algorithms.rainbow.train"

CONDITIONS = {
    "BBF": (BBF_MODULE, ()),
    "DER": (DER_MODULE, ("--n-step", "10", "--train-every", "1", "--gradient-steps", "1", "--target-update-every",
                         "2000", "--learning-starts", "1600", "--v-max", "10", "--reward-clip", "--adam-eps", "1.5e-4",
                         "--eps-decay-steps", "2000", "--total-steps", "100000", "--eval-episodes", "32",
                         "--eval-every", "10000", "--log-every", "5000", "--checkpoint-every", "10000")),
    # The cpu_spr preset as overrides of cpu: MinAtar CNN, n = 10, γ = 0.99, no resets, no decay, RR 1.
    "SPR-style": (BBF_MODULE, ("--encoder", "minatar", "--no-resets", "--no-anneal-n", "--n-step", "10",
                               "--no-anneal-gamma", "--gamma", "0.99", "--weight-decay", "0", "--gradient-steps", "1")),
    "BBF-Resets": (BBF_MODULE, ("--no-resets",)),
    "BBF-SPR": (BBF_MODULE, ("--spr-weight", "0")),
    "BBF-Annealing": (BBF_MODULE, ("--no-anneal-n", "--no-anneal-gamma")),
    "BBF-WD": (BBF_MODULE, ("--weight-decay", "0")),
    "BBF n=10": (BBF_MODULE, ("--no-anneal-n", "--n-step", "10")),
    "BBF gamma=0.99": (BBF_MODULE, ("--no-anneal-gamma", "--gamma", "0.99")),
}
"""label -> (training module, CLI overrides of its ``cpu`` preset): the paper's ablations (Fig. 5) and baselines."""

REDUCED_STEPS = 4_000
REDUCED_BBF = ("--total-steps", "4000", "--learning-starts", "1000", "--eps-decay-steps", "1001",
               "--reset-every", "800", "--no-resets-after", "4000", "--anneal-steps", "100",
               "--impala-channels", "8", "16", "16", "--hidden-dim", "128", "--buffer-size", "4000",
               "--eval-every", "2000", "--eval-episodes", "16", "--eval-max-steps", "5000", "--log-every", "1000",
               "--checkpoint-every", "4000")
"""The reduced protocol for every BBF-family condition (its own overrides come after and win)."""
REDUCED_BBF_GRADIENT_STEPS = ("--gradient-steps", "2")
REDUCED_DER = ("--total-steps", "4000", "--learning-starts", "1000", "--eps-decay-steps", "1001",
               "--target-update-every", "80", "--buffer-size", "4000", "--eval-every", "2000",
               "--eval-episodes", "16", "--eval-max-steps", "5000", "--log-every", "1000", "--checkpoint-every", "4000")
PROTOCOLS = {
    "full": dict(games=GAMES, conditions=tuple(CONDITIONS), name="bbf_minatar", runs="minatar_runs",
                 eval_episodes=32),
    "reduced": dict(games=("Breakout-MinAtar",), conditions=("BBF", "DER", "SPR-style"),
                    name="bbf_minatar_reduced", runs="minatar_reduced_runs", eval_episodes=16),
}


def merge_overrides(*groups: Sequence[str]) -> tuple:
    """CLI overrides with later groups winning flag by flag (``--flag value...`` units, order kept)."""
    flags: dict = {}
    for group in groups:
        current = None
        for token in group:
            if token.startswith("--"):
                current = token
                flags.pop(current, None)
                flags[current] = []
            else:
                flags[current].append(token)
    return tuple(t for flag, values in flags.items() for t in (flag, *values))


def condition_overrides(label: str, protocol: str) -> tuple:
    """The training module and full CLI overrides of one condition under ``protocol``."""
    module, extra = CONDITIONS[label]
    if protocol == "full":
        return module, extra
    if module == DER_MODULE:
        return module, merge_overrides(extra, REDUCED_DER)
    return module, merge_overrides(REDUCED_BBF, REDUCED_BBF_GRADIENT_STEPS, extra)


def dir_name(label: str) -> str:
    return label.lower().replace("bbf-", "bbf_minus_").replace("-", "_").replace(" ", "_").replace("=", "").replace(
        ".", "")


def run(args) -> int:
    labels = args.conditions or PROTOCOLS[args.protocol]["conditions"]
    status = 0
    for seed in args.seeds:  # seed-major across both training modules
        for module in (BBF_MODULE, DER_MODULE):
            conditions = {dir_name(label): tuple(condition_overrides(label, args.protocol)[1]) for label in labels
                          if condition_overrides(label, args.protocol)[0] == module}
            if conditions:
                status |= grid.run_grid(module, "cpu", conditions, args.games, [seed], args.out_root,
                                        jobs=args.jobs, timeout_s=args.timeout_s, dry_run=args.dry_run)
    return status


def report(args) -> int:
    protocol = PROTOCOLS[args.protocol]
    games = list(protocol["games"])
    wanted = [label for label in CONDITIONS if label in (args.conditions or protocol["conditions"])]
    finished = set(grid.finished_conditions(args.out_root, [dir_name(label) for label in wanted], games))
    labels = [label for label in wanted if dir_name(label) in finished]
    if not labels:
        cli.fail(f"no condition has a finished run on every game under {args.out_root}; run first")
    command = "python -m algorithms.bbf.experiment " + shlex.join(sys.argv[1:])
    try:
        result = aggregate.aggregate([grid.condition_root(args.out_root, dir_name(label)) for label in labels],
                                     labels, normalize="none", reps=args.reps)
    except aggregate.AggregateError as error:
        cli.fail(str(error))
    envs = result["envs"]
    summary, tables = minatar_scores.comparison_tables(result, labels, reps=args.reps, seed=args.seed)
    episodes = protocol["eval_episodes"]
    tables = [line.replace("(32 episodes)", f"({episodes} episodes)") for line in tables]
    lines = [f"Produced by `{command}` from the runs under `{os.path.relpath(args.out_root)}` "
             f"(protocol `{args.protocol}`).", "",
             f"Normalised score: 0 = random policy, 1 = DrQ(ε) cpu preset; {len(envs)} games; "
             f"95% stratified-bootstrap CIs ({args.reps:,} replicates).", "",
             *tables]
    prefix = os.path.join(args.results, protocol["name"])
    os.makedirs(args.results, exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    cli.write_json(prefix + ".json", {"command": command, "protocol": args.protocol, "summary": summary,
                                      "aggregate": result})
    aggregate.plot_curves(result, prefix + "_curves.png", y="eval_return",
                          title=f"BBF on MinAtar ({args.protocol} protocol): greedy evaluation return, "
                                "mean over seeds ± std")
    print("\n".join(lines))
    print(f"wrote {prefix}.md, {prefix}.json, {prefix}_curves.png")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--protocol", choices=sorted(PROTOCOLS), default="full")
    pre.add_argument("--conditions", nargs="+", default=None)
    known, rest = pre.parse_known_args(argv)
    unknown = [c for c in known.conditions or () if c not in CONDITIONS]
    if unknown:
        cli.fail(f"unknown condition(s) {unknown}; choose from {list(CONDITIONS)}")
    protocol = PROTOCOLS[known.protocol]

    def with_protocol(fn):
        def wrapped(args):
            args.protocol, args.conditions = known.protocol, known.conditions
            return fn(args)
        return wrapped

    return grid.main(rest, prog="python -m algorithms.bbf.experiment", description=__doc__,
                     run=with_protocol(run), report=with_protocol(report), games=protocol["games"], seeds=SEEDS,
                     results=RESULTS, runs=protocol["runs"])


if __name__ == "__main__":
    raise SystemExit(main())
