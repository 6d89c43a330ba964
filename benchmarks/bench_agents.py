"""End-to-end environment steps/s of every agent on its ``cpu`` preset, and N seeds in one program.

    python -m benchmarks.bench_agents [--quick] [--out benchmarks/results]       # 1. and 2.
    python -m benchmarks.bench_agents --only-seeds [--seed-counts 1 4 16]        # 2. alone

1. **Per agent** (DQN, Rainbow, DrQ(ε) and the papers' agents: Soft MoE, ReDo, JaxPruner,
   KSMe), the ``cpu`` preset on Breakout-MinAtar (the whole loop in ``jit``: act, store,
   learn every ``train_every`` steps), timed over chunks after the one that compiles;
   baseline: raw Breakout-MinAtar stepping with the same number of environments in a
   jitted scan, same run. Replay capacity is cut to 20k (it does not change the per-step work).
2. **Seeds vmapped**: DQN's ``cpu`` preset for N = 1, 4, 16 seeds in one jitted program
   (:func:`core.seeds.make_seeds_trainer`), aggregate steps/s, against N separate
   processes each running the single-seed loop at the same time (started together, timed
   after a barrier once all have compiled). Both sides compile once before their timed
   window. All processes share the CPU cores the benchmark was given (under ``taskset -c 1``:
   one core for the N processes, as for the one vmapped program). With ``--quick``: N = 1, 4
   and DQN only.

Children run in subprocesses under a timeout (a ``jit(vmap)`` of a training loop has been
seen to hang on this machine's JAX). Results: ``results/agents_<date>_<device>.jsonl`` and
``agents.md`` (part 1), ``results/seeds_<date>_<device>.jsonl`` and ``seeds.md`` (part 2).
The suite (``benchmarks.run``) runs the two parts as the benchmarks ``agents`` and ``seeds``
(:mod:`benchmarks.bench_seeds`).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
AGENTS = {"dqn": "algorithms.dqn.train", "rainbow": "algorithms.rainbow.train", "drq": "algorithms.drq.train",
          "soft_moe": "algorithms.soft_moe.train", "redo": "algorithms.redo.train",
          "jaxpruner": "algorithms.jaxpruner.train", "ksme": "algorithms.ksme.train"}
ENV_ID = "Breakout-MinAtar"


def cpu_config(agent: str, chunk_steps: int):
    module = importlib.import_module(AGENTS[agent])
    cfg = module.PRESETS["cpu"][1]
    cfg = dataclasses.replace(cfg, env_id=ENV_ID, log_every=chunk_steps, buffer_size=20_000, progress=False,
                              learning_starts=min(cfg.learning_starts, chunk_steps // 2), num_devices=1)
    from algorithms.dqn.agent import make_agent

    return cfg, getattr(module, "make_agent", make_agent)


def single_seed(agent: str, chunk_steps: int, chunks: int, seed: int = 0, barrier: str = "",
                parties: int = 1) -> dict:
    """The preset's own JAX loop (``algorithms.dqn.loop.make_trainer``), one seed."""
    import jax

    from algorithms.dqn import loop

    cfg, agent_fn = cpu_config(agent, chunk_steps)
    trainer = loop.make_trainer(dataclasses.replace(cfg, seed=seed), agent_fn)
    state = trainer.init(jax.random.PRNGKey(seed))
    state = jax.block_until_ready(trainer.run_chunk(state))  # compiles; fills replay past learning_starts
    if barrier:  # wait until every process has compiled, so that the timed windows overlap
        open(os.path.join(barrier, f"ready{seed}"), "w").close()
        while len(os.listdir(barrier)) < parties:
            time.sleep(0.05)
    start = time.time()
    for _ in range(chunks):
        state = jax.block_until_ready(trainer.run_chunk(state))
    end = time.time()
    return {"agent": agent, "seed": seed, "steps": chunks * chunk_steps, "start": start, "end": end,
            "steps_per_s": chunks * chunk_steps / (end - start), "compile_s": trainer.compile_s(),
            "grad_steps": int(state[0].train.step), "num_envs": cfg.num_envs, "train_every": cfg.train_every}


def vmapped_seeds(agent: str, num_seeds: int, chunk_steps: int, chunks: int) -> dict:
    """``num_seeds`` seeds in one jitted program (:func:`core.seeds.make_seeds_trainer`)."""
    import jax

    from core.seeds import make_seeds_trainer
    import environments

    cfg, agent_fn = cpu_config(agent, chunk_steps)
    env = environments.make_jax(cfg.env_id)
    trainer = make_seeds_trainer(agent_fn(cfg, env.spec), env, num_envs=cfg.num_envs,
                                 steps=chunk_steps // cfg.num_envs)
    state = trainer.init(jax.random.split(jax.random.PRNGKey(0), num_seeds))
    start = time.perf_counter()
    state = jax.block_until_ready(trainer.run_chunk(state))  # compiles; fills replay past learning_starts
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(chunks):
        state = jax.block_until_ready(trainer.run_chunk(state))
    elapsed = time.perf_counter() - start
    return {"agent": agent, "num_seeds": num_seeds, "steps_per_s": num_seeds * chunks * chunk_steps / elapsed,
            "first_chunk_s": first_s, "compile_s": trainer.compile_s(), "grad_steps": int(state[0].train.step[0])}


def raw_minatar(num_envs: int, steps: int) -> float:
    from benchmarks import bench_envs
    r = bench_envs.jax_steps(bench_envs.minatar_rollout(ENV_ID), num_envs, steps, repeats=3)
    return r["steps_per_s"]


def _child(args: list[str], timeout: float) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    return subprocess.Popen([sys.executable, "-m", "benchmarks.bench_agents", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(procs: list[subprocess.Popen], timeout: float) -> list[dict]:
    deadline, out = time.time() + timeout, []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.time()))
            lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"child exited with {proc.returncode}:\n{stderr[-3000:]}")
            out.append(lines[-1])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return out


def separate_processes(agent: str, n: int, chunk_steps: int, chunks: int, timeout: float = 900) -> dict:
    with tempfile.TemporaryDirectory() as barrier:
        procs = [_child(["--child", "single", "--agent", agent, "--seed", str(s), "--chunk-steps", str(chunk_steps),
                         "--chunks", str(chunks), "--barrier", barrier, "--parties", str(n)], timeout)
                 for s in range(n)]
        rows = _collect(procs, timeout)
    window = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {"processes": n, "steps_per_s": sum(r["steps"] for r in rows) / window,
            "per_process_steps_per_s": [r["steps_per_s"] for r in rows],
            "compile_s": [r["compile_s"] for r in rows], "grad_steps": [r["grad_steps"] for r in rows]}


def _sizes(quick: bool) -> tuple[int, int]:
    """(chunk_steps, timed chunks)."""
    return (1_000, 2) if quick else (5_000, 3)


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Part 1, every agent end to end; JSON lines and ``agents.md`` in ``out``; suite rows back."""
    from benchmarks import common

    path = common.results_path(out, "agents")
    meta = common.meta()
    chunk_steps, chunks = _sizes(quick)
    names = ("dqn",) if quick else tuple(AGENTS)
    suite, table = [], []
    raw = {}
    for name in names:
        row = _collect([_child(["--child", "single", "--agent", name, "--chunk-steps", str(chunk_steps),
                                "--chunks", str(chunks)], 900)], 900)[0]
        if row["num_envs"] not in raw:
            raw[row["num_envs"]] = raw_minatar(row["num_envs"], 2_000 // row["num_envs"])
        common.append_jsonl(path, {"kind": "end_to_end", **row, "raw_env_steps_per_s": raw[row["num_envs"]], **meta})
        suite.append(common.measurement(
            "end_to_end", f"{name} cpu preset (Breakout-MinAtar, loop in jit)", row["steps_per_s"], "steps/s",
            config={"num_envs": row["num_envs"], "train_every": row["train_every"]},
            baseline="raw MinAtar stepping, same num_envs", baseline_value=raw[row["num_envs"]],
            compile_s=row["compile_s"]))
        table.append([name, row["num_envs"], row["train_every"], f"{row['steps_per_s']:,.0f}",
                      f"{raw[row['num_envs']]:,.0f}", f"{row['compile_s']:.1f} s"])
        print(name, common.rounded(row), flush=True)
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}), "
            f"by `python -m benchmarks.bench_agents{' --quick' if quick else ''}`; chunks of {chunk_steps:,} steps, "
            f"{chunks} timed after the compiling one.\n\n"
            + common.markdown_table(["agent", "envs", "train every", "end-to-end steps/s", "raw env steps/s (same run)",
                                     "compile"], table, align="lrrrrr"))
    common.write_text(os.path.join(out, "agents.md"), text)
    print(text)
    return suite


def run_seeds(quick: bool, out: str = RESULTS, counts: tuple[int, ...] = ()) -> list[dict]:
    """N seeds vmapped in one program against N separate processes; ``seeds.md`` in ``out``; suite rows back."""
    from benchmarks import common

    path = common.results_path(out, "seeds")
    meta = common.meta()
    chunk_steps, chunks = _sizes(quick)
    counts = tuple(counts) or ((1, 4) if quick else (1, 4, 16))
    suite, seeds_table = [], []
    for n in counts:
        timeout = 600 + 60 * n
        v = _collect([_child(["--child", "vmapped", "--agent", "dqn", "--seeds", str(n), "--chunk-steps",
                              str(chunk_steps), "--chunks", str(chunks)], timeout)], timeout)[0]
        p = separate_processes("dqn", n, chunk_steps, chunks, timeout=timeout)
        common.append_jsonl(path, {"kind": "seeds", "num_seeds": n, "chunk_steps": chunk_steps, "chunks": chunks,
                                   "affinity": sorted(os.sched_getaffinity(0)), "vmapped": v, "separate": p, **meta})
        suite.append(common.measurement(
            "seeds", f"dqn cpu preset, {n} seed(s) vmapped in one program", v["steps_per_s"], "steps/s",
            config={"seeds": n}, baseline=f"{n} separate processes at once", baseline_value=p["steps_per_s"],
            compile_s=v["compile_s"], separate_compile_s=p["compile_s"], cores=len(os.sched_getaffinity(0))))
        seeds_table.append([n, f"{v['steps_per_s']:,.0f}", f"{p['steps_per_s']:,.0f}",
                            f"{v['steps_per_s'] / p['steps_per_s']:.2f}×", f"{v['compile_s']:.1f} s",
                            f"{max(p['compile_s']):.1f} s"])
        print("seeds", n, common.rounded(v), common.rounded(p), flush=True)
    cores = len(os.sched_getaffinity(0))
    text = (f"Measured {common.today()} on `{meta['device']}` ({cores} of {os.cpu_count()} cores available to the "
            f"benchmark and all its processes, jax {meta['versions'].get('jax')}), by `python -m benchmarks.bench_agents "
            f"--only-seeds{' --quick' if quick else ''}`; DQN `cpu` preset on {ENV_ID}, chunks of {chunk_steps:,} "
            f"steps per seed, {chunks} timed after the one that compiles and fills the replay past `learning_starts`."
            "\n\nAggregate environment steps/s of N seeds.\n\n"
            + common.markdown_table(["seeds N", "vmapped, one jitted program", "N separate processes at once",
                                     "vmapped / separate", "compile (vmapped)",
                                     "compile (N processes at once, slowest)"],
                                    seeds_table, align="rrrrrr"))
    common.write_text(os.path.join(out, "seeds.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="DQN only, N = 1 and 4, short chunks")
    parser.add_argument("--only-seeds", action="store_true", help="only part 2 (N seeds vmapped vs N processes)")
    parser.add_argument("--seed-counts", type=int, nargs="+", default=(),
                        help="the N of part 2 (default 1 4 16; 1 4 with --quick)")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--child", choices=("single", "vmapped"), default=None, help="(internal) measure one run")
    parser.add_argument("--agent", default="dqn", choices=tuple(AGENTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--chunk-steps", type=int, default=1_000)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--barrier", default="")
    parser.add_argument("--parties", type=int, default=1)
    args = parser.parse_args()
    if args.child == "single":
        print(json.dumps(single_seed(args.agent, args.chunk_steps, args.chunks, args.seed, args.barrier, args.parties)))
    elif args.child == "vmapped":
        print(json.dumps(vmapped_seeds(args.agent, args.seeds, args.chunk_steps, args.chunks)))
    else:
        if not args.only_seeds:
            run(args.quick, args.out)
        run_seeds(args.quick, args.out, tuple(args.seed_counts))


if __name__ == "__main__":
    main()
