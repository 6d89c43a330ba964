"""Measured cost of one BBF gradient step of a preset's network, and the projected run time.

    python -m algorithms.bbf.cost [--preset paper] [--steps 3] [--out algorithms/bbf/results/cost_paper.json]

Builds the preset's agent on its environment's observation shape (84×84×4 uint8 for Atari,
without opening an environment), fills nothing: the learner update (augmentation, target
computation, C51 + SPR loss, AdamW, EMA target) runs on a random batch of ``batch_size``
examples. Compile is timed separately; then ``--steps`` jitted gradient steps, each blocked
on, median reported, as wall-clock and as process CPU time (all XLA threads; on a shared,
saturated machine the CPU time is the honest figure: wall ≈ CPU / cores on an idle one). The projection for a run is ``(total_steps − learning_starts) ×
replay_ratio × median step time`` (acting and replay sampling not included).
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from core import step_cost
from core.types import EnvSpec

from algorithms.bbf import agent, train


def random_batch(key, cfg, spec: EnvSpec) -> agent.Batch:
    keys = jax.random.split(key, 6)
    b, k, shape = cfg.batch_size, cfg.spr_steps, spec.observation_shape
    image = lambda kk, s: jax.random.randint(kk, s, 0, 256).astype(spec.observation_dtype)  # noqa: E731
    return agent.Batch(observation=image(keys[0], (b, *shape)),
                       action=jax.random.randint(keys[1], (b,), 0, spec.num_actions),
                       reward=jax.random.uniform(keys[2], (b,)), discount=jnp.full((b,), 0.99),
                       next_observation=image(keys[3], (b, *shape)),
                       future_observation=image(keys[4], (b, k, *shape)),
                       future_action=jax.random.randint(keys[5], (b, k), 0, spec.num_actions),
                       future_mask=jnp.ones((b, k)))


def measure(cfg, spec: EnvSpec, steps: int) -> dict:
    net = agent.make_bbf_network(agent.network_config(cfg), spec.num_actions)
    optimizer = agent.make_optimizer(cfg)
    update = jax.jit(agent.make_learner_update(cfg, net, optimizer), donate_argnums=0)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *spec.observation_shape), spec.observation_dtype),
                      jnp.zeros((1, cfg.spr_steps), jnp.int32))
    state = agent.TrainState(params=params, target_params=jax.tree.map(jnp.copy, params),
                             opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32),
                             key=jax.random.PRNGKey(1))
    batch = random_batch(jax.random.PRNGKey(2), cfg, spec)
    weight = jnp.ones((cfg.batch_size,))

    def step(compiled, carry):
        state, i = carry
        state, loss, _ = compiled(state, batch, weight, jax.random.PRNGKey(10 + i))
        return (state, i + 1), loss

    timings, _, loss = step_cost.measure_steps(lambda: update.lower(state, batch, weight, jax.random.PRNGKey(3)),
                                               step, (state, 0), steps)
    step_s, step_cpu_s = timings["median_step_s"], timings["median_step_cpu_s"]
    updates = (cfg.total_steps - cfg.learning_starts) * cfg.replay_ratio
    return {
        "observation_shape": list(spec.observation_shape), "batch_size": cfg.batch_size,
        "impala_width": cfg.impala_width, "hidden_dim": cfg.hidden_dim, "spr_steps": cfg.spr_steps,
        "parameters": int(sum(x.size for x in jax.tree.leaves(params))), **timings,
        "gradient_steps_per_run": int(updates), "projected_learner_hours_per_run": round(updates * step_s / 3600, 1),
        "projected_learner_cpu_hours_per_run": round(updates * step_cpu_s / 3600, 1),
        "loss_finite": bool(np.isfinite(float(loss))), **step_cost.provenance(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m algorithms.bbf.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", choices=sorted(train.PRESETS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num-actions", type=int, default=18)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cfg = train.PRESETS[args.preset][1]
    if agent.channels_first(cfg):
        spec = EnvSpec(env_id=cfg.env_id, observation_shape=(4, 84, 84), observation_dtype=np.uint8,
                       num_actions=args.num_actions)
    else:
        spec = EnvSpec(env_id=cfg.env_id, observation_shape=(10, 10, 4), observation_dtype=np.float32,
                       num_actions=args.num_actions)
    step_cost.write_result({"preset": args.preset, **measure(cfg, spec, args.steps)}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
