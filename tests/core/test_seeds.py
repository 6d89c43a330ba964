"""core.seeds: N seeds in one jitted program equal N single-seed runs of the same agent."""
import dataclasses
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from algorithms.dqn import loop
from algorithms.dqn import train as dqn
from core import parallel
from core.seeds import make_seeds_trainer


def _tiny_config(**overrides):
    fields = dict(env_id="gymnax/CartPole-v1", num_envs=2, learning_starts=20, buffer_size=200, batch_size=8,
                  train_every=4, hidden_sizes=(16,), log_every=64, target_update_every=5, progress=False, num_devices=1)
    return dataclasses.replace(dqn.PRESETS["smoke"][1], **{**fields, **overrides})


class _Toy(NamedTuple):
    w: jax.Array  # [D] float32: the "parameters", updated data-parallel like the agents' learners
    calls: jax.Array  # [] int32: agent steps so far


def _toy_agent_and_env(num_envs: int):
    """A minimal agent whose ``learn`` goes through :func:`core.parallel.data_parallel`, as the real learners do."""
    update = parallel.data_parallel(lambda w, x: w - 0.1 * parallel.pmean(jnp.mean(x, 0)), parallel.local_mesh(1),
                                    num_replicated=1, num_sharded=1)
    agent = SimpleNamespace(
        init=lambda key: _Toy(w=jax.random.normal(key, (3,)), calls=jnp.zeros((), jnp.int32)),
        observe=lambda s, obs: (s._replace(calls=s.calls + 1), jnp.zeros((num_envs,), jnp.int32)),
        should_learn=lambda s: s.calls % 2 == 0,
        learn=lambda s: s._replace(w=update(s.w, jnp.tile(s.w, (4, 1)))))
    env = SimpleNamespace(reset=lambda key, n: (jnp.zeros((n, 3)), jnp.zeros((n, 3))),
                          step=lambda key, es, a: (es + 1.0, es + jax.random.normal(key, es.shape)))
    return agent, env


def test_chunk_compiles_once():
    """The state after a chunk carries the learner's mesh in its leaves' types; that must not recompile the loop.

    (With a plain ``jax.jit`` the second chunk retraced and recompiled the whole program: 15–40 s of the DQN
    loop inside the timed window of the seeds benchmark.)
    """
    agent, env = _toy_agent_and_env(num_envs=2)
    seeds = make_seeds_trainer(agent, env, num_envs=2, steps=4)
    state = jax.block_until_ready(seeds.run_chunk(seeds.init(jax.vmap(jax.random.PRNGKey)(np.arange(3)))))
    assert seeds.compile_s() > 0
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for _ in range(2):
            state = jax.block_until_ready(seeds.run_chunk(state))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    np.testing.assert_array_equal(state[0].calls, [12, 12, 12])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_vmapped_seeds_equal_single_seed_runs():
    cfg = _tiny_config()
    env = environments.make_jax(cfg.env_id)
    seeds = make_seeds_trainer(dqn.make_agent(cfg, env.spec), env, num_envs=cfg.num_envs,
                               steps=cfg.log_every // cfg.num_envs)
    state = seeds.run_chunk(seeds.init(jax.vmap(jax.random.PRNGKey)(np.arange(2))))
    single = loop.make_trainer(cfg)
    for seed in range(2):
        one = single.run_chunk(single.init(jax.random.PRNGKey(seed)))[0]
        assert int(one.train.step) == int(state[0].train.step[seed]) > 0  # learned on the same schedule
        np.testing.assert_array_equal(state[0].replay.action[seed], one.replay.action)
        for a, b in zip(jax.tree.leaves(one.train.params), jax.tree.leaves(state[0].train.params)):
            np.testing.assert_allclose(b[seed], a, rtol=1e-5, atol=1e-6)
    first = jax.tree.leaves(state[0].train.params)[0]
    assert not np.allclose(first[0], first[1])  # the seeds differ
