"""Offline learner (Qsarsa-AC on TD3) gradient steps/s: K updates in one jitted lax.scan vs a Python loop of one jitted update.

    python -m benchmarks.bench_offline_qreg [--quick] [--out benchmarks/results]

Both sides run the same jitted single update of :func:`algorithms.offline_qreg.train.make_trainer`
(batch sampling from the device-resident dataset included) on a synthetic Hopper-shaped
dataset (obs 11, actions 3, 100k transitions): ``scan`` dispatches ``updates_per_call`` of
them in one ``lax.scan``; ``python_loop`` (the naive baseline) dispatches each update from
Python. A third row trains 15 learners (5 algorithms × 3 seeds, ``vmap``) in one scan, the
way ``algorithms.offline_qreg.experiment`` runs its grid, reported per learner. Compile is
timed apart; medians of repeats after a warm-up. One JSON line per measurement in
``benchmarks/results/offline_qreg_<date>_<device>.jsonl`` and a table in ``offline_qreg.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.offline_qreg import train
from benchmarks import common
from benchmarks.common import RESULTS, timed

OBS, ACT, N = 11, 3, 100_000


def synthetic_data(seed: int = 0) -> train.Data:
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    return train.Data(f(N, OBS), jnp.clip(f(N, ACT), -1, 1), f(N), jnp.asarray(rng.random(N) > 0.01, jnp.float32),
                      f(N, OBS), jnp.clip(f(N, ACT), -1, 1))


def measure(cfg: train.Config, *, repeats: int) -> list[dict]:
    data = synthetic_data()
    net, q_net, init, run, one = train.make_trainer(cfg, OBS, ACT)
    q_params = q_net.init(jax.random.PRNGKey(1), jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    state = init(jax.random.PRNGKey(0), q_params)
    k = cfg.updates_per_call
    rows = []

    start = time.perf_counter()
    jax.block_until_ready(run(state, data))
    compile_scan = time.perf_counter() - start
    holder = {"s": state}

    def scan_call():
        holder["s"], _ = run(holder["s"], data)
        jax.block_until_ready(holder["s"])

    scan_call()
    t = timed(scan_call, repeats=repeats)
    rows.append({"name": "scan", "steps_per_s": k / t["median_s"], "spread": [k / t["max_s"], k / t["min_s"]],
                 "compile_s": compile_scan, "updates_per_call": k})

    start = time.perf_counter()
    jax.block_until_ready(one(state, data))
    compile_one = time.perf_counter() - start
    holder["s"] = state

    def loop_call():
        s = holder["s"]
        for _ in range(k):
            s, _ = one(s, data)
        holder["s"] = s
        jax.block_until_ready(s)

    loop_call()
    t = timed(loop_call, repeats=repeats)
    rows.append({"name": "python_loop", "steps_per_s": k / t["median_s"], "spread": [k / t["max_s"], k / t["min_s"]],
                 "compile_s": compile_one, "updates_per_call": 1})

    members = [(a, s) for a in train.ALGORITHMS for s in range(3)]
    _, _, minit, mrun = train.make_members_trainer(cfg, OBS, ACT)
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *[
        minit(jax.random.PRNGKey(s), q_params, train.loss_weights(dataclasses.replace(cfg, algorithm=a)))
        for a, s in members])
    start = time.perf_counter()
    states, _ = mrun(states, data)
    jax.block_until_ready(states)
    compile_members = time.perf_counter() - start
    holder["m"] = states

    def members_call():
        holder["m"], _ = mrun(holder["m"], data)
        jax.block_until_ready(holder["m"])

    t = timed(members_call, repeats=repeats)
    rows.append({"name": "scan_15_members", "steps_per_s": len(members) * k / t["median_s"],
                 "spread": [len(members) * k / t["max_s"], len(members) * k / t["min_s"]],
                 "compile_s": compile_members, "updates_per_call": k, "members": len(members)})
    return rows


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``offline_qreg.md`` in ``out``; suite rows back."""
    k, repeats = (100, 3) if quick else (500, 5)
    cfg = dataclasses.replace(train.PRESETS["cpu"][1], algorithm="qsarsa_ac", updates_per_call=k)
    path = common.results_path(out, "offline_qreg")
    meta = common.meta(shapes={"obs": OBS, "act": ACT, "dataset": N, "batch": cfg.batch_size, "hidden": list(cfg.hidden)})
    rows = measure(cfg, repeats=repeats)
    for row in rows:
        common.append_jsonl(path, {**row, **meta})
        print(common.rounded(row, 3), flush=True)
    scan, loop, members = rows
    text = (f"Measured {common.today()} on `{meta['device']}` (jax {meta['versions'].get('jax')}), by "
            f"`python -m benchmarks.bench_offline_qreg{' --quick' if quick else ''}`; Qsarsa-AC update (TD3 critics + "
            f"regulariser, actor every 2nd step), hidden {cfg.hidden}, batch {cfg.batch_size}, obs {OBS}, actions {ACT}.\n\n"
            + common.markdown_table(["how", "gradient steps/s", "spread", "compile s"], [
                [f"{k} updates in one lax.scan", common.fmt(scan["steps_per_s"]),
                 f"{scan['spread'][0]:,.0f}–{scan['spread'][1]:,.0f}", f"{scan['compile_s']:.1f}"],
                ["Python loop of 1 jitted update (baseline)", common.fmt(loop["steps_per_s"]),
                 f"{loop['spread'][0]:,.0f}–{loop['spread'][1]:,.0f}", f"{loop['compile_s']:.1f}"],
                [f"15 learners vmapped in one scan (learner-steps/s)", common.fmt(members["steps_per_s"]),
                 f"{members['spread'][0]:,.0f}–{members['spread'][1]:,.0f}", f"{members['compile_s']:.1f}"],
            ], align=["l", "r", "r", "r"]))
    common.write_text(os.path.join(out, "offline_qreg.md"), text)
    print(text)
    config = {"batch": cfg.batch_size, "hidden": list(cfg.hidden)}
    return [common.measurement("learner", "offline Qsarsa-AC update, lax.scan", scan["steps_per_s"], "steps/s",
                               config=config, baseline="Python loop of the jitted update",
                               baseline_value=loop["steps_per_s"]),
            common.measurement("learner", "offline learners, 15 vmapped in one scan", members["steps_per_s"],
                               "learner-steps/s", config=config, baseline="one learner, lax.scan",
                               baseline_value=scan["steps_per_s"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer updates and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
