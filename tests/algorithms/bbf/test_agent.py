"""BBF agent pieces: network shapes, the reset, sampling with a traced n, AdamW's mask, replay ratio."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.bbf import agent, train
from algorithms.bbf.networks import BBFNetworkConfig, make_bbf_network
from core import replay
from core.types import StepType, TimeStep, TrainState

SMOKE = train.PRESETS["smoke"][1]
TINY = BBFNetworkConfig(impala_width=1, impala_channels=(4, 8), impala_blocks=1, hidden_dim=16, num_atoms=5,
                        channels_first=False)


@pytest.fixture(scope="module")
def tiny():
    net = make_bbf_network(TINY, 3)
    obs = jnp.zeros((2, 10, 10, 4))
    params = net.init(jax.random.PRNGKey(0), obs, jnp.zeros((2, 3), jnp.int32))
    return net, params


@pytest.mark.slow  # ~30 s CPU (the fixture's network init); renormalisation's range is also tested fast in test_bbf
def test_network_output_shapes_and_dtypes(tiny):
    net, params = tiny
    obs = jax.random.uniform(jax.random.PRNGKey(1), (2, 10, 10, 4))
    latent = net.encode(params, obs)
    chex.assert_shape(latent, (2, 3, 3, 8))  # 10 → 5 → 3 pixels after two max-pools
    chex.assert_type([latent], float)
    assert float(latent.min()) >= 0.0 and float(latent.max()) <= 1.0  # renormalised
    logits = net.q_network.apply(params, obs)
    chex.assert_shape(logits, (2, 3, 5))
    chex.assert_type(logits, jnp.float32)
    np.testing.assert_allclose(logits, net.q_logits(params, latent), rtol=1e-6)
    rolled = net.rollout(params, latent, jnp.array([[0, 1, 2], [2, 2, 0]]))
    chex.assert_shape(rolled, (2, 3, 3, 3, 8))
    chex.assert_shape(net.predict(params, rolled[:, 0]), (2, 16))
    chex.assert_shape(net.project(params, latent), (2, 16))
    assert set(k.split("/")[0] for k in params) == {"encoder", "transition_model", "projection", "predictor", "head"}


def test_paper_network_is_impala_x4_with_fifteen_convolutions():
    net = make_bbf_network(BBFNetworkConfig(channels_first=True), 6)
    shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 84, 84), jnp.uint8),
                                             jnp.zeros((1, 5), jnp.int32)))
    encoder = {k: v["w"].shape for k, v in shapes.items() if k.startswith("encoder")}
    assert len(encoder) == 15
    assert sorted({s[-1] for s in encoder.values()}) == [64, 128]
    assert shapes["projection"]["w"].shape == (11 * 11 * 128, 2048)  # 84 → 42 → 21 → 11
    assert shapes["head/advantage"]["w"].shape == (2048, 6 * 51)
    assert shapes["transition_model/conv0"]["w"].shape == (3, 3, 128 + 6, 128)  # action planes


@pytest.mark.slow  # ~45 s CPU; shrink-and-perturb's interpolation is tested fast in test_bbf
def test_reset_networks(tiny):
    net, params = tiny
    cfg = SMOKE
    optimizer = agent.make_optimizer(cfg)
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    target_params = net.init(keys[0], jnp.zeros((1, 10, 10, 4)), jnp.zeros((1, 3), jnp.int32))
    fresh, fresh_target = (net.init(k, jnp.zeros((1, 10, 10, 4)), jnp.zeros((1, 3), jnp.int32)) for k in keys[1:])
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = optimizer.update(grads, optimizer.init(params), params)  # non-trivial moments

    before = TrainState(params=params, target_params=target_params, opt_state=opt_state,
                        step=jnp.int32(7), key=jax.random.PRNGKey(0))
    after = agent.reset_networks(before, fresh, fresh_target, cfg=cfg, optimizer=optimizer)
    for path in params:
        group = path.split("/")[0]
        for name in params[path]:
            old, new = params[path][name], after.params[path][name]
            old_t, new_t = target_params[path][name], after.target_params[path][name]
            if group in ("encoder", "transition_model"):
                np.testing.assert_allclose(new, 0.5 * old + 0.5 * fresh[path][name], rtol=1e-6)
                np.testing.assert_allclose(new_t, 0.5 * old_t + 0.5 * fresh_target[path][name], rtol=1e-6)
            else:
                np.testing.assert_array_equal(new, fresh[path][name])
                np.testing.assert_array_equal(new_t, fresh_target[path][name])
    reinit = optimizer.init(after.params)
    jax.tree.map(np.testing.assert_array_equal, after.opt_state, reinit)
    assert any(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(opt_state))  # the old state was not trivial
    kept = agent.reset_networks(before, fresh, fresh_target, cfg=dataclasses.replace(cfg, reset_target=False),
                                optimizer=optimizer)
    jax.tree.map(np.testing.assert_array_equal, kept.target_params, target_params)


def test_adamw_decays_weights_but_not_biases():
    # A hand-built parameter tree of the network's layout (haiku: module -> {"w", "b"}).
    params = {"encoder/conv0": {"w": jnp.arange(1.0, 28.0).reshape(3, 3, 3, 1), "b": jnp.ones(1)},
              "head/advantage": {"w": -jnp.arange(1.0, 7.0).reshape(2, 3), "b": jnp.full(3, 2.0)}}
    cfg = dataclasses.replace(SMOKE, weight_decay=0.1, learning_rate=1e-2)
    optimizer = agent.make_optimizer(cfg)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    for path in params:
        np.testing.assert_allclose(updates[path]["w"], -1e-2 * 0.1 * params[path]["w"], rtol=1e-5, atol=1e-12)
        np.testing.assert_array_equal(updates[path]["b"], 0.0)


def _filled_buffer():
    """One env, 12 rows: episode A = rows 0..4 (LAST at 4, terminal), episode B from row 5."""
    state = replay.init(capacity=12, num_envs=1, observation_shape=(1,), observation_dtype=jnp.float32)
    types = [StepType.FIRST, 1, 1, 1, StepType.LAST, StepType.FIRST, 1, 1, 1, 1, 1, 1]
    for t, step_type in enumerate(types):
        ts = TimeStep(step_type=jnp.array([step_type], jnp.int8), reward=jnp.array([float(t)]),
                      discount=jnp.array([0.0 if t == 4 else 1.0]), observation=jnp.array([[10.0 * t]]))
        state = replay.add(state, ts, jnp.array([100 + t]))
    return state


def test_gather_batch_with_traced_n_and_spr_masks():
    storage = _filled_buffer()
    idx = replay.Indices(row=jnp.array([1, 5]), env=jnp.array([0, 0]))
    gather = jax.jit(lambda n, g: agent.gather_batch(storage, idx, horizon=5, spr_steps=4, n=n, gamma=g))
    batch = gather(jnp.int32(3), jnp.float32(0.5))
    # row 1, n = 3: r2 + 0.5 r3 + 0.25 r4 = 2 + 1.5 + 1 = 4.5; step 4 terminates (d = 0)
    # row 5, n = 3: r6 + 0.5 r7 + 0.25 r8 = 6 + 3.5 + 2 = 11.5; bootstrap γ³ from s_8
    np.testing.assert_allclose(batch.reward, [4.5, 11.5])
    np.testing.assert_allclose(batch.discount, [0.0, 0.125])
    np.testing.assert_allclose(batch.next_observation[:, 0], [40.0, 80.0])
    batch = gather(jnp.int32(5), jnp.float32(0.5))  # row 1 stops at the LAST of row 4 whatever n
    np.testing.assert_allclose(batch.reward, [4.5, 6 + 3.5 + 2 + 1.125 + 0.625])
    np.testing.assert_allclose(batch.discount, [0.0, 0.5 ** 5])
    np.testing.assert_allclose(batch.future_observation[..., 0], [[20, 30, 40, 50], [60, 70, 80, 90]])
    np.testing.assert_array_equal(batch.future_action, [[101, 102, 103, 104], [105, 106, 107, 108]])
    np.testing.assert_array_equal(batch.future_mask, [[1, 1, 1, 0], [1, 1, 1, 1]])  # row 5 is episode B


def test_replay_ratio_sets_gradient_steps_per_environment_step():
    for ratio in (2, 8):
        cfg = dataclasses.replace(train.PRESETS["cpu"][1], gradient_steps=ratio)
        assert cfg.replay_ratio == ratio and cfg.updates_per_call == ratio and cfg.calls_per_update == 1
    assert train.PRESETS["paper"][1].replay_ratio == 8
