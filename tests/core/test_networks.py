import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core.networks import NetworkConfig, make_q_network


def _count(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "cfg, obs_shape, dtype",
    [
        (NetworkConfig(torso="mlp", hidden_sizes=(32, 32)), (4,), jnp.float32),
        (NetworkConfig(torso="nature", head_hidden=512), (4, 84, 84), jnp.uint8),
        (NetworkConfig(torso="minatar", head_hidden=128, channels_first=False), (10, 10, 4), jnp.float32),
        (NetworkConfig(torso="impala", impala_width=1), (4, 84, 84), jnp.uint8),
        (NetworkConfig(torso="mlp", dueling=True, hidden_sizes=(16,)), (4,), jnp.float32),
    ],
)
def test_q_network_shapes_and_dtypes(cfg, obs_shape, dtype):
    net = make_q_network(cfg, num_actions=6)
    obs = jnp.zeros((3, *obs_shape), dtype)
    params = net.init(jax.random.PRNGKey(0), obs)
    q = jax.jit(net.apply)(params, obs)
    chex.assert_shape(q, (3, 6))
    chex.assert_type(q, jnp.float32)
    chex.assert_tree_all_finite(q)


def test_nature_cnn_parameter_count_matches_mnih_2015():
    # conv1 4*32*64+32, conv2 32*64*16+64, conv3 64*64*9+64, fc 3136*512+512, out 512*A+A
    net = make_q_network(NetworkConfig(torso="nature", head_hidden=512), num_actions=6)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 84, 84), jnp.uint8))
    expected = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64) + (3136 * 512 + 512) + (512 * 6 + 6)
    assert _count(params) == expected


def test_impala_width_4_has_15_conv_layers_with_bbf_channels():
    net = make_q_network(NetworkConfig(torso="impala", impala_width=4), num_actions=4)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 84, 84), jnp.uint8))
    convs = [v["w"] for k, v in params.items() if "conv" in k.split("/")[-1]]
    assert len(convs) == 15
    assert sorted({w.shape[-1] for w in convs}) == [64, 128]


def test_dueling_head_advantages_are_mean_centred():
    net = make_q_network(NetworkConfig(torso="mlp", hidden_sizes=(8,), dueling=True, num_atoms=0), 5)
    obs = jax.random.normal(jax.random.PRNGKey(1), (7, 3))
    params = net.init(jax.random.PRNGKey(0), obs)
    q = net.apply(params, obs)
    chex.assert_shape(q, (7, 5))
    # Q = V + A − mean_a A: shifting every advantage by a constant leaves Q unchanged,
    # shifting the value stream shifts every Q by the same constant.
    adv = [k for k in params if k.endswith("advantage")][0]
    val = [k for k in params if k.endswith("value")][0]
    shifted = {**params, adv: {**params[adv], "b": params[adv]["b"] + 5.0}}
    np.testing.assert_allclose(net.apply(shifted, obs), q, atol=1e-5)
    shifted = {**params, val: {**params[val], "b": params[val]["b"] + 2.0}}
    np.testing.assert_allclose(net.apply(shifted, obs), q + 2.0, atol=1e-5)


def test_uint8_pixels_are_scaled_to_unit_interval():
    from core.networks import preprocess_observation

    x = jnp.full((1, 4, 2, 2), 255, jnp.uint8)
    y = preprocess_observation(x, channels_first=True)
    chex.assert_shape(y, (1, 2, 2, 4))
    np.testing.assert_allclose(y, 1.0)


def test_noisy_head_samples_noise_with_a_key_and_uses_the_means_without():
    cfg = NetworkConfig(torso="mlp", hidden_sizes=(16,), head_hidden=8, dueling=True, num_atoms=5, noisy=True)
    net = make_q_network(cfg, num_actions=3)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    params = net.init(jax.random.PRNGKey(0), obs)
    noisy_layers = [name for name in params if "w_sigma" in params[name]]
    assert len(noisy_layers) == 4  # value/advantage hidden and output layers of the dueling head
    assert all(set(params[name]) == {"w_mu", "w_sigma", "b_mu", "b_sigma"} for name in noisy_layers)
    mean = net.apply(params, obs)
    chex.assert_shape(mean, (4, 3, 5))
    np.testing.assert_array_equal(mean, net.apply(params, obs, key=None))
    a, b = net.apply(params, obs, key=jax.random.PRNGKey(2)), net.apply(params, obs, key=jax.random.PRNGKey(3))
    assert not np.allclose(a, b) and not np.allclose(a, mean)
    np.testing.assert_array_equal(a, net.apply(params, obs, key=jax.random.PRNGKey(2)))
    # With σ = 0 the noisy forward pass is the mean forward pass.
    zero_sigma = {k: {p: (jnp.zeros_like(v) if p.endswith("sigma") else v) for p, v in layer.items()}
                  for k, layer in params.items()}
    np.testing.assert_allclose(net.apply(zero_sigma, obs, key=jax.random.PRNGKey(2)), mean, rtol=1e-6)


def test_non_noisy_network_ignores_the_key():
    net = make_q_network(NetworkConfig(torso="mlp", hidden_sizes=(8,)), num_actions=2)
    obs = jnp.ones((2, 3))
    params = net.init(jax.random.PRNGKey(0), obs)
    np.testing.assert_array_equal(net.apply(params, obs), net.apply(params, obs, key=jax.random.PRNGKey(5)))


def test_shifted_matmul_conv_equals_haiku_conv2d_with_the_same_parameters():
    import haiku as hk

    from core.networks import ShiftedMatmulConv2D

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 10, 6))
    reference = hk.without_apply_rng(hk.transform(lambda x: hk.Conv2D(16, 3, padding="VALID", name="conv")(x)))
    shifted = hk.without_apply_rng(hk.transform(lambda x: ShiftedMatmulConv2D(16, 3, padding="VALID", name="conv")(x)))
    params = reference.init(jax.random.PRNGKey(1), x)
    params = {"conv": {"w": params["conv"]["w"], "b": jnp.arange(16.0)}}
    assert jax.tree.map(jnp.shape, shifted.init(jax.random.PRNGKey(1), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(shifted.apply(params, x), reference.apply(params, x), atol=1e-5)
    with pytest.raises(ValueError, match="stride 1 and VALID"):
        hk.transform(lambda x: ShiftedMatmulConv2D(16, 3, stride=2)(x)).init(jax.random.PRNGKey(1), x)


def test_layer_outputs_are_the_pre_activations_in_call_order():
    from core.networks import layer_call_order

    net = make_q_network(NetworkConfig(torso="mlp", hidden_sizes=(5, 7)), num_actions=3)
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    params = net.init(jax.random.PRNGKey(1), obs)
    names = layer_call_order(net, params, obs)
    assert [params[n]["w"].shape[1] for n in names] == [5, 7, 3]
    out, outputs = net.layer_outputs(params, obs)
    np.testing.assert_allclose(out, net.apply(params, obs))
    np.testing.assert_allclose(outputs[names[-1]], out)  # the Q layer has no nonlinearity
    first = params[names[0]]
    np.testing.assert_allclose(outputs[names[0]], obs @ first["w"] + first["b"], rtol=1e-5)
