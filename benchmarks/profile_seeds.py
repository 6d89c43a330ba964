"""Where the time of N vmapped seeds goes: the parts of the DQN ``cpu`` step, single seed against ``vmap`` over N.

    taskset -c 1 python -m benchmarks.profile_seeds [--seeds 1 4 16] [--calls 200]
    taskset -c 1 python -m benchmarks.profile_seeds --ab 1 4      # whole chunks, timed alternately

Each part runs ``--calls`` times inside one jitted ``lax.scan`` (compiled ahead of time, so
no dispatch or compile in the timing), on a replay buffer filled by one chunk of the
single-seed loop (copied N times for the vmapped rows), best of 3:

* ``observe``: act (ε-greedy forward pass) + replay write + MinAtar step, once per env step;
* ``sample``: replay sampling (rejection + the fallback that ``vmap`` turns into a select);
* ``update``: the learner update on a fixed batch (forward, backward, Adam, target);
* ``learn``: sample + update, once per ``train_every`` env steps.

With ``--ab N ...``: whole chunks instead of parts, the single-seed loop
(``algorithms.dqn.loop.make_trainer``) and N vmapped seeds (:func:`core.seeds.make_seeds_trainer`)
compiled in one process and timed alternately, so that a changing load on a shared machine
falls on both alike.

Also counts the scatter ops in the compiled vmapped chunk of :func:`core.seeds.make_seeds_trainer`
(the replay writes at a per-seed cursor become scatters under ``vmap``). Prints a table; writes
nothing. The measured cause it served to find is in ``benchmarks/README.md`` ("N seeds").
"""
from __future__ import annotations

import argparse
import re
import time

PARTS = ("observe", "sample", "update", "learn")


def time_part(part: str, num_seeds: int, calls: int, chunk_steps: int = 2_000) -> float:
    """Seconds per call of ``part`` (``num_seeds = 0``: the single-seed function, no vmap)."""
    import jax
    import jax.numpy as jnp

    import environments
    from algorithms.dqn import loop
    from benchmarks.bench_agents import cpu_config

    cfg, agent_fn = cpu_config("dqn", chunk_steps)
    env = environments.make_jax(cfg.env_id)
    agent = agent_fn(cfg, env.spec)
    trainer = loop.make_trainer(cfg, agent_fn)
    state, (env_state, timestep, env_key) = jax.block_until_ready(trainer.run_chunk(trainer.init(jax.random.PRNGKey(0))))
    vmapped = num_seeds > 0
    if vmapped:
        state, env_state, timestep = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_seeds, *x.shape)).copy(),
                                                  (state, env_state, timestep))
        env_key = jax.random.split(jax.random.PRNGKey(1), num_seeds)
    over = jax.vmap if vmapped else (lambda f: f)

    def scan(body, carry):
        return jax.lax.scan(lambda c, _: (body(c), None), carry, None, length=calls)[0]

    if part == "learn":
        fn, args = (lambda s: scan(over(agent.learn), s)), (state,)
    elif part == "sample":
        def sample_once(s):
            s, batch, _, _, _ = agent.sample(s)
            return s._replace(loss_sum=s.loss_sum + jnp.sum(batch.observation))  # keeps the gathers alive
        fn, args = (lambda s: scan(over(sample_once), s)), (state,)
    elif part == "update":
        _, batch, _, weight, loss_key = over(agent.sample)(state)
        fn = lambda train, b, w, k: scan(lambda t: over(agent.learner_update)(t, b, w, k)[0], train)  # noqa: E731
        args = (state.train, batch, weight, loss_key)
    elif part == "observe":
        def observe_once(carry):
            s, es, ts, key = carry
            s, actions = agent.observe(s, ts)
            key, step_key = jax.random.split(key)
            es, ts = env.step(step_key, es, actions)
            return s, es, ts, key
        fn, args = (lambda c: scan(over(observe_once), c)), ((state, env_state, timestep, env_key),)
    else:
        raise ValueError(part)
    compiled = jax.jit(fn, donate_argnums=0).lower(*args).compile()
    args = (jax.block_until_ready(compiled(*args)), *args[1:])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        args = (jax.block_until_ready(compiled(*args)), *args[1:])
        best = min(best, time.perf_counter() - start)
    return best / calls


def count_chunk_ops(num_seeds: int, chunk_steps: int = 100) -> dict:
    """Scatter / gather / dynamic-update-slice counts and scatter shapes in the compiled vmapped chunk."""
    import jax

    import environments
    from benchmarks.bench_agents import cpu_config
    from core.seeds import make_seeds_trainer

    cfg, agent_fn = cpu_config("dqn", chunk_steps)
    env = environments.make_jax(cfg.env_id)
    trainer = make_seeds_trainer(agent_fn(cfg, env.spec), env, num_envs=cfg.num_envs, steps=chunk_steps)
    state = trainer.init(jax.random.split(jax.random.PRNGKey(0), num_seeds))
    text = trainer.jitted_chunk.lower(state).compile().as_text()
    counts = {op: len(re.findall(rf"\s{op}\(", text)) for op in ("scatter", "gather", "dynamic-update-slice")}
    counts["scatter_shapes"] = sorted(set(re.findall(r"= (\w+\[[\d,]+\])\S* scatter\(", text)))
    return counts


def alternate(num_seeds: int, chunk_steps: int = 2_000, rounds: int = 5) -> dict:
    """Median steps/s of the single-seed chunk and of the N-seed vmapped chunk, timed alternately."""
    import jax
    import numpy as np

    import environments
    from algorithms.dqn import loop
    from benchmarks.bench_agents import cpu_config
    from core.seeds import make_seeds_trainer

    cfg, agent_fn = cpu_config("dqn", chunk_steps)
    single = loop.make_trainer(cfg, agent_fn)
    one = jax.block_until_ready(single.run_chunk(single.init(jax.random.PRNGKey(0))))
    env = environments.make_jax(cfg.env_id)
    seeds = make_seeds_trainer(agent_fn(cfg, env.spec), env, num_envs=cfg.num_envs, steps=chunk_steps // cfg.num_envs)
    many = jax.block_until_ready(seeds.run_chunk(seeds.init(jax.random.split(jax.random.PRNGKey(0), num_seeds))))
    single_sps, vmapped_sps = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        one = jax.block_until_ready(single.run_chunk(one))
        single_sps.append(chunk_steps / (time.perf_counter() - start))
        start = time.perf_counter()
        many = jax.block_until_ready(seeds.run_chunk(many))
        vmapped_sps.append(num_seeds * chunk_steps / (time.perf_counter() - start))
    return {"seeds": num_seeds, "single_steps_per_s": float(np.median(single_sps)),
            "vmapped_steps_per_s": float(np.median(vmapped_sps)),
            "ratio": float(np.median(vmapped_sps) / np.median(single_sps))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=(1, 4, 16), help="N of the vmapped rows")
    parser.add_argument("--calls", type=int, default=200, help="calls of each part per timing (÷ N for vmapped)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--ab", type=int, nargs="+", default=(), help="N: whole chunks timed alternately instead")
    args = parser.parse_args()
    if args.ab:
        for n in args.ab:
            r = alternate(n)
            print(f"N = {n}: single-seed loop {r['single_steps_per_s']:,.0f} steps/s, vmapped {n} seed(s) "
                  f"{r['vmapped_steps_per_s']:,.0f} steps/s aggregate, ratio {r['ratio']:.2f}", flush=True)
        return
    print(f"{'part':8s} {'seeds':>10s} {'ms/call':>9s} {'ms/call/seed':>13s}")
    for part in args.parts:
        for n in (0, *args.seeds):
            seconds = time_part(part, n, max(10, args.calls // max(n, 1)))
            label = "single" if n == 0 else f"vmap {n}"
            print(f"{part:8s} {label:>10s} {1e3 * seconds:9.3f} {1e3 * seconds / max(n, 1):13.3f}", flush=True)
    print("ops in the compiled vmapped chunk (N = 4):", count_chunk_ops(4))


if __name__ == "__main__":
    main()
