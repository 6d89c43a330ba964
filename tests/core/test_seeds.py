"""core.seeds: N seeds in one jitted program equal N single-seed runs of the same agent."""
import dataclasses

import jax
import numpy as np
import pytest

import environments
from algorithms.dqn import loop
from algorithms.dqn import train as dqn
from core.seeds import make_seeds_trainer


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_vmapped_seeds_equal_single_seed_runs():
    cfg = dataclasses.replace(dqn.PRESETS["smoke"][1], env_id="gymnax/CartPole-v1", num_envs=2, learning_starts=20,
                              buffer_size=200, batch_size=8, train_every=4, hidden_sizes=(16,), log_every=64,
                              target_update_every=5, progress=False, num_devices=1)
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
