"""The benchmark suite: every throughput figure of the repository, and the README that shows them.

    python -m benchmarks.run                 # everything (long on a CPU; meant for an accelerator box)
    python -m benchmarks.run --quick         # the CPU smoke run: fewer sizes, steps and repeats
    python -m benchmarks.run --only envs learner   # some benchmarks; the README keeps the others' latest rows
    python -m benchmarks.run --report        # rewrite benchmarks/README.md from the stored results only

Runs each benchmark module below (each measures its figures beside a baseline timed in the
same run), appends one uniform JSON line per figure (:func:`benchmarks.common.measurement`,
stamped with a run id, ``quick``, versions, device, date) to
``benchmarks/results/<date>_<device>.jsonl``, and regenerates ``benchmarks/README.md``
(tables, figures in ``benchmarks/results/figures/``, the projected cost of the ``paper``
presets) from the latest run of every benchmark in all such files. Each module also
writes its own detailed JSONL and markdown table (``results/<name>.md``; under
``results/quick/`` for ``--quick`` runs, so that a smoke run never overwrites the tables
the paper READMEs cite).
"""
from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import re
import time
import traceback
from typing import Callable, Optional

from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(HERE, "README.md")

BENCHMARKS = {  # name -> (module, what it measures)
    "envs": ("benchmarks.bench_envs", "raw stepping: envpool Atari/MiniGrid/MuJoCo/CartPole, gymnax MinAtar, JAX Minigrid vs number of envs"),
    "throughput": ("benchmarks.throughput", "foundation: raw envs, learner alone, DQN host loop and jitted loop overheads"),
    "minigrid": ("benchmarks.bench_minigrid", "JAX Minigrid vs envpool's C++ MiniGrid and the official package"),
    "learner": ("benchmarks.bench_learner", "learner updates/s per agent, network and batch size"),
    "agents": ("benchmarks.bench_agents", "end-to-end steps/s per agent (cpu preset)"),
    "seeds": ("benchmarks.bench_seeds", "DQN cpu preset: N seeds vmapped in one program vs N processes"),
    "scaling": ("benchmarks.bench_scaling", "data-parallel learner on 1, 2, 4 devices: same parameters, updates/s"),
    "bbf": ("benchmarks.bench_bbf", "BBF learner: 8 updates in one lax.scan vs 1 per dispatch; data-parallel on 1, 2, 4 devices"),
    "multihost": ("benchmarks.bench_multihost", "2 processes (jax.distributed, loopback) vs 1: actors + shared learner"),
    "soft_moe": ("benchmarks.bench_soft_moe", "Soft MoE layer vs the widened dense layer"),
    "jaxpruner": ("benchmarks.bench_jaxpruner", "JaxPruner's optax wrapper vs plain Adam"),
    "kernels": ("benchmarks.bench_kernels", "ReDo recycle step vs a DQN update; KSMe loss vs MICo loss"),
    "conv_in_loop": ("benchmarks.bench_conv_in_loop", "MinAtar conv inside lax loops: XLA conv vs shifted matmuls"),
    "offline_qreg": ("benchmarks.bench_offline_qreg", "offline TD3/Qsarsa learner: K updates in one lax.scan vs a Python loop; 15 learners vmapped"),
}

GROUPS = {  # group -> (title, explanation)
    "raw_env": ("Raw environment stepping", "Random actions; baseline: the same environment with 1 environment "
                "(or, for the JAX Minigrid, envpool's C++ MiniGrid)."),
    "learner": ("Learner updates/s", "The jitted learner update alone on fixed batches, one device; baseline: "
                "DQN's update on the same network and batch."),
    "end_to_end": ("End-to-end training steps/s (`cpu` presets)", "Whole loop in `jit` on Breakout-MinAtar; "
                   "baseline: raw MinAtar stepping with as many environments."),
    "seeds": ("N seeds in one program", "DQN `cpu` preset; aggregate environment steps/s of N seeds vmapped in one "
              "jitted program (`core.seeds`) against N separate processes running at the same time."),
    "scaling": ("Data-parallel learner (devices)", "`jax.shard_map` over 1, 2, 4 devices (simulated CPU devices on a "
                "CPU: they share the cores, so ≤ 1× is expected there); the parameters match the 1-device update."),
    "multihost": ("Multi-process (jax.distributed)", "Actors in each process, one synchronised learner; "
                  "processes on loopback with gloo collectives."),
    "loop_overhead": ("Loop overheads", "Host loop against its parts measured alone; jitted scan against the same "
                      "agent driven from Python."),
    "kernel": ("Paper kernels", "Soft MoE layer, JaxPruner wrapper, ReDo recycle, KSMe loss, MinAtar conv form; "
               "ratio > 1 means faster than the baseline."),
}


# --------------------------------------------------------------------------- running


def run_suite(names: list[str], *, quick: bool, out: str) -> str:
    """Runs ``names``; appends their rows to ``out/<date>_<device>.jsonl``; returns that path."""
    path = common.results_path(out)
    module_out = os.path.join(out, "quick") if quick else out
    run_id = time.strftime("%Y%m%dT%H%M%S")
    meta = common.meta(run_id=run_id, quick=quick)
    for name in names:
        module_name, _ = BENCHMARKS[name]
        print(f"== {name} ({module_name}{' --quick' if quick else ''})", flush=True)
        start = time.perf_counter()
        try:
            rows = importlib.import_module(module_name).run(quick, module_out)
            error = None
        except Exception:  # one failing benchmark must not lose the others' figures
            rows, error = [], traceback.format_exc()
            print(error, flush=True)
        wall = time.perf_counter() - start
        for row in rows:
            common.append_jsonl(path, {**row, "benchmark": name, **meta})
        common.append_jsonl(path, {"benchmark": name, "group": "_status", "wall_s": wall, "error": error,
                                   "rows": len(rows), **meta})
        print(f"== {name}: {len(rows)} figures in {wall:.0f} s{' (FAILED)' if error else ''}", flush=True)
    return path


# --------------------------------------------------------------------------- report


def latest_rows(out: str) -> tuple[list[dict], list[dict]]:
    """(figures, statuses) of the latest run of every benchmark across ``out/<date>_<device>.jsonl``.

    When the latest runs of two benchmarks hold the same figure (same group, name and config; e.g. the seeds rows
    of an older ``agents`` run, from before ``seeds`` became a benchmark of its own), the newer run's row is kept.
    """
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "*.jsonl"))):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}_.+\.jsonl", os.path.basename(path)):
            rows += [r for r in common.read_jsonl(path) if "run_id" in r]
    latest = {}
    for r in rows:
        if r["group"] == "_status" and r["run_id"] >= latest.get(r["benchmark"], ""):
            latest[r["benchmark"]] = r["run_id"]
    picked = [r for r in rows if latest.get(r["benchmark"]) == r["run_id"]]
    def figure(r):
        return r["group"], r.get("name"), json.dumps(r.get("config", {}), sort_keys=True)

    newest = {}  # figure -> run id of its newest row
    for r in picked:
        newest[figure(r)] = max(newest.get(figure(r), ""), r["run_id"])
    figures = [r for r in picked if r["group"] != "_status" and r["run_id"] == newest[figure(r)]]
    return figures, [r for r in picked if r["group"] == "_status"]


def _config(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def group_table(rows: list[dict]) -> str:
    body = [[r["name"], _config(r["config"]), common.fmt(r["value"], r["unit"]), r["baseline"] or "—",
             common.fmt(r["baseline_value"], r["unit"]) if r["baseline_value"] is not None else "—",
             f"{r['ratio']:.2f}×" if r["ratio"] is not None else "—"] for r in rows]
    return common.markdown_table(["benchmark", "config", "result", "baseline (same run)", "baseline", "ratio"],
                                 body, align="llrlrr")


def figures(rows: list[dict], out_dir: str) -> list[tuple[str, str]]:
    """Throughput against number of envs, batch size, devices and seeds; (caption, relative path) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    made = []

    def plot(filename, caption, series, xlabel, ylabel, logx=True, logy=True):
        if not series:
            return
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, points in sorted(series.items()):
            points = sorted(points)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        if logx:
            ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(caption, fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, filename), dpi=110)
        plt.close(fig)
        made.append((caption, os.path.relpath(os.path.join(out_dir, filename), HERE)))

    series = {}
    for r in rows:
        if r["group"] == "raw_env" and "num_envs" in r["config"] and r["baseline"] == "same env, 1 environment":
            series.setdefault(r["name"], []).append((r["config"]["num_envs"], r["value"]))
    plot("envs_vs_num_envs.png", "Raw environment steps/s vs parallel environments", series, "parallel environments",
         "steps/s")
    series = {}
    for r in rows:
        if r["group"] == "learner" and "batch" in r["config"]:
            series.setdefault(r["name"], []).append((r["config"]["batch"], r["value"] * r["config"]["batch"]))
    plot("learner_vs_batch.png", "Learner samples/s (updates/s × batch) vs batch size", series, "batch size",
         "samples/s")
    series = {}
    for r in rows:
        if r["group"] == "scaling":
            series.setdefault(r["name"].split(",")[0], []).append((r["config"]["devices"], r["value"]))
    plot("learner_vs_devices.png", "Data-parallel learner updates/s vs devices (simulated on CPU)", series, "devices",
         "updates/s")
    series = {}
    for r in rows:
        if r["group"] == "seeds":
            series.setdefault("vmapped, one program", []).append((r["config"]["seeds"], r["value"]))
            series.setdefault("separate processes", []).append((r["config"]["seeds"], r["baseline_value"]))
    plot("seeds_vmapped.png", "DQN cpu preset: aggregate steps/s vs number of seeds", series, "seeds", "env steps/s")
    series = {}
    for r in rows:
        if r["group"] == "multihost":
            series.setdefault("aggregate env steps/s", []).append((r["config"]["processes"], r["value"]))
    plot("multihost.png", "Actors + synchronised learner: env steps/s vs processes", series, "processes",
         "env steps/s", logy=False)
    return made


def _find(rows, group, name_part, **config) -> Optional[dict]:
    for r in rows:
        if r["group"] == group and name_part in r["name"] and all(r["config"].get(k) == v for k, v in config.items()):
            return r
    return None


def full_run_reference(out: str) -> Optional[dict]:
    """Per-step costs from the latest full (non-quick) ``throughput`` and ``soft_moe`` module runs in ``out``."""
    def latest(name):
        files = sorted(glob.glob(os.path.join(out, f"{name}_*.jsonl")))
        return (common.read_jsonl(files[-1]), os.path.basename(files[-1])) if files else (None, None)

    throughput, source = latest("throughput")
    if not throughput:
        return None
    by_name = {r["benchmark"]: r for r in throughput}
    if "raw_env/Pong-v5" not in by_name or "learner/nature_cnn" not in by_name:
        return None
    ref = {"env_s": 1.0 / by_name["raw_env/Pong-v5"]["steps_per_s"],
           "update_s": by_name["learner/nature_cnn"]["s_per_update"], "source": source, "moe_delta_s": None,
           "loop_steps_per_s": by_name.get("dqn_host_loop/Pong-v5", {}).get("loop_steps_per_s"),
           "date": by_name["learner/nature_cnn"].get("date")}
    soft_moe, _ = latest("soft_moe")
    if soft_moe:
        moe = [r for r in soft_moe if r["layer"] == "soft_moe" and r["experts"] == 8]
        dense = [r for r in soft_moe if r["layer"] == "dense_wide" and r["width"] == 512]
        if moe and dense:
            ref["moe_delta_s"] = 1e-3 * (moe[-1]["forward_backward_ms"] - dense[-1]["forward_backward_ms"])
    return ref


def projected_costs(rows: list[dict], reference: Optional[dict] = None) -> str:
    """Wall-clock of the ``paper`` presets from measured per-step costs (environment + learner)."""
    pong = _find(rows, "raw_env", "Pong-v5 (envpool)", num_envs=1) or _find(rows, "raw_env", "Pong-v5")
    nature = _find(rows, "learner", "dqn learner, nature", batch=32) or _find(rows, "learner", "nature_cnn")
    rainbow_nature = _find(rows, "learner", "rainbow learner, nature", batch=32)
    moe8 = _find(rows, "kernel", "soft_moe layer, 8 experts")
    dense = _find(rows, "kernel", "soft_moe layer, 1 experts")
    recycle = _find(rows, "kernel", "ReDo recycle step, nature")
    env_s = 1.0 / pong["value"] if pong else None
    upd_s = 1.0 / nature["value"] if nature else None

    def hours(env_steps, updates, update_s, extra_s=0.0, devices=1):
        if env_s is None or update_s is None:
            return "not measured"
        return f"{(env_steps * env_s + updates * update_s / devices + extra_s) / 3600:,.0f} h"

    def eight_devices(env_steps, updates, update_s, extra_s, kind):
        """From the full-run costs when there are any (less contended), else from this run's."""
        if reference is None or kind is None or (kind == "moe" and reference["moe_delta_s"] is None):
            return hours(env_steps, updates, update_s, extra_s, devices=8) + " (this run's costs)"
        update_s = reference["update_s"] + (reference["moe_delta_s"] if kind == "moe" else 0.0)
        return f"{(env_steps * reference['env_s'] + updates * update_s / 8) / 3600:,.0f} h"

    lines = []

    def reference_hours(env_steps, updates, kind):
        if reference is None or kind is None:
            return "—"
        update_s = reference["update_s"]
        if kind == "moe":
            if reference["moe_delta_s"] is None:
                return "—"
            update_s += reference["moe_delta_s"]
        return f"{(env_steps * reference['env_s'] + updates * update_s) / 3600:,.0f} h"

    def row(preset, env_steps, updates, update_s, how, extra_s=0.0, kind=None):
        lines.append([preset, f"{env_steps:,}", f"{updates:,}", hours(env_steps, updates, update_s, extra_s),
                      reference_hours(env_steps, updates, kind), "not measured (no GPU in this session)",
                      eight_devices(env_steps, updates, update_s, extra_s, kind), how])

    row("DQN, Atari 200M frames (`algorithms.dqn.train paper`)", 50_000_000, 12_500_000, upd_s,
        "envpool Pong (1 env) + Nature-CNN DQN update (batch 32)", kind="dqn")
    if rainbow_nature:
        row("Rainbow, Atari 200M (`algorithms.rainbow.train paper`)", 50_000_000, 12_500_000,
            1.0 / rainbow_nature["value"], "envpool Pong + Rainbow Nature-CNN update")
        row("DER, Atari 100k (`algorithms.rainbow.train der`; BBF's predecessor)", 100_000, 98_400,
            1.0 / rainbow_nature["value"], "envpool Pong + Rainbow Nature-CNN update")
    moe_s = None
    if upd_s and moe8 and dense and moe8.get("baseline_value"):
        # Soft MoE (8 experts) replaces the penultimate dense layer: add the layer's fwd+bwd difference.
        moe_s = upd_s + 1e-3 * (moe8["value"] - dense["baseline_value"])
    row("Soft MoE DQN, 8 experts, Atari 200M (`algorithms.soft_moe.train paper`)", 50_000_000, 12_500_000,
        moe_s, "DQN cost + (Soft MoE E=8 − dense 512) layer fwd+bwd", kind="moe")
    recycle_s = 2_500_000 // 1000 * (recycle["value"] * 1e-3) if recycle else None
    if recycle_s is not None:
        row("ReDo DQN, replay ratio 1, 10M frames (`algorithms.redo.train paper`)", 2_500_000, 2_500_000, upd_s,
            "DQN cost + recycle step (Nature) every 1,000 updates", extra_s=recycle_s, kind="dqn")
    else:
        row("ReDo DQN, replay ratio 1, 10M frames (`algorithms.redo.train paper`)", 2_500_000, 2_500_000, upd_s,
            "DQN cost (recycle step on the Nature CNN not measured in this run; ~1 update per 1,000)", kind="dqn")
    lines.append(bbf_paper_row())
    lines.append(pvn_paper_row())
    ref_head = (f"1 device: this CPU, latest full module run ({reference['source']})" if reference else
                "1 device: latest full module run")
    return common.markdown_table(
        ["preset", "agent steps", "gradient updates", "1 device: this CPU, this suite run", ref_head, "1 GPU",
         "8 devices (projection from the full-run costs: learner split 8 ways, actors as on 1)", "from"], lines,
        align="lrrrrrrl")


ALGORITHMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "algorithms")
BBF_COST = os.path.join(ALGORITHMS, "bbf", "results", "cost_paper.json")
PVN_COST = os.path.join(ALGORITHMS, "pvn", "results", "cost_paper.json")
NO_GPU = "not measured (no GPU in this session)"


def cost_file_row(label: str, agent_steps: str, path: str, *, updates_key: str, step_key: str,
                  what: Callable[[dict], str], command: str) -> list:
    """A paper-preset row projected from a per-update cost file (an algorithm's own ``cost`` measurement)."""
    if not os.path.exists(path):
        return [label, agent_steps, "—", "not measured", "—", NO_GPU, "—", f"run `{command} --out {os.path.relpath(path)}`"]
    with open(path) as f:
        cost = json.load(f)
    updates, step_s = cost[updates_key], cost[step_key]
    return [label, agent_steps, f"{updates:,}", f"{updates * step_s / 3600:,.0f} h (learner only, 1 core)", "—", NO_GPU,
            f"{updates * step_s / 8 / 3600:,.0f} h (learner only)",
            f"`{os.path.relpath(path, os.path.dirname(ALGORITHMS))}`: {step_s:.1f} s of CPU time per {what(cost)}, "
            f"median of {len(cost['step_cpu_s'])}"]


def bbf_paper_row(path: str = BBF_COST) -> list:
    """The BBF Atari 100k row from `python -m algorithms.bbf.cost --preset paper` (its own measurement)."""
    return cost_file_row("BBF, Atari 100k (`algorithms.bbf.train paper`)", "100,000", path,
                         updates_key="gradient_steps_per_run", step_key="median_step_cpu_s",
                         what=lambda cost: "Impala×4 + SPR gradient step (batch 32)",
                         command="python -m algorithms.bbf.cost --preset paper --steps 3")


def pvn_paper_row(path: str = PVN_COST) -> list:
    """The PVN pretraining row from `python -m algorithms.pvn.cost --preset paper` (its own measurement)."""
    def what(cost: dict) -> str:
        scaled = (f" (measured at batch {cost['measured_batch_size']}, scaled ×{cost['batch_scale']:g})"
                  if cost.get("batch_scale", 1) != 1 else "")
        return f"Impala×8, 4096-feature, 100-task update (batch 256){scaled}"

    return cost_file_row("PVN pretraining (`algorithms.pvn.pretrain paper`)", "— (offline)", path,
                         updates_key="updates_per_run", step_key="preset_step_cpu_s", what=what,
                         command="python -m algorithms.pvn.cost --preset paper --batch-size 32")


def seeds_note(rows: list[dict]) -> str:
    """What the seeds table shows: the profiled cause of the earlier slow rows, and this run's ratios read out."""
    ratios = ", ".join(f"{r['ratio']:.2f}× at N = {r['config']['seeds']}" for r in
                       sorted(rows, key=lambda r: r["config"]["seeds"]) if r["ratio"] is not None)
    slower = [r["config"]["seeds"] for r in rows if r["ratio"] is not None and r["ratio"] < 0.95]
    cores = {r.get("cores") for r in rows} - {None}
    largest = max(rows, key=lambda r: r["config"]["seeds"])
    compiles = (f": {max(largest['separate_compile_s']):.0f} s in this run before {largest['config']['seeds']} "
                f"processes had all compiled, against {largest['compile_s']:.0f} s for the one program"
                if largest.get("separate_compile_s") and largest.get("compile_s") else "")
    text = (
        "**What was slow, and what is left** (profiled 2026-12-02 with `python -m benchmarks.profile_seeds`, one "
        "core). The first rows of this table (0.21–0.22×, 2026-12-01, `--quick`) measured a bug, not `vmap`: "
        "`core.seeds` called its chunk through a plain `jax.jit`, and the state after a chunk carries the learner's "
        "`shard_map` mesh in its leaves' types (`f32[N, …]({Auto: ('data',)})` instead of `f32[N, …]`), so the "
        "second chunk retraced and recompiled the whole loop (15–40 s) inside the timed window; the single-seed "
        "loop compiles once ahead of time. `core.seeds` now does the same (`tests/core/test_seeds.py::"
        "test_chunk_compiles_once`) and both sides' compile times are reported apart. The suspected replay "
        "scatters exist but cost little: under `vmap` the writes at a per-seed cursor do become scatters on the "
        "`[N, R, B, …]` buffers, yet acting, storing and the MinAtar step together take ~0.1 ms per seed-step "
        "against ~3.8 ms per learner update (one per 4 steps). The learner update costs the same per seed "
        "vmapped or not (~3.8 ms for 1 seed, ~15 ms for 4, ~60 ms for 16): at batch 32 its matmuls already keep "
        "the core busy, so on a CPU the vmapped program does the same arithmetic as N processes and can at best "
        "match them in steps/s; what it saves is N − 1 compiles (one compile instead of N competing for the same "
        f"cores{compiles}) and N − 1 processes' memory. A throughput gain would need hardware that one seed's batch-32 update leaves idle "
        "(an accelerator; not measured here).")
    if ratios:
        text += (f"\n\nIn this run vmapped / separate is {ratios}"
                 + (f", the N processes and the vmapped program sharing the same {n_cores} core"
                    f"{'' if n_cores == 1 else 's'} (the benchmark ran under `taskset`)"
                    if len(cores) == 1 and (n_cores := next(iter(cores))) < (os.cpu_count() or 1) else "") + ".")
    if slower:
        text += (f" The vmapped program comes out slower at N = {', '.join(map(str, sorted(slower)))} here, but "
                 "each side is timed in its own window, minutes apart, on a shared machine whose speed drifts by "
                 "±15 % (the other core runs other jobs). Timed alternately with the single-seed loop in one "
                 "process (`python -m benchmarks.profile_seeds --ab N`: 2,000-step chunks, median of 5, "
                 "2026-12-02), the vmapped chunk ran at 0.93× and 1.03× the single-seed loop's steps/s per seed "
                 "for N = 1 (two runs), 0.82× and 1.05× for N = 4, 0.95× for N = 16: per seed the two are equal "
                 "within that noise, as the parts timed alone say (learner update within ±3 % per seed; acting, "
                 "replay writes and sampling under 10 % of a step; no copy of the buffers in the compiled chunk). "
                 "A small per-seed cost of `vmap` on XLA:CPU (under ~10 %) cannot be ruled out at this precision. "
                 "On a CPU, separate processes (`core.sweep --jobs N`) are as fast; the vmapped program saves the "
                 "compiles and the memory of N − 1 processes.")
    return text


def write_readme(out: str = RESULTS, path: str = README) -> str:
    rows, statuses = latest_rows(out)
    if not rows:
        raise SystemExit(f"error: no suite results in {out}; run `python -m benchmarks.run --quick` first")
    made = figures(rows, os.path.join(out, "figures"))
    reference = full_run_reference(out)
    runs = sorted({(s["date"], s["device"], s["quick"], s["git_sha"][:10] if s.get("git_sha") else "?",
                    s["versions"].get("jax")) for s in statuses})
    quick = any(s["quick"] for s in statuses)
    text = [
        "# Benchmarks",
        "",
        "<!-- generated by `python -m benchmarks.run` (or `--report`); edit benchmarks/run.py, not this file -->",
        "",
        "Every figure is measured beside a baseline timed in the same run, and every table and figure below is "
        "regenerated by one command:",
        "",
        "```bash",
        "python -m benchmarks.run            # every benchmark (meant for an accelerator box; hours on 2 CPU cores)",
        "python -m benchmarks.run --quick    # CPU smoke run: fewer sizes, steps, repeats",
        "python -m benchmarks.run --only learner scaling   # some of them; the others keep their latest rows",
        "python -m benchmarks.run --report   # this README from the stored results only",
        "```",
        "",
        "Results: one JSON line per figure in `results/<date>_<device>.jsonl` (uniform rows: value, unit, baseline, "
        "ratio, config, run id, versions, git sha); each module's own detailed lines and table in "
        "`results/<name>_<date>_<device>.jsonl` and `results/<name>.md` (`results/quick/` for `--quick`). "
        "Nothing is asserted on timings in the tests.",
        "",
        "| benchmark | module | what | figures | wall | status |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, (module, what) in BENCHMARKS.items():
        s = next((s for s in statuses if s["benchmark"] == name), None)
        status = "not run" if s is None else ("failed (see the run log)" if s["error"] else
                                              "quick" if s["quick"] else "full")
        wall = f"{s['wall_s']:.0f} s" if s else "—"
        text.append(f"| {name} | `{module}` | {what} | {s['rows'] if s else '—'} | {wall} | {status} |")
    text += ["", "Runs shown: " + "; ".join(f"{d} on `{dev}`{' (--quick)' if q else ''}, git {sha}, jax {jax}"
                                          for d, dev, q, sha, jax in runs) + "."]
    text += ["", "**Caveat.** The figures here were measured on a shared 2-core CPU machine while other experiments "
             "were running (load average well above 2), so absolute numbers are low and noisy; the ratios against "
             "the in-run baselines are the meaningful part." + (" A `--quick` run uses few repeats and short "
                                                                "chunks." if quick else ""), ""]
    for group, (title, explanation) in GROUPS.items():
        group_rows = [r for r in rows if r["group"] == group]
        if not group_rows:
            continue
        text += [f"## {title}", "", explanation, "", group_table(group_rows), ""]
        if group == "seeds":
            text += [seeds_note(group_rows), ""]
    if made:
        text += ["## Figures", ""]
        for caption, rel in made:
            text += [f"![{caption}]({rel})", ""]
    text += [
        "## Projected cost of the `paper` presets",
        "",
        "Wall-clock from the per-step costs measured above: agent steps × raw envpool Pong time per step + gradient "
        "updates × the learner's time per update (acting forward passes, replay sampling and evaluation are not "
        "included, so these are lower bounds for this machine). The 8-device column assumes the learner update "
        "splits ideally over 8 data-parallel devices while the actors run as on one; it is a projection, not a "
        "measurement. No GPU was available, so GPU cells are not filled in with invented numbers.",
        "",
        projected_costs(rows, reference),
        "",
        *([f"The end-to-end DQN host loop on Pong measured {reference['loop_steps_per_s']:,.0f} steps/s in that full "
           f"run ({reference['source']}), acting and replay included: "
           f"{50_000_000 / reference['loop_steps_per_s'] / 3600:,.0f} h for the DQN `paper` preset's 50M agent steps.",
           ""] if reference and reference.get("loop_steps_per_s") else []),
        "## Scale-out",
        "",
        "* **Data-parallel learner** (`core/parallel.py`): the value-based agents' learner update "
        "(`algorithms.dqn.agent.make_learner_update`, used by DQN, Rainbow/DER, DrQ(ε) and every paper agent built "
        "on them) is a `jax.shard_map` over a 1-D mesh of the local devices: the batch is split, gradients and the "
        "loss are `pmean`'d, priorities all-gathered. `--num-devices N` picks the mesh (0 = all). Verified on CPU "
        "with `XLA_FLAGS=--xla_force_host_platform_device_count=4`: the parameters after 1, 2 and 4 devices agree "
        "within float tolerance (max abs difference ~1e-7 after 3 updates) for DQN (`tests/core/test_parallel.py`) "
        "and Rainbow (its slow test); the full `python -m benchmarks.bench_scaling` also checks DER on the Nature CNN "
        "(not yet run on this machine). DrQ(ε)'s random shifts draw per-shard noise, so its D-device run "
        "is a different (equally valid) random stream. BBF has its own data-parallel learner (`algorithms.bbf.agent`, "
        "per-example augmentation keys so a split batch is augmented as the whole one), checked against 1 device on "
        "2 and 4 forced host devices (`tests/algorithms/bbf/test_parallel.py`, slow) and timed by `bench_bbf`.",
        "* **Multi-host** (`core/distributed.py`): `jax.distributed.initialize` (gloo collectives on CPU), one "
        "global mesh over every process's devices, each process's actors and replay local, the learner step global "
        "(each process contributes its rows of the batch, every process gets the same parameters). Launch one "
        "process per host:",
        "",
        "  ```bash",
        "  # on every host i = 0..P-1 (host 0 runs the coordinator):",
        "  python -m benchmarks.bench_multihost --num-processes P --process-id i --coordinator HOST0:23456 \\",
        "      --agent dqn --iterations 100",
        "  # on one machine, P processes over loopback (what the test does):",
        "  python -m benchmarks.bench_multihost --spawn 2",
        "  ```",
        "",
        "  `tests/core/test_distributed.py` (slow) starts 2 processes over loopback and checks that both end with "
        "the same online and target parameters after synchronised DQN and Rainbow updates while their actors "
        "collected different experience.",
        "* **Seeds** (`core/seeds.py`): for JAX environments, N seeds train in one jitted program (the learner "
        "vmapped inside one `lax.cond`, since the schedule is the same for all seeds); each seed equals its "
        "single-seed run (`tests/core/test_seeds.py`, slow). envpool environments cannot be vmapped: "
        "`core.sweep --jobs N` runs separate processes.",
        "",
    ]
    tables = [(name, os.path.join(out, f"{name}.md")) for name in BENCHMARKS]
    tables = [(name, table) for name, table in tables if os.path.exists(table)]
    if tables:
        text += ["## Detailed tables of the latest full run of each module", "",
                 "Written by each module itself (`python -m benchmarks.<module>` or a full `benchmarks.run`); a "
                 "`--quick` suite run leaves these alone (its own are under `results/quick/`).", ""]
        for name, table in tables:
            text += [f"### {name} (`{BENCHMARKS[name][0]}`)", "", open(table).read().strip(), ""]
        text += [
            "Reading the loop overheads: the host-loop ratio is the time per environment step of the DQN host loop "
            "over (raw envpool time per step + the compiled agent step called alone); with a Nature-CNN update "
            "per 4 steps the gradient step dominates. The jitted MinAtar loop is only ~1.1–1.2× faster than the same "
            "agent driven from Python at DQN's replay ratio on this CPU, because convolution gradients run slower "
            "inside `lax` control flow on XLA:CPU (hence the shifted-matmul MinAtar convolution, see conv_in_loop); "
            "the large speed-ups of whole-loop `jit` need many environment steps per gradient step or an accelerator.",
            ""]
    common.write_text(path, "\n".join(text))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU smoke run (fewer sizes, steps and repeats)")
    parser.add_argument("--only", nargs="+", choices=tuple(BENCHMARKS), default=None, help="run only these")
    parser.add_argument("--skip", nargs="+", choices=tuple(BENCHMARKS), default=(), help="leave these out")
    parser.add_argument("--report", action="store_true", help="only regenerate README.md from stored results")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--readme", default=README, help="README to write")
    args = parser.parse_args()
    if args.list:
        for name, (module, what) in BENCHMARKS.items():
            print(f"{name:13s} {module:32s} {what}")
        return
    if not args.report:
        names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
        path = run_suite(names, quick=args.quick, out=args.out)
        print(f"results: {path}")
    print(f"README: {write_readme(args.out, args.readme)}")


if __name__ == "__main__":
    main()
