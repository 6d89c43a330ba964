"""Learner updates/s per agent, network and batch size (the learner alone, on fixed batches).

    python -m benchmarks.bench_learner [--quick] [--out benchmarks/results]

For the value-based agents of :mod:`algorithms.dqn.agent` as their presets configure them
(DQN, Rainbow: C51 + noisy + dueling + prioritized weights, DrQ(ε): dueling + n = 10 +
random shifts) on the MinAtar network (10×10×4) and the Nature CNN (4×84×84; the Impala
CNN too without ``--quick``), this times the jitted ``learner_update`` (forward, backward,
Adam, target copy; compile apart, warm-up, median of repeats) at batch sizes 32, 64, 128.
The baseline of each row is DQN's update on the same network and batch in the same run.
BBF (``algorithms/bbf``, issue 11, landed during this work) is not covered yet.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.common import RESULTS, timed
from core.types import EnvSpec, Transition

NETWORKS = {  # name -> (config overrides, observation shape, dtype)
    "minatar": (dict(torso="minatar", head_hidden=128), (10, 10, 4), "float32"),
    "nature": (dict(torso="nature", head_hidden=512), (4, 84, 84), "uint8"),
    "impala": (dict(torso="impala", head_hidden=512), (4, 84, 84), "uint8"),
}


def agents():
    from algorithms.drq import train as drq
    from algorithms.dqn import train as dqn
    from algorithms.rainbow import train as rainbow

    return {"dqn": dqn.PRESETS["cpu"][1], "rainbow": rainbow.PRESETS["cpu"][1], "drq": drq.PRESETS["cpu"][1]}


def learner(cfg, network: str, batch_size: int, *, updates: int, repeats: int) -> dict:
    from algorithms.dqn.agent import make_agent

    overrides, shape, dtype = NETWORKS[network]
    cfg = dataclasses.replace(cfg, **overrides, batch_size=batch_size, num_devices=1)
    spec = EnvSpec(env_id=cfg.env_id, observation_shape=shape, observation_dtype=np.dtype(dtype), num_actions=6)
    agent = make_agent(cfg, spec)
    train = agent.init(jax.random.PRNGKey(0)).train
    key = jax.random.PRNGKey(1)
    if dtype == "uint8":
        obs = jax.random.randint(key, (batch_size, *shape), 0, 255).astype(jnp.uint8)
    else:
        obs = (jax.random.uniform(key, (batch_size, *shape)) < 0.1).astype(jnp.float32)
    batch = Transition(observation=obs, action=jnp.zeros(batch_size, jnp.int32), reward=jnp.ones(batch_size),
                       discount=jnp.full(batch_size, 0.99), next_observation=obs,
                       next_action=jnp.zeros(batch_size, jnp.int32))
    weight = jnp.ones(batch_size, jnp.float32)
    start = time.perf_counter()
    update = jax.jit(agent.learner_update, donate_argnums=0).lower(train, batch, weight, key).compile()
    compile_s = time.perf_counter() - start
    train = jax.block_until_ready(update(train, batch, weight, key)[0])

    def go():
        nonlocal train
        for _ in range(updates):
            train, loss, _ = update(train, batch, weight, key)
        jax.block_until_ready(loss)

    t = timed(go, repeats=repeats)
    params = sum(x.size for x in jax.tree.leaves(train.params))
    return {**t, "updates_per_s": updates / t["median_s"], "ms_per_update": 1e3 * t["median_s"] / updates,
            "compile_s": compile_s, "parameters": int(params)}


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``learner.md`` in ``out``; suite rows back."""
    path = common.results_path(out, "learner")
    meta = common.meta()
    grid = ([("minatar", (32, 128), ("dqn", "rainbow", "drq")), ("nature", (32,), ("dqn",))] if quick else
            [("minatar", (32, 64, 128), ("dqn", "rainbow", "drq")), ("nature", (32, 64, 128), ("dqn", "rainbow", "drq")),
             ("impala", (32,), ("dqn",))])
    configs = agents()
    suite, table = [], []
    for network, batches, names in grid:
        for batch_size in batches:
            base = None
            for name in names:
                heavy = network != "minatar"
                result = learner(configs[name], network, batch_size, updates=(3 if quick else 10) if heavy else
                                 (20 if quick else 100), repeats=3 if quick else 5)
                common.append_jsonl(path, {"agent": name, "network": network, "batch_size": batch_size, **result,
                                           **meta})
                base = base or result["updates_per_s"]
                suite.append(common.measurement(
                    "learner", f"{name} learner, {network} network", result["updates_per_s"], "updates/s",
                    config={"network": network, "batch": batch_size, "parameters": result["parameters"]},
                    baseline=None if name == "dqn" else "DQN, same network and batch",
                    baseline_value=None if name == "dqn" else base))
                table.append([name, network, f"{result['parameters']:,}", batch_size, f"{result['updates_per_s']:,.1f}",
                              f"{result['ms_per_update']:.2f}", f"{result['updates_per_s'] * batch_size:,.0f}",
                              f"{result['updates_per_s'] / base:.2f}"])
                print(name, network, batch_size, common.rounded(result), flush=True)
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}), "
            f"by `python -m benchmarks.bench_learner{' --quick' if quick else ''}`; one device.\n\n"
            + common.markdown_table(["agent", "network", "parameters", "batch", "updates/s", "ms/update", "samples/s",
                                     "× DQN"], table, align="llrrrrrr"))
    common.write_text(os.path.join(out, "learner.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer networks, batch sizes and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
