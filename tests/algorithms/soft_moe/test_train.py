"""Soft MoE value networks, the MoE agent and its script: shapes, baselines, presets, CLI contract."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.soft_moe import networks, train
from core import metrics
from core.networks import NetworkConfig, layer_call_order

SMOKE = train.PRESETS["smoke"][1]
MINATAR = NetworkConfig(torso="minatar", channels_first=False)


def _init(moe_cfg, cfg=MINATAR, shape=(2, 10, 10, 4), actions=3):
    net = networks.make_moe_q_network(cfg, moe_cfg, actions)
    obs = jax.random.uniform(jax.random.PRNGKey(0), shape)
    return net, net.q_network.init(jax.random.PRNGKey(1), obs), obs


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
@pytest.mark.parametrize("experts", [1, 2, 4, 8])
def test_soft_moe_network_shapes_and_parameter_growth(experts):
    cfg = networks.MoENetworkConfig(num_experts=experts, expert_hidden=32)
    net, params, obs = _init(cfg)
    assert net.q_network.apply(params, obs).shape == (2, 3)
    moe = params["moe"]
    slots = -(-64 // experts)  # 8×8 PerConv tokens of 16 channels
    assert moe["phi"].shape == (16, experts, slots)
    assert moe["w1"].shape == (experts, 16, 32) and moe["w2"].shape == (experts, 32, 16)
    head = next(v for k, v in params.items() if k.endswith("linear"))
    assert head["w"].shape == (64 * 16, 3)  # flattened output tokens → Q-values
    out = net.moe_outputs(params, obs)
    assert out.output.shape == (2, 64, 16) and out.expert_hidden.shape == (2, experts, slots, 32)
    np.testing.assert_allclose(out.combine.sum(axis=(-2, -1)), 1.0, atol=1e-5)


def test_dense_baseline_is_the_penultimate_layer_widened_by_the_expert_count():
    net, params, obs = _init(networks.MoENetworkConfig(moe="none", num_experts=4, expert_hidden=32))
    assert net.moe_outputs is None
    widths = sorted(v["w"].shape for k, v in params.items() if "linear" in k)
    assert widths == [(32 * 4, 3), (64 * 16, 32 * 4)]
    assert net.q_network.apply(params, obs).shape == (2, 3)


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_top1_router_noise_only_with_a_key():
    cfg = networks.MoENetworkConfig(moe="top1", num_experts=4, expert_hidden=16, router_noise=1.0)
    net, params, obs = _init(cfg)
    apply = net.q_network.apply
    np.testing.assert_array_equal(apply(params, obs), apply(params, obs))
    assert not np.allclose(apply(params, obs, key=jax.random.PRNGKey(2)), apply(params, obs, key=jax.random.PRNGKey(3)))
    out = net.moe_outputs(params, obs)
    assert out.dispatch.shape == (2, 64, 4, 16)  # capacity ⌈64/4⌉ per expert
    assert jnp.all(out.dispatch.sum(axis=(-2, -1)) <= 1.0)  # each token in at most one slot


@pytest.mark.parametrize("tokenization, tokens, dim", [("per_conv", 121, 64), ("per_feature", 64, 121),
                                                       ("per_sample", 1, 121 * 64), ("per_patch", 25, 32)])
def test_tokenisations_of_the_same_padded_nature_cnn(tokenization, tokens, dim):
    cfg = networks.MoENetworkConfig(num_experts=2, expert_hidden=8, tokenization=tokenization, patch_size=2,
                                     patch_embedding=32)
    nature = NetworkConfig(torso="nature", channels_first=True)
    net, params, obs = _init(cfg, nature, shape=(1, 4, 84, 84), actions=6)
    assert net.moe_outputs(params, obs).output.shape == (1, tokens, dim)


def test_layer_outputs_record_the_encoder_and_the_q_layer():
    net, params, obs = _init(networks.MoENetworkConfig(num_experts=2, expert_hidden=8))
    names = layer_call_order(net.q_network, params, obs)
    assert [n.split("/")[-1] for n in names] == ["conv2_d", "linear"]


def test_presets_follow_the_paper():
    paper, impala, der = (train.PRESETS[k][1] for k in ("paper", "paper_impala", "paper_der"))
    assert (paper.num_experts, paper.expert_hidden, paper.torso, paper.nature_padding) == (8, 512, "nature", "SAME")
    assert (impala.num_experts, impala.torso) == (8, "impala")
    assert paper.atari_protocol == "atari200m" and paper.total_steps == 50_000_000
    assert (der.num_experts, der.atari_protocol, der.n_step, der.num_atoms) == (4, "atari100k", 10, 51)
    for cfg in (paper, impala, der):
        assert cfg.moe == "softmoe" and cfg.tokenization == "per_conv" and cfg.head_hidden == 0


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_smoke_run_logs_router_statistics(tmp_path):
    out = str(tmp_path / "run")
    summary = train.main(dataclasses.replace(SMOKE, out_dir=out, progress=False), preset="smoke")
    assert summary["algorithm"] == "dqn_softmoe" and summary["headline"]["value"] is not None
    last = metrics.read_jsonl(os.path.join(out, "metrics.jsonl"))[-1]
    assert 0.0 <= last["router_entropy"] <= np.log(SMOKE.num_experts) + 1e-5
    assert 1 / SMOKE.num_experts <= last["busiest_expert_share"] <= 1.0 and 0.0 <= last["dormant_fraction"] <= 1.0


@pytest.mark.slow  # default-suite budget (under 10 min on 2 cores): subprocess/compile heavy
def test_help_and_bad_input(tmp_path, scripts):
    result = scripts.run("algorithms.soft_moe.train", "--help")
    assert result.returncode == 0 and "--num-experts" in result.stdout and "--tokenization" in result.stdout
    for flag, value, message in (("--moe", "dense", "--moe: unknown"), ("--head-hidden", "64", "--head-hidden: must be 0"),
                                 ("--torso", "mlp", "--torso: the experts read tokens")):
        result = scripts.run("algorithms.soft_moe.train", "smoke", flag, value, "--out-dir", str(tmp_path / "x"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not os.path.exists(tmp_path / "x")
