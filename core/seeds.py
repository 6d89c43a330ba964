"""N seeds of an agent in one jitted program (JAX environments): ``vmap`` over seeds inside ``lax.scan``.

The agent's learning schedule (``should_learn``: replay warm-up, every ``train_every``
steps) depends on step counters only, which are equal across seeds, so it is decided once
for all seeds and the learner is ``vmap``'d inside one ``lax.cond``. (A ``vmap`` of the
single-seed step would turn its ``lax.cond`` into a select and run the learner at every
step for every seed.) Each seed's result equals the single-seed program's with the same key.

The chunk is compiled once, ahead of time, on the first call (:class:`core.aot.Compiler`, as
the single-seed JAX loop) and that executable is reused: after one chunk the leaves that
passed through the learner's ``shard_map`` carry its mesh in their type, so a plain
``jax.jit`` call would retrace and recompile the whole loop at the second chunk (measured:
15–40 s on 2 CPU cores, which made the vmapped program look 4–5× slower than separate
processes in short benchmarks).

Cost on a CPU (``python -m benchmarks.profile_seeds``, DQN ``cpu`` preset): the replay writes
at a per-seed cursor become scatters under ``vmap`` but stay cheap (acting, storing and
the environment step are under 10 % of a step); the learner update costs the same per seed
vmapped or not, so N vmapped seeds run about as fast as N processes on the same cores and
save N − 1 compiles and processes (``benchmarks/README.md``, "N seeds in one program").

Works with any agent exposing ``init(key)``, ``observe(state, timestep) -> (state,
actions)``, ``should_learn(state) -> []bool`` and ``learn(state) -> state`` (the
value-based agents of ``algorithms/dqn/agent.py`` and the papers' extensions of them),
and a JAX environment with ``reset(key, num_envs)`` and ``step(key, env_state, actions)``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from core.aot import Compiler


class SeedsTrainer(NamedTuple):
    """``init(keys [N, 2]) -> state``, ``run_chunk(state) -> state`` (``steps`` agent steps of every seed)."""

    init: Callable[[Any], Any]
    run_chunk: Callable[[Any], Any]  # compiles on the first call for a state's shapes, then reuses it
    compile_s: Callable[[], float] = lambda: 0.0  # seconds spent compiling the chunk so far
    jitted_chunk: Any = None  # the chunk as a `jax.jit` (donating its argument): `.lower(state)` to inspect it


def make_seeds_trainer(agent: Any, env: Any, *, num_envs: int, steps: int) -> SeedsTrainer:
    """N seeds (the leading axis of ``init``'s keys) trained side by side in one jitted chunk.

    Args:
      agent: the pure functions ``init``, ``observe``, ``should_learn``, ``learn``.
      env: a JAX environment (``reset(key, num_envs)``, ``step(key, env_state, actions)``).
      num_envs: parallel environments per seed.
      steps: agent steps per chunk (each steps ``num_envs`` environments of every seed).

    Returns:
      :class:`SeedsTrainer`; the state is ``(agent state, (env state, time step, env key))``
      with a leading seed axis on every leaf, as the single-seed JAX loop's state.
    """

    def init_one(key):
        agent_key, env_key = jax.random.split(key)
        env_state, timestep = env.reset(env_key, num_envs)
        return agent.init(agent_key), (env_state, timestep, jax.random.fold_in(env_key, 1))

    def chunk(state):
        loop, (env_state, timestep, env_key) = state

        def body(carry, _):
            loop, env_state, timestep, env_key = carry
            loop, actions = jax.vmap(agent.observe)(loop, timestep)
            learn_now = agent.should_learn(jax.tree.map(lambda x: x[0], loop))  # same for every seed
            loop = jax.lax.cond(learn_now, jax.vmap(agent.learn), lambda s: s, loop)
            keys = jax.vmap(jax.random.split)(env_key)
            env_key, step_key = keys[:, 0], keys[:, 1]
            env_state, timestep = jax.vmap(env.step)(step_key, env_state, actions)
            return (loop, env_state, timestep, env_key), None

        (loop, env_state, timestep, env_key), _ = jax.lax.scan(
            body, (loop, env_state, timestep, env_key), None, length=steps)
        return loop, (env_state, timestep, env_key)

    compiler = Compiler()  # keyed by shapes and dtypes: the mesh in the leaves' types is not a new signature
    run_chunk = compiler(chunk, donate_argnums=0)
    return SeedsTrainer(init=jax.jit(jax.vmap(init_one)), run_chunk=run_chunk, compile_s=lambda: compiler.seconds,
                        jitted_chunk=run_chunk.jitted)
