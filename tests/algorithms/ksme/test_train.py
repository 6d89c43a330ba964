"""KSMe/MICo agents and script: the loss hook, the representation, presets, the CLI contract."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.dqn import agent as dqn_agent
from algorithms.ksme import networks, train
from core import metrics
from core.networks import make_q_network
from core.types import EnvSpec, Transition

SMOKE = train.PRESETS["smoke"][1]
SPEC = EnvSpec(env_id="Breakout-MinAtar", observation_shape=(10, 10, 4), observation_dtype=np.float32, num_actions=3)


def _batch(key, size=8):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    obs = lambda k: (jax.random.uniform(k, (size, 10, 10, 4)) < 0.2).astype(jnp.float32)  # noqa: E731
    return Transition(observation=obs(k1), action=jax.random.randint(k2, (size,), 0, 3),
                      reward=(jax.random.uniform(k3, (size,)) < 0.3).astype(jnp.float32),
                      discount=jnp.full((size,), 0.99), next_observation=obs(k4),
                      next_action=jnp.zeros((size,), jnp.int32))


def _update(cfg, agent_fn, key):
    agent = agent_fn(cfg, SPEC)
    state = agent.init(jax.random.PRNGKey(0))
    train_state, loss, _ = jax.jit(agent.learner_update)(state.train, _batch(key), jnp.ones(8), key)
    return train_state.params, float(loss)


def test_representation_network_has_the_baseline_parameters():
    net = networks.make_representation_q_network(SMOKE.network, 3)
    base = make_q_network(SMOKE.network, 3)
    obs = jnp.zeros((2, 10, 10, 4))
    params = net.q_network.init(jax.random.PRNGKey(0), obs)
    assert jax.tree.structure(params) == jax.tree.structure(base.init(jax.random.PRNGKey(0), obs))
    np.testing.assert_allclose(net.q_network.apply(params, obs), base.apply(params, obs))
    assert net.representation(params, obs).shape == (2, 8 * 8 * 16)  # the MinAtar torso's flattened output


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_metric_weight_zero_is_the_base_agent_and_positive_weights_change_the_update():
    key = jax.random.PRNGKey(3)
    cfg = dataclasses.replace(SMOKE, batch_size=8)
    base_params, base_loss = _update(cfg, dqn_agent.make_agent, key)
    zero_params, zero_loss = _update(dataclasses.replace(cfg, metric_weight=0.0), train.make_agent, key)
    assert zero_loss == pytest.approx(base_loss, rel=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), zero_params, base_params)
    for metric in ("ksme", "mico"):
        params, loss = _update(dataclasses.replace(cfg, metric=metric, metric_weight=0.5), train.make_agent, key)
        assert loss != pytest.approx(base_loss, rel=1e-3)
        torso = [k for k in params if "conv" in k][0]
        assert not np.allclose(params[torso]["w"], base_params[torso]["w"])


def test_presets():
    paper, der = train.PRESETS["paper"][1], train.PRESETS["paper_der"][1]
    assert (paper.metric, paper.metric_weight, paper.torso, paper.n_step) == ("ksme", 0.01, "nature", 1)
    assert paper.reward_min == -1.0 and paper.reward_clip and paper.atari_protocol == "atari200m"
    assert (der.num_atoms, der.n_step, der.atari_protocol, der.reward_min) == (51, 10, "atari100k", -1.0)
    assert train.PRESETS["cpu"][1].total_steps == 30_000


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_run_logs_the_metric_loss(tmp_path):
    out = str(tmp_path / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    assert summary["algorithm"] == "ksme_dqn" and summary["headline"]["value"] is not None
    last = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))[-1]
    assert np.isfinite(last["metric_loss"]) and last["representation_norm"] > 0
    assert os.path.isdir(os.path.join(out, "checkpoints"))


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_help_and_bad_input(tmp_path, scripts):
    result = scripts.run("algorithms.ksme.train", "--help")
    assert result.returncode == 0 and "--metric" in result.stdout and "--similarity" in result.stdout
    result = scripts.run("algorithms.ksme.train", "smoke", "--metric", "bisim", "--out-dir", str(tmp_path / "x"))
    assert result.returncode == 2 and "--metric: unknown 'bisim'" in result.stderr, result.stderr
    assert not os.path.exists(tmp_path / "x")
