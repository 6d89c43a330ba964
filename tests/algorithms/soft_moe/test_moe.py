"""Soft MoE / Top-1 MoE layers, losses and tokenisers (arXiv 2402.08609, 2308.00951)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.soft_moe import moe

T, D, E, S, H, O = 6, 5, 3, 2, 4, 7


def _setup(seed=0, experts=E, slots=S):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    tokens = jax.random.normal(k1, (T, D))
    phi = jax.random.normal(k2, (D, experts, slots))
    params = moe.init_experts(k3, num_experts=experts, in_dim=D, hidden=H, out_dim=O)
    return tokens, phi, params


class SoftMoETest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_dispatch_columns_and_combine_rows_sum_to_one_and_shapes(self):
        tokens, phi, params = _setup()
        out = self.variant(lambda x, p, e: moe.soft_moe(x, p, e))(tokens, phi, params)
        chex.assert_shape(out.output, (T, O))
        chex.assert_shape([out.dispatch, out.combine], [(T, E, S)] * 2)
        chex.assert_shape(out.expert_hidden, (E, S, H))
        np.testing.assert_allclose(out.dispatch.sum(axis=0), np.ones((E, S)), rtol=1e-5)
        np.testing.assert_allclose(out.combine.sum(axis=(1, 2)), np.ones(T), rtol=1e-5)
        np.testing.assert_allclose(out.expert_probability, out.combine.sum(-1), rtol=1e-6)
        np.testing.assert_array_equal(out.top_expert, np.argmax(out.expert_probability, -1))


def test_permuting_tokens_permutes_the_outputs():
    tokens, phi, params = _setup(1)
    perm = jnp.array([3, 0, 5, 1, 4, 2])
    a = moe.soft_moe(tokens, phi, params, normalize=True, scale=2.0).output
    b = moe.soft_moe(tokens[perm], phi, params, normalize=True, scale=2.0).output
    np.testing.assert_allclose(b, a[perm], rtol=1e-5, atol=1e-6)


def test_one_expert_one_slot_closed_form():
    tokens, phi, params = _setup(2, experts=1, slots=1)
    out = moe.soft_moe(tokens, phi, params)
    weights = jax.nn.softmax(tokens @ phi[:, 0, 0])  # dispatch over tokens
    slot = weights @ tokens
    expected = jax.nn.relu(slot @ params.w1[0] + params.b1[0]) @ params.w2[0] + params.b2[0]
    np.testing.assert_allclose(out.output, np.tile(expected, (T, 1)), rtol=1e-5, atol=1e-6)  # combine ≡ 1


@pytest.mark.parametrize("tokens, experts, factor, slots", [(121, 8, 1.0, 16), (49, 4, 1.0, 13), (8, 8, 1.0, 1),
                                                            (10, 4, 2.0, 5), (1, 8, 1.0, 1)])
def test_slots_formula(tokens, experts, factor, slots):
    assert moe.num_slots(tokens, experts, factor) == slots


def test_top1_drops_tokens_over_capacity():
    tokens = jnp.ones((4, D))
    router = jnp.zeros((D, 2)).at[:, 0].set(1.0)  # every token prefers expert 0
    params = moe.init_experts(jax.random.PRNGKey(0), num_experts=2, in_dim=D, hidden=H, out_dim=O)
    out = moe.top1_moe(tokens, router, params, capacity_factor=1.0)  # capacity ⌈4/2⌉ = 2
    np.testing.assert_array_equal(out.top_expert, [0, 0, 0, 0])
    np.testing.assert_array_equal(out.dispatch.sum(axis=(1, 2)), [1, 1, 0, 0])
    assert np.all(np.asarray(out.output[2:]) == 0.0) and np.any(np.asarray(out.output[:2]) != 0.0)
    gate = jax.nn.softmax(tokens[0] @ router)[0]
    expected = gate * (jax.nn.relu(tokens[0] @ params.w1[0] + params.b1[0]) @ params.w2[0] + params.b2[0])
    np.testing.assert_allclose(out.output[0], expected, rtol=1e-5)
    noisy = moe.top1_moe(tokens, router, params, noise_key=jax.random.PRNGKey(1), noise_std=10.0)
    assert not np.allclose(noisy.expert_probability, out.expert_probability)


def test_load_balancing_losses():
    uniform = jnp.full((8, 4), 0.25)
    balanced_choice = jnp.arange(8) % 4
    np.testing.assert_allclose(moe.load_loss(uniform, balanced_choice), 1.0, rtol=1e-6)
    np.testing.assert_allclose(moe.importance_loss(uniform), 0.0, atol=1e-9)
    np.testing.assert_allclose(moe.entropy_loss(uniform), np.log(4), rtol=1e-5)
    collapsed = jnp.zeros((8, 4)).at[:, 0].set(1.0)
    np.testing.assert_allclose(moe.load_loss(collapsed, jnp.zeros(8, jnp.int32)), 4.0, rtol=1e-6)
    np.testing.assert_allclose(moe.importance_loss(collapsed), 3.0, rtol=1e-5)  # var([8,0,0,0]) / 2² = 12 / 4


def test_tokenisers_on_nature_cnn_outputs():
    # The Nature CNN on 84×84×4 gives 11×11×64 with SAME padding (84/4 → 21 → 11 → 11) and 7×7×64 with
    # VALID padding (core.networks.NatureCNN): PerConv 121 or 49 tokens of 64 channels.
    same, valid = jnp.ones((11, 11, 64)), jnp.ones((7, 7, 64))
    chex.assert_shape(moe.per_conv_tokens(same), (121, 64))
    chex.assert_shape(moe.per_conv_tokens(valid), (49, 64))
    chex.assert_shape(moe.per_feature_tokens(same), (64, 121))
    chex.assert_shape(moe.per_sample_tokens(same), (1, 121 * 64))
    kernel = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 64, 32))
    chex.assert_shape(moe.per_patch_tokens(valid, kernel), (9, 32))
    features = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 3))
    np.testing.assert_array_equal(moe.per_conv_tokens(features)[5], features[1, 1])
    np.testing.assert_array_equal(moe.per_feature_tokens(features)[2], features[..., 2].reshape(-1))
    patch = moe.per_patch_tokens(features, jnp.ones((2, 2, 3, 1)))
    np.testing.assert_allclose(patch[0, 0], features[:2, :2].sum(), rtol=1e-5)
