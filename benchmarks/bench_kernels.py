"""The papers' kernels not covered elsewhere: ReDo's recycling step and the KSMe loss.

    python -m benchmarks.bench_kernels [--quick] [--out benchmarks/results]

* ``redo_recycle``: one ReDo step of ``algorithms/redo/redo.py`` (neuron scores of every
  layer on a batch of 256 replay observations, τ = 0.1 dormant masks, ``recycle`` with
  Adam-moment reset), for the MinAtar network and the Nature CNN; baseline: one DQN Adam
  update (batch 32) of the same network, same run (ReDo recycles every 1,000 updates, so
  the amortised cost is this ratio / 1000).
* ``ksme_loss``: value and gradient of the KSMe loss of ``algorithms/ksme/losses.py``
  (B² pairs of representations, D = 512) at B = 32, 128 (and 256); baseline: MICo's
  loss, which it replaces, on the same inputs.

(The Soft MoE layer and the JaxPruner wrapper have their own modules,
``bench_soft_moe`` and ``bench_jaxpruner``; ``python -m benchmarks.run`` runs all four.)
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from benchmarks.common import RESULTS, timed

NETWORKS = {"minatar": (dict(torso="minatar", head_hidden=128), (10, 10, 4), "float32"),
            "nature": (dict(torso="nature", head_hidden=512), (4, 84, 84), "uint8")}


def _compiled_ms(fn, *args, iterations: int, repeats: int) -> dict:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))

    def go():
        out = None
        for _ in range(iterations):
            out = compiled(*args)
        jax.block_until_ready(out)

    t = timed(go, repeats=repeats)
    return {"ms": 1e3 * t["median_s"] / iterations, "spread_ms": [1e3 * t["min_s"] / iterations,
                                                                  1e3 * t["max_s"] / iterations],
            "compile_s": compile_s}


def redo_vs_update(network: str, *, iterations: int, repeats: int) -> tuple[dict, dict]:
    import dataclasses

    from algorithms.dqn import train as dqn
    from algorithms.dqn.agent import make_agent
    from algorithms.redo import redo
    from algorithms.redo.train import layer_links
    from core.networks import layer_call_order
    from core.types import EnvSpec, Transition

    overrides, shape, dtype = NETWORKS[network]
    cfg = dataclasses.replace(dqn.PRESETS["cpu"][1], **overrides, batch_size=32, num_devices=1)
    spec = EnvSpec(env_id=cfg.env_id, observation_shape=shape, observation_dtype=np.dtype(dtype), num_actions=6)
    agent = make_agent(cfg, spec)
    train = agent.init(jax.random.PRNGKey(0)).train
    key = jax.random.PRNGKey(1)

    def observations(n):
        if dtype == "uint8":
            return jax.random.randint(key, (n, *shape), 0, 255).astype(jnp.uint8)
        return (jax.random.uniform(key, (n, *shape)) < 0.1).astype(jnp.float32)

    network_fns = agent.network
    dummy = jnp.zeros((1, *shape), np.dtype(dtype))
    names = layer_call_order(network_fns, jax.eval_shape(network_fns.init, jax.ShapeDtypeStruct((2,), jnp.uint32),
                                                         dummy), dummy)
    links = layer_links(names)
    recyclable = tuple(dict.fromkeys(link.layer for link in links))
    score_obs = observations(256)

    def recycle_step(params, opt_state, key):
        _, outputs = network_fns.layer_outputs(params, score_obs)
        masks = {name: redo.dormant_mask(redo.neuron_scores(jax.nn.relu(outputs[name])), tau=0.1)
                 for name in recyclable}
        return redo.recycle(params, opt_state, masks, key, links=links)

    obs = observations(32)
    batch = Transition(observation=obs, action=jnp.zeros(32, jnp.int32), reward=jnp.ones(32),
                       discount=jnp.full(32, 0.99), next_observation=obs, next_action=jnp.zeros(32, jnp.int32))
    update = _compiled_ms(agent.learner_update, train, batch, jnp.ones(32), key, iterations=iterations,
                          repeats=repeats)
    recycle = _compiled_ms(recycle_step, train.params, train.opt_state, key, iterations=iterations, repeats=repeats)
    return recycle, update


def ksme_vs_mico(batch: int, dim: int, *, iterations: int, repeats: int) -> tuple[dict, dict]:
    from algorithms.ksme import losses

    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    online, target, target_next = (jax.random.normal(k, (batch, dim)) for k in keys[:3])
    reward = jax.random.uniform(keys[3], (batch,))

    def grad_of(loss):
        return jax.value_and_grad(lambda o: loss(o, target, target_next, reward, cumulative_gamma=0.99))

    ksme = _compiled_ms(grad_of(losses.ksme_loss), online, iterations=iterations, repeats=repeats)
    mico = _compiled_ms(grad_of(losses.mico_loss), online, iterations=iterations, repeats=repeats)
    return ksme, mico


def run(quick: bool, out: str = RESULTS) -> list[dict]:
    """Every measurement; JSON lines and ``kernels.md`` in ``out``; suite rows back."""
    path = common.results_path(out, "kernels")
    meta = common.meta()
    repeats = 3 if quick else 5
    suite, table = [], []
    for network in (("minatar",) if quick else ("minatar", "nature")):
        iterations = 20 if network == "minatar" else (3 if quick else 10)
        recycle, update = redo_vs_update(network, iterations=iterations, repeats=repeats)
        common.append_jsonl(path, {"kernel": "redo_recycle", "network": network, "recycle": recycle,
                                   "dqn_update": update, **meta})
        suite.append(common.measurement("kernel", f"ReDo recycle step, {network} network", recycle["ms"], "ms",
                                        config={"score_batch": 256, "network": network},
                                        baseline="one DQN Adam update (batch 32)", baseline_value=update["ms"],
                                        higher_is_better=False))
        table.append(["ReDo recycle (scores on 256 obs + recycle)", network, f"{recycle['ms']:.3f} ms",
                      "DQN update, batch 32", f"{update['ms']:.3f} ms", f"{recycle['ms'] / update['ms']:.2f}"])
        print("redo", network, common.rounded(recycle), common.rounded(update), flush=True)
    for batch in ((32, 128) if quick else (32, 128, 256)):
        ksme, mico = ksme_vs_mico(batch, 512, iterations=50 if quick else 200, repeats=repeats)
        common.append_jsonl(path, {"kernel": "ksme_loss", "batch": batch, "dim": 512, "ksme": ksme, "mico": mico,
                                   **meta})
        suite.append(common.measurement("kernel", f"KSMe loss value+grad, B={batch}", ksme["ms"], "ms",
                                        config={"batch": batch, "dim": 512}, baseline="MICo loss, same inputs",
                                        baseline_value=mico["ms"], higher_is_better=False))
        table.append([f"KSMe loss value+grad (B = {batch}, D = 512)", "—", f"{ksme['ms']:.3f} ms", "MICo loss",
                      f"{mico['ms']:.3f} ms", f"{ksme['ms'] / mico['ms']:.2f}"])
        print("ksme", batch, common.rounded(ksme), common.rounded(mico), flush=True)
    text = (f"Measured {common.today()} on `{meta['device']}` ({os.cpu_count()} cores, jax {meta['versions'].get('jax')}), "
            f"by `python -m benchmarks.bench_kernels{' --quick' if quick else ''}`; jitted, compile apart, median of "
            "repeats.\n\n" + common.markdown_table(["kernel", "network", "time", "baseline (same run)", "baseline time",
                                                    "× baseline time"], table, align="llrlrr"))
    common.write_text(os.path.join(out, "kernels.md"), text)
    print(text)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="MinAtar network only, fewer batch sizes and repeats")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
