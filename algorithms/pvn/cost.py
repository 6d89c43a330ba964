"""Measured cost of one PVN pretraining update of a preset's network, and the projected run time.

    python -m algorithms.pvn.cost [--preset paper] [--batch-size B] [--steps 2] [--out algorithms/pvn/results/cost_paper.json]

Builds the preset's learner (encoder, task heads, random-network indicators, thresholds,
EMA target) on Atari's stacked-frame observation (4 × 84 × 84 uint8, without opening an
environment or a dataset) and runs its update on a random batch. Compile is timed
separately; then ``--steps`` jitted updates, each blocked on, median reported as wall-clock
and as process CPU time (all XLA threads). ``--batch-size`` below the preset's measures a
smaller batch; the projection then scales the step time linearly to the preset's batch
(stated in the output: on a CPU an update's time is close to linear in the batch, since
every convolution's work is). The projection for a run is ``num_updates × step time``
(dataset sampling not included).
"""
from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from core import cli, step_cost

from algorithms.pvn import learner as learner_lib
from algorithms.pvn import pretrain

ATARI_OBSERVATION = (4, 84, 84)  # 4 stacked 84 × 84 frames, channels first (the Impala torso's layout here)


def random_batch(key, batch_size: int, num_actions: int, shape=ATARI_OBSERVATION) -> learner_lib.Batch:
    keys = jax.random.split(key, 3)
    image = lambda k: jax.random.randint(k, (batch_size, *shape), 0, 256).astype(jnp.uint8)  # noqa: E731
    return learner_lib.Batch(observation=image(keys[0]),
                             action=jax.random.randint(keys[1], (batch_size,), 0, num_actions),
                             discount=jnp.full((batch_size,), 0.99), next_observation=image(keys[2]))


def measure(cfg: pretrain.Config, *, batch_size: int, num_actions: int, steps: int) -> dict:
    learner = pretrain.make_learner(cfg, num_actions)
    state = learner.init(jax.random.PRNGKey(0), np.zeros((1, *ATARI_OBSERVATION), np.uint8))
    batch = random_batch(jax.random.PRNGKey(1), batch_size, num_actions)
    timings, state, out = step_cost.measure_steps(
        lambda: jax.jit(learner.update, donate_argnums=0).lower(state, batch),
        lambda update, state: update(state, batch), state, steps)
    scale = cfg.batch_size / batch_size
    return {
        "observation_shape": list(ATARI_OBSERVATION), "measured_batch_size": batch_size,
        "preset_batch_size": cfg.batch_size, "batch_scale": scale, "impala_width": cfg.impala_width,
        "num_features": cfg.num_features, "num_tasks": cfg.num_tasks, "num_actions": num_actions,
        "parameters": int(sum(x.size for x in jax.tree.leaves(state.params))), **timings,
        "preset_step_cpu_s": round(timings["median_step_cpu_s"] * scale, 3),
        "updates_per_run": cfg.num_updates,
        "projected_cpu_hours_per_run": round(cfg.num_updates * timings["median_step_cpu_s"] * scale / 3600, 1),
        "td_loss_finite": bool(np.isfinite(float(out.td_loss))), **step_cost.provenance(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.pvn.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", choices=sorted(pretrain.PRESETS))
    parser.add_argument("--batch-size", type=int, default=0, help="measure this batch (0: the preset's)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--num-actions", type=int, default=18)
    parser.add_argument("--impala-width", type=int, default=0, help="override the preset's width (0: keep)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cfg = pretrain.PRESETS[args.preset][1]
    if args.impala_width:
        cfg = dataclasses.replace(cfg, impala_width=args.impala_width)
    if cfg.torso != "impala":
        cli.fail(f"--preset {args.preset}: uses the {cfg.torso!r} torso; this measures the Atari (impala) presets")
    batch_size = args.batch_size or cfg.batch_size
    if not 1 <= batch_size <= cfg.batch_size or args.steps < 1:
        cli.fail(f"--batch-size must be in [1, {cfg.batch_size}] and --steps >= 1")
    step_cost.write_result({"preset": args.preset, **measure(cfg, batch_size=batch_size, num_actions=args.num_actions,
                                                             steps=args.steps)}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
