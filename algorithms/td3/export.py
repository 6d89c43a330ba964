"""Exports a TD3 run's checkpoint as ``policy.npz`` and ``replay.hdf5`` (e.g. of a run stopped early).

    python -m algorithms.td3.export runs/td3_cpu               # the newest checkpoint
    python -m algorithms.td3.export runs/td3_cpu --step 120000 # a kept earlier one (the "medium" policy)

Reads the run's ``config.json``, restores its newest checkpoint (or checkpoint ``--step``,
which must be one the run kept) and writes the actor
(:class:`environments.d4rl_style.MLPPolicy` format) and every transition seen up to that
checkpoint (a D4RL-style ``medium-replay`` file) into the run directory, as a finished run
does. Errors (no such run, no checkpoint, corrupt checkpoint) exit 2 with one line.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Optional, Sequence

import jax
import numpy as np

from core import checkpoint, cli
from environments import d4rl_style
from environments.envpool_env import make

from algorithms.td3 import networks
from algorithms.td3.train import Config, empty_rows, make_trainer


def export(out_dir: str, step: Optional[int] = None) -> dict:
    path = os.path.join(out_dir, "config.json")
    if not os.path.isfile(path):
        raise cli.ConfigError(f"{out_dir}: no config.json (not a TD3 run directory)")
    raw = json.load(open(path))
    raw["hidden"] = tuple(raw["hidden"])
    cfg = Config(**raw)
    ckpt = checkpoint.Checkpointer(os.path.join(out_dir, "checkpoints"))
    kept = ckpt.steps()
    if not kept:
        raise cli.ConfigError(f"{out_dir}: no checkpoint to export")
    if step is None:
        step = kept[-1]
    elif step not in kept:
        raise cli.ConfigError(f"--step: {out_dir} has no checkpoint at step {step}; kept steps: {kept}")
    with make(cfg.env_id) as env:
        obs_dim, act_dim = env.spec.observation_shape[0], env.action_bounds[0].shape[0]
    _, init, _, _ = make_trainer(cfg, obs_dim, act_dim)
    template = {"state": init(jax.random.PRNGKey(0)), "rows": empty_rows(cfg.total_steps, obs_dim, act_dim),
                "count": np.zeros((), np.int64), "env_steps": np.zeros((), np.int64)}
    restored = ckpt.restore(step, template)
    ckpt.close()
    n = int(restored["count"])
    np.savez(os.path.join(out_dir, "policy.npz"), **networks.actor_to_numpy(jax.device_get(restored["state"].actor)))
    d4rl_style.save(os.path.join(out_dir, "replay.hdf5"), {k: np.asarray(v)[:n] for k, v in restored["rows"].items()},
                    env_id=cfg.env_id, kind="medium-replay",
                    attrs={"agent": "TD3 (algorithms/td3)", "seed": cfg.seed, "env_steps": int(restored["env_steps"])})
    return {"env_steps": int(restored["env_steps"]), "transitions": n}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    step = None
    if len(argv) == 3 and argv[1] == "--step":
        if not argv[2].isdigit():
            cli.fail(f"--step: a checkpoint step (non-negative integer), got {argv[2]!r}")
        step, argv = int(argv[2]), argv[:1]
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        print(export(argv[0], step))
    except (cli.ConfigError, checkpoint.CheckpointError) as error:
        cli.fail(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
