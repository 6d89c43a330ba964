"""ReDo agent and script: layer graph, recycling inside learning, baselines, CLI contract, learning (slow)."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms.dqn import agent as dqn_agent
from algorithms.redo import redo, train
from core import metrics
from core.networks import NetworkConfig, layer_call_order, make_q_network
from core.types import EnvSpec

SMOKE = train.PRESETS["smoke"][1]
SPEC = EnvSpec(env_id="Breakout-MinAtar", observation_shape=(10, 10, 4), observation_dtype=jnp.float32, num_actions=3)


def _names(cfg: NetworkConfig):
    net = make_q_network(cfg, 3)
    dummy = jnp.zeros((1, 10, 10, 4))
    return layer_call_order(net, net.init(jax.random.PRNGKey(0), dummy), dummy)


def test_layer_links_of_the_minatar_network_are_a_chain_ending_before_the_output():
    names = _names(NetworkConfig(torso="minatar", head_hidden=8, channels_first=False))
    assert [n.split("/")[-1] for n in names] == ["conv2_d", "linear", "linear_1"]
    links = train.layer_links(names)
    assert links == [redo.LayerLink(names[0], names[1]), redo.LayerLink(names[1], names[2])]


def test_layer_links_of_a_dueling_head_follow_both_streams():
    names = _names(NetworkConfig(torso="minatar", head_hidden=8, dueling=True, channels_first=False))
    by = {n.split("/")[-1]: n for n in names}
    links = set(train.layer_links(names))
    assert links == {redo.LayerLink(by["conv2_d"], by["value_hidden"]),
                     redo.LayerLink(by["conv2_d"], by["advantage_hidden"]),
                     redo.LayerLink(by["value_hidden"], by["value"]),
                     redo.LayerLink(by["advantage_hidden"], by["advantage"])}


def _filled_agent_state(cfg, steps=400):
    agent = train.make_agent(cfg, SPEC)
    state = agent.init(jax.random.PRNGKey(0))
    from core.types import StepType, TimeStep
    key = jax.random.PRNGKey(1)
    for t in range(steps):
        key, k = jax.random.split(key)
        obs = (jax.random.uniform(k, (cfg.num_envs, 10, 10, 4)) < 0.2).astype(jnp.float32)
        step_type = jnp.full((cfg.num_envs,), StepType.FIRST if t == 0 else StepType.MID, jnp.int8)
        ts = TimeStep(step_type=step_type, reward=jnp.zeros(cfg.num_envs), discount=jnp.ones(cfg.num_envs),
                      observation=obs)
        state, _ = jax.jit(agent.observe)(state, ts)
    return agent, state


def _kill_linear_neurons(state, count):
    """Makes the first ``count`` hidden dense neurons dead: bias −1e3 (ReLU output 0 on any input)."""
    params = {k: dict(v) for k, v in state.train.params.items()}
    hidden = next(k for k in params if k.split("/")[-1] == "linear")
    params[hidden]["b"] = params[hidden]["b"].at[:count].set(-1e3)
    return state._replace(train=state.train._replace(params=params)), hidden


def test_redo_recycles_dead_neurons_at_the_scheduled_step_and_keeps_the_output():
    cfg = dataclasses.replace(SMOKE, learning_starts=0, recycle_period=1, redo_tau=0.0, score_batch_size=32,
                              batch_size=8, head_hidden=16, num_envs=1, learning_rate=1e-12)
    agent, state = _filled_agent_state(cfg)
    state, hidden = _kill_linear_neurons(state, 5)
    out_layer = next(k for k in state.train.params if k.split("/")[-1] == "linear_1")
    learned = jax.jit(agent.learn)(state)
    b_before, b_after = state.train.params[hidden]["b"], learned.train.params[hidden]["b"]
    np.testing.assert_array_equal(b_after[:5], 0.0)  # recycled: bias zeroed
    np.testing.assert_allclose(b_after[5:], b_before[5:], atol=1e-6)  # the rest only moved by a 1e-12 step
    np.testing.assert_array_equal(learned.train.params[out_layer]["w"][:5], 0.0)  # outgoing rows zeroed
    assert not np.allclose(learned.train.params[hidden]["w"][:, :5], state.train.params[hidden]["w"][:, :5])
    # Zero outgoing weights: recycling leaves the Q-values of any input unchanged at that moment.
    obs = jax.random.uniform(jax.random.PRNGKey(3), (4, 10, 10, 4))
    np.testing.assert_allclose(agent.network.apply(learned.train.params, obs),
                               agent.network.apply(state.train.params, obs), atol=1e-4)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_no_recycling_off_schedule():
    cfg = dataclasses.replace(SMOKE, learning_starts=0, recycle_period=1_000, redo_tau=0.0, score_batch_size=32,
                              batch_size=8, head_hidden=16, learning_rate=1e-12)
    agent, state = _filled_agent_state(cfg)
    state, hidden = _kill_linear_neurons(state, 5)
    learned = jax.jit(agent.learn)(state)
    np.testing.assert_array_equal(learned.train.params[hidden]["b"][:5], -1e3)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_reset_baseline_reinitialises_exactly_the_last_layers_and_their_adam_moments():
    cfg = dataclasses.replace(SMOKE, recycle="reset", reset_layers=1, learning_starts=0, recycle_period=1,
                              batch_size=8, head_hidden=16)
    agent, state = _filled_agent_state(cfg)
    state = jax.jit(agent.learn)(state)  # moments are non-zero after an update
    again = jax.jit(agent.learn)(state)
    out_layer = next(k for k in state.train.params if k.split("/")[-1] == "linear_1")
    fresh_w = again.train.params[out_layer]["w"]
    np.testing.assert_array_equal(again.train.params[out_layer]["b"], 0.0)
    assert abs(float(jnp.std(fresh_w)) - 1 / np.sqrt(16)) < 0.1  # a fresh LeCun draw, not the trained weights
    adam = [s for s in jax.tree.leaves(again.train.opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]
    np.testing.assert_array_equal(adam.mu[out_layer]["w"], 0.0)
    conv = next(k for k in state.train.params if k.endswith("conv2_d"))
    assert float(jnp.abs(adam.mu[conv]["w"]).sum()) > 0  # untouched layers keep their moments


def test_weight_decay_sits_ahead_of_adam_in_the_chain():
    opt = dqn_agent.make_optimizer(dataclasses.replace(SMOKE, weight_decay=0.1))
    params = {"w": jnp.ones(3)}
    updates, _ = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
    # Zero loss gradient: the only gradient is g = λθ = 0.1; Adam's first step is −lr · g / (|g| + ε).
    np.testing.assert_allclose(updates["w"], -SMOKE.learning_rate * 0.1 / (0.1 + SMOKE.adam_eps), rtol=1e-5)


def test_replay_ratio_counts_gradient_steps():
    cfg = dataclasses.replace(SMOKE, gradient_steps=4, train_every=1)
    assert cfg.replay_ratio == 4 and cfg.updates_per_call == 4
    assert cfg.total_updates == 4 * (cfg.total_steps - cfg.learning_starts)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_logs_dormant_fractions(tmp_path):
    out = str(tmp_path / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    assert summary["algorithm"] == "redo_redo" and summary["headline"]["value"] is not None
    records = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))
    for r in records:
        assert 0.0 <= r["dormant_fraction"] <= 1.0 and r["dead_fraction"] <= r["dormant_fraction"]
        assert "dormant/conv2_d" in r and "dormant/linear" in r
    header = open(os.path.join(out, "metrics.csv")).readline()
    assert "dormant_fraction" in header


@pytest.mark.slow  # the default suite keeps one SIGKILL-and-resume test: the DQN script's
def test_a_sigkilled_run_resumes_identically(tmp_path, scripts):
    out = str(tmp_path / "run")
    train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    resumed_dir = str(tmp_path / "resumed")
    scripts.kill_at_checkpoint_and_resume("algorithms.redo.train", "smoke", resumed_dir, 1_500)
    assert scripts.learning_metrics(resumed_dir) == scripts.learning_metrics(out)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_help_and_bad_input(tmp_path, scripts):
    result = scripts.run("algorithms.redo.train", "--help")
    assert result.returncode == 0 and "--redo-tau" in result.stdout and "--gradient-steps" in result.stdout
    for flag, value, message in (("--recycle", "sometimes", "--recycle: unknown mode"),
                                 ("--recycle-period", "3", "--recycle-period: must be a multiple"),
                                 ("--torso", "impala", "--torso: ReDo here needs")):
        extra = ["--gradient-steps", "2"] if flag == "--recycle-period" else []
        result = scripts.run("algorithms.redo.train", "smoke", flag, value, *extra, "--out-dir", str(tmp_path / "x"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not os.path.exists(tmp_path / "x")


def test_paper_presets():
    dqn, drq = train.PRESETS["paper"][1], train.PRESETS["paper_drq"][1]
    assert dqn.replay_ratio == 1 and dqn.total_steps * 4 == 10_000_000 and dqn.redo_tau == 0.1
    assert drq.atari_protocol == "atari100k" and drq.augment_pad == 4 and drq.replay_ratio == 1
    for cfg in (dqn, drq):
        assert cfg.recycle == "redo" and cfg.recycle_period == 1_000 and cfg.score_batch_size == 256


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_dormant_fraction_stays_low_with_redo_at_replay_ratio_4(tmp_path):
    base = dataclasses.replace(train.PRESETS["cpu"][1], total_steps=10_000, gradient_steps=4,
                               target_update_every=4_000, eval_every=10_000, checkpoint_every=10_000,
                               progress=False)
    final = {}
    for mode in ("none", "redo"):
        out = str(tmp_path / mode)
        train.main(dataclasses.replace(base, recycle=mode, out_dir=out), preset="cpu")
        final[mode] = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))[-1]["dormant_fraction"]
    assert final["redo"] < final["none"]
