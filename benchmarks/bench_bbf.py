"""BBF's learner: gradient steps/s of one update per dispatch vs K updates in one ``lax.scan``,
and the data-parallel learner over 1, 2, 4 devices.

    python -m benchmarks.bench_bbf [--quick] [--out benchmarks/results]

**Grouping.** BBF's reference code runs its replay-ratio-8 updates as one jitted program per
environment step. This times :func:`algorithms.bbf.agent.make_learner_update` (augmentation,
target computation, C51 + SPR loss, AdamW, EMA target) on a fixed random batch (batch 32)
either dispatched once per update (the baseline) or as ``K`` updates inside one
``lax.scan`` per dispatch (``K`` = 8, the paper's replay ratio), on the ``cpu`` preset's
network (MinAtar, Impala ×1) and, without ``--quick``, on the ``paper`` network (Impala ×4,
84×84×4; ~27 s of CPU per update here, meant for an accelerator).

**Devices.** In a child process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (on an accelerator box: the real
local devices), the same update (``cpu`` network; ``smoke`` network with ``--quick``) on a mesh of 1, 2 and 4 devices (:mod:`core.parallel`: the
batch, its weights and per-example augmentation keys split, gradients ``pmean``'d,
priorities all-gathered) from the same state on the same batches: parameters and
priorities must equal those of the plain single-device update within float tolerance;
updates/s beside the 1-device figure. Simulated CPU devices share the cores, so a ratio
≤ 1 is expected on a CPU.

``--child`` runs the device measurement in this process (its devices already set up).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")


def preset_setup(name: str, batch_size: int = 32):
    """(Config, EnvSpec) of a BBF preset's network, without opening an environment."""
    import numpy as np

    from algorithms.bbf import agent, train
    from core.types import EnvSpec

    cfg = dataclasses.replace(train.PRESETS[name][1], batch_size=batch_size)
    if agent.channels_first(cfg):
        spec = EnvSpec(env_id=cfg.env_id, observation_shape=(4, 84, 84), observation_dtype=np.dtype("uint8"),
                       num_actions=18)
    else:
        spec = EnvSpec(env_id=cfg.env_id, observation_shape=(10, 10, 4), observation_dtype=np.dtype("float32"),
                       num_actions=6)
    return cfg, spec


def initial_state(cfg, spec, net, optimizer):
    import jax
    import jax.numpy as jnp

    from core.types import TrainState

    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *spec.observation_shape), spec.observation_dtype),
                      jnp.zeros((1, cfg.spr_steps), jnp.int32))
    target = net.init(jax.random.PRNGKey(4), jnp.zeros((1, *spec.observation_shape), spec.observation_dtype),
                      jnp.zeros((1, cfg.spr_steps), jnp.int32))  # distinct from params: the EMA is exercised
    return TrainState(params=params, target_params=target, opt_state=optimizer.init(params),
                      step=jnp.zeros((), jnp.int32), key=jax.random.PRNGKey(1))


def grouping(preset: str, *, group: int, calls: int, repeats: int) -> list[dict]:
    """Gradient steps/s: ``calls × group`` single-update dispatches vs ``calls`` dispatches of ``group`` scanned."""
    import jax
    import jax.numpy as jnp

    from algorithms.bbf import agent
    from algorithms.bbf.cost import random_batch
    from benchmarks.common import timed

    cfg, spec = preset_setup(preset)
    net = agent.make_bbf_network(agent.network_config(cfg), spec.num_actions)
    optimizer = agent.make_optimizer(cfg)
    update = agent.make_learner_update(cfg, net, optimizer)
    batch = random_batch(jax.random.PRNGKey(2), cfg, spec)
    weight = jnp.ones((cfg.batch_size,))
    key = jax.random.PRNGKey(3)

    def scanned(train):
        def body(t, i):
            return update(t, batch, weight, jax.random.fold_in(key, i))[0], None
        return jax.lax.scan(body, train, jnp.arange(group))[0]

    rows = []
    for mode in ("single", "scan"):
        train = initial_state(cfg, spec, net, optimizer)
        start = time.perf_counter()
        if mode == "single":
            step = jax.jit(lambda t, i: update(t, batch, weight, jax.random.fold_in(key, i))[0], donate_argnums=0)
            step = step.lower(train, jnp.int32(0)).compile()
        else:
            step = jax.jit(scanned, donate_argnums=0).lower(train).compile()
        compile_s = time.perf_counter() - start
        per_call = group if mode == "single" else 1
        holder = [train]

        def go():
            t = holder[0]
            for c in range(calls):
                for i in range(per_call):
                    t = step(t, jnp.int32(i)) if mode == "single" else step(t)
            holder[0] = jax.block_until_ready(t)

        go()  # warm-up
        t = timed(go, repeats=repeats)
        steps = calls * group
        rows.append({"preset": preset, "mode": mode, "group": group, "gradient_steps": steps,
                     "batch_size": cfg.batch_size, "observation_shape": list(spec.observation_shape),
                     "impala_width": cfg.impala_width, "hidden_dim": cfg.hidden_dim, "spr_steps": cfg.spr_steps,
                     "compile_s": compile_s, **t, "gradient_steps_per_s": steps / t["median_s"],
                     "ms_per_gradient_step": 1e3 * t["median_s"] / steps})
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    return rows


def child(device_counts: list[int], *, preset: str, batch_size: int, updates: int, timing_updates: int) -> list[dict]:
    """In the process holding the devices: D-device updates vs the plain update, and their timing."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from algorithms.bbf import agent
    from algorithms.bbf.cost import random_batch
    from core import parallel

    cfg, spec = preset_setup(preset, batch_size)
    net = agent.make_bbf_network(agent.network_config(cfg), spec.num_actions)
    optimizer = agent.make_optimizer(cfg)
    batches = [random_batch(jax.random.PRNGKey(10 + i), cfg, spec) for i in range(updates)]
    weights = [jax.random.uniform(jax.random.PRNGKey(50 + i), (batch_size,), minval=0.5, maxval=1.0)
               for i in range(updates)]

    def run(mesh):
        update = jax.jit(agent.make_learner_update(cfg, net, optimizer, mesh))
        train = initial_state(cfg, spec, net, optimizer)
        start = time.perf_counter()
        compiled = update.lower(train, batches[0], weights[0], jax.random.PRNGKey(0)).compile()
        compile_s = time.perf_counter() - start
        priorities = []
        for i in range(updates):
            train, loss, priority = compiled(train, batches[i], weights[i], jax.random.PRNGKey(100 + i))
            priorities.append(np.asarray(priority))
        return compiled, train, np.stack(priorities), compile_s

    _, plain, plain_priorities, _ = run(None)
    reference = jax.tree.leaves(jax.device_get((plain.params, plain.target_params)))
    rows = []
    for devices in device_counts:
        compiled, train, priorities, compile_s = run(parallel.local_mesh(devices))
        leaves = jax.tree.leaves(jax.device_get((train.params, train.target_params)))
        max_diff = max([float(np.max(np.abs(a - b))) for a, b in zip(reference, leaves)]
                       + [float(np.max(np.abs(plain_priorities - priorities)))])
        for a, b in zip(reference, leaves):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"BBF on {devices} devices")
        np.testing.assert_allclose(priorities, plain_priorities, rtol=1e-4, atol=1e-5)
        row = {"agent": "bbf", "preset": preset, "devices": devices, "batch_size": batch_size,
               "updates_checked": updates, "max_abs_diff_vs_plain": max_diff, "compile_s": compile_s,
               "local_devices": jax.local_device_count(), "platform": jax.devices()[0].platform}
        if timing_updates:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                for i in range(timing_updates):
                    train, loss, _ = compiled(train, batches[0], weights[0], jax.random.PRNGKey(i))
                jax.block_until_ready(loss)
                times.append(time.perf_counter() - start)
            row["updates_per_s"] = timing_updates / sorted(times)[1]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def spawn_child(device_counts: list[int], *, preset: str, batch_size: int, updates: int, timing_updates: int,
                timeout: float = 900) -> list[dict]:
    """:func:`child` in a fresh process with ``max(device_counts)`` simulated CPU devices (on a CPU)."""
    import jax

    env = dict(os.environ)
    if jax.devices()[0].platform == "cpu":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={max(device_counts)}").strip()
        env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "benchmarks.bench_bbf", "--child", "--devices", *map(str, device_counts),
               "--preset", preset, "--batch-size", str(batch_size), "--updates", str(updates),
               "--timing-updates", str(timing_updates)]
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"BBF scaling child failed:\n{out.stderr[-4000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run(quick: bool, out: str = RESULTS, device_counts=(1, 2, 4)) -> list[dict]:
    """Every measurement; JSON lines and ``bbf.md`` in ``out``; suite rows back."""
    from benchmarks import common

    path = common.results_path(out, "bbf")
    meta = common.meta()
    suite, table = [], []
    presets = ["cpu"] if quick else ["cpu", "paper"]
    for preset in presets:
        heavy = preset == "paper"
        rows = grouping(preset, group=8, calls=1 if (quick or heavy) else 4, repeats=3 if (quick or heavy) else 5)
        base = rows[0]["gradient_steps_per_s"]
        for r in rows:
            common.append_jsonl(path, {"benchmark": "grouping", **r, **meta})
            label = "1 update per dispatch" if r["mode"] == "single" else f"{r['group']} updates in one lax.scan"
            suite.append(common.measurement(
                "learner", f"bbf learner, {preset} network, {label}", r["gradient_steps_per_s"], "updates/s",
                config={"network": f"bbf {preset}", "batch": r["batch_size"], "group": r["group"], "mode": r["mode"]},
                baseline=None if r["mode"] == "single" else "same update, 1 per dispatch",
                baseline_value=None if r["mode"] == "single" else base))
            table.append([f"`{preset}` (Impala ×{r['impala_width']}, {'×'.join(map(str, r['observation_shape']))})",
                          label, f"{r['gradient_steps_per_s']:,.2f}", f"{r['ms_per_gradient_step']:,.1f}",
                          f"{r['gradient_steps_per_s'] / base:.2f}", f"{r['compile_s']:.0f}"])
    device_counts = list(device_counts)
    scale_preset = "smoke" if quick else "cpu"  # --quick: the smoke network (compiles in seconds), still batch 32
    scaling = spawn_child(device_counts, preset=scale_preset, batch_size=32, updates=3,
                          timing_updates=5 if quick else 20)
    child_meta = common.meta(child_xla_flags=f"--xla_force_host_platform_device_count={max(device_counts)}")
    scale_table = []
    base = next(r for r in scaling if r["devices"] == 1)["updates_per_s"]
    for r in scaling:
        common.append_jsonl(path, {"benchmark": "scaling", **r, **child_meta})
        suite.append(common.measurement(
            "scaling", f"bbf learner, {r['devices']} device(s)", r["updates_per_s"], "updates/s",
            config={"devices": r["devices"], "batch": r["batch_size"], "network": f"bbf {scale_preset}"},
            baseline="same update on 1 device", baseline_value=base,
            max_abs_diff_vs_1_device=r["max_abs_diff_vs_plain"]))
        scale_table.append([r["devices"], f"{r['updates_per_s']:,.1f}", f"{r['updates_per_s'] / base:.2f}",
                            f"{r['max_abs_diff_vs_plain']:.1e}"])
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax "
            f"{meta['versions'].get('jax')}), by `python -m benchmarks.bench_bbf{' --quick' if quick else ''}`; "
            "batch 32, fixed random batch, one device.\n\n"
            + common.markdown_table(["network", "dispatch", "gradient steps/s", "ms/step", "× 1 per dispatch",
                                     "compile s"], table, align="llrrrr")
            + f"\n\nData-parallel (`{scale_preset}` network, global batch 32, {scaling[0]['local_devices']} "
            f"{scaling[0]['platform']} devices in the child; Δθ against the plain single-device update after "
            f"{scaling[0]['updates_checked']} updates, parameters, target parameters and priorities):\n\n"
            + common.markdown_table(["devices", "updates/s", "× 1 device", "max abs Δ vs plain update"], scale_table,
                                    align="rrrr"))
    common.write_text(os.path.join(out, "bbf.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the cpu network only, fewer repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4], help="mesh sizes")
    parser.add_argument("--child", action="store_true", help="measure the meshes in this process")
    parser.add_argument("--preset", default="cpu", help="BBF preset whose network the child uses")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--updates", type=int, default=3, help="updates compared against the plain update")
    parser.add_argument("--timing-updates", type=int, default=0, help="updates per timed repeat; 0 = no timing")
    args = parser.parse_args()
    if args.child:
        child(args.devices, preset=args.preset, batch_size=args.batch_size, updates=args.updates,
              timing_updates=args.timing_updates)
    else:
        run(args.quick, args.out, args.devices)


if __name__ == "__main__":
    main()
