"""Tests of core.noisy: the factorised Gaussian NoisyLinear layer (arXiv 1706.10295)."""
import math

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import noisy

P, Q = 5, 3  # input and output sizes of the layer under test


def _layer(sigma0=0.5):
    def forward(x, noisy_flag=True):
        return noisy.NoisyLinear(Q, sigma0=sigma0)(x, noisy=noisy_flag)

    return hk.transform(forward)


def _init(sigma0=0.5, seed=0):
    net = _layer(sigma0)
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((2, P)))
    return net, params["noisy_linear"]


def test_scale_noise_hand_computed():
    np.testing.assert_allclose(noisy.scale_noise(jnp.array([4.0, -9.0, 0.0, 0.25])), [2.0, -3.0, 0.0, 0.5])


def test_factorised_noise_is_outer_product_of_scaled_vectors():
    eps = noisy.factorised_gaussian_noise(jax.random.PRNGKey(3), input_size=P, output_size=Q)
    chex.assert_shape([eps.weight, eps.bias], [(P, Q), (Q,)])
    chex.assert_type([eps.weight, eps.bias], jnp.float32)
    # Rank one, and its column space is spanned by f(ε_j) = ε^b.
    assert np.linalg.matrix_rank(np.asarray(eps.weight), tol=1e-6) == 1
    ratio = np.asarray(eps.weight) / np.asarray(eps.bias)[None, :]  # f(ε_i), the same in every column
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], Q, axis=1), rtol=1e-5)


def test_param_shapes_dtypes_and_paper_initialisation():
    _, params = _init(sigma0=0.5)
    chex.assert_shape([params["w_mu"], params["w_sigma"], params["b_mu"], params["b_sigma"]],
                      [(P, Q), (P, Q), (Q,), (Q,)])
    chex.assert_type(list(params.values()), jnp.float32)
    bound = 1.0 / math.sqrt(P)
    for name in ("w_mu", "b_mu"):  # μ ~ U[−1/√p, 1/√p]
        assert np.all(np.abs(params[name]) <= bound)
    for name in ("w_sigma", "b_sigma"):  # σ = σ0/√p
        np.testing.assert_allclose(params[name], 0.5 / math.sqrt(P), rtol=1e-6)


def test_mu_init_is_uniform_over_the_paper_interval():
    p = 400
    params = hk.transform(lambda x: noisy.NoisyLinear(50)(x)).init(jax.random.PRNGKey(0), jnp.zeros((1, p)))
    w_mu = np.asarray(params["noisy_linear"]["w_mu"]) * math.sqrt(p)  # U[−1, 1]: mean 0, var 1/3
    assert abs(w_mu.mean()) < 0.02 and abs(w_mu.var() - 1 / 3) < 0.02
    assert w_mu.min() >= -1 and w_mu.max() <= 1


class NoisyLinearTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_noise_off_equals_mean_linear_map(self):
        net, params = _init()
        x = jax.random.normal(jax.random.PRNGKey(1), (4, P))
        out = self.variant(lambda p, x: net.apply({"noisy_linear": p}, None, x, False))(params, x)
        chex.assert_shape(out, (4, Q))
        chex.assert_type(out, jnp.float32)
        np.testing.assert_allclose(out, x @ params["w_mu"] + params["b_mu"], rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_noisy_output_shape_dtype_and_key_dependence(self):
        net, params = _init()
        x = jax.random.normal(jax.random.PRNGKey(1), (4, P))
        apply = self.variant(lambda key: net.apply({"noisy_linear": params}, key, x))
        out_a, out_a2 = apply(jax.random.PRNGKey(7)), apply(jax.random.PRNGKey(7))
        out_b = apply(jax.random.PRNGKey(8))
        chex.assert_shape([out_a, out_b], (4, Q))
        chex.assert_type([out_a, out_b], jnp.float32)
        chex.assert_tree_all_finite(out_a)
        np.testing.assert_array_equal(out_a, out_a2)  # deterministic per key
        assert not np.allclose(out_a, out_b)  # different keys, different noise
        assert not np.allclose(out_a, x @ params["w_mu"] + params["b_mu"])  # noise is on


def test_unbatched_input_and_sigma_zero_is_deterministic():
    net, params = _init(sigma0=0.0)
    x = jnp.arange(P, dtype=jnp.float32)
    out = net.apply({"noisy_linear": params}, jax.random.PRNGKey(5), x)
    chex.assert_shape(out, (Q,))
    np.testing.assert_allclose(out, x @ params["w_mu"] + params["b_mu"], rtol=1e-5)


def test_noise_is_shared_across_the_batch():
    net, params = _init()
    x = jnp.ones((3, P))
    out = net.apply({"noisy_linear": params}, jax.random.PRNGKey(2), x)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_gradients_reach_mu_and_sigma():
    net, params = _init()
    x = jax.random.normal(jax.random.PRNGKey(1), (4, P))
    grads = jax.grad(lambda p: net.apply({"noisy_linear": p}, jax.random.PRNGKey(3), x).sum())(params)
    for name in ("w_mu", "w_sigma", "b_mu", "b_sigma"):
        assert np.any(np.asarray(grads[name]) != 0), name


def test_effective_weight_moments_match_factorised_noise():
    """Paper property: E[w] = μ, Var[w_ij] = σ²·E[f(ε)²]² = σ²·(E|ε|)² = σ²·2/π, Var[b_j] = σ²·√(2/π).

    The effective weights of one draw are read off the layer through its public apply:
    rows of the identity give W + b, the zero input gives b (one draw serves the whole batch).
    """
    net, params = _init(sigma0=0.5)
    probe = jnp.concatenate([jnp.eye(P), jnp.zeros((1, P))])  # [P + 1, P]
    num_draws = 20_000

    def effective(key):
        out = net.apply({"noisy_linear": params}, key, probe)  # [P + 1, Q]
        return out[:P] - out[P], out[P]

    w, b = jax.jit(jax.vmap(effective))(jax.random.split(jax.random.PRNGKey(11), num_draws))
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    sigma = 0.5 / math.sqrt(P)
    # Standard errors: mean σ·√(2/π)/√N ≈ 0.0013; variance (relative) ≈ 1.2/√N ≈ 0.9%.
    np.testing.assert_allclose(w.mean(0), params["w_mu"], atol=6 * sigma / math.sqrt(num_draws))
    np.testing.assert_allclose(b.mean(0), params["b_mu"], atol=6 * sigma / math.sqrt(num_draws))
    np.testing.assert_allclose(w.var(0), sigma**2 * 2 / math.pi, rtol=0.06)
    np.testing.assert_allclose(b.var(0), sigma**2 * math.sqrt(2 / math.pi), rtol=0.06)


def test_rejects_bad_hyperparameters_and_inputs():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="sigma0"):
        hk.transform(lambda x: noisy.NoisyLinear(2, sigma0=-1.0)(x)).init(key, jnp.zeros((1, 2)))
    with pytest.raises(AssertionError):  # integer inputs
        hk.transform(lambda x: noisy.NoisyLinear(2)(x)).init(key, jnp.zeros((1, 2), jnp.int32))


def test_noisy_call_without_rng_fails_but_noise_off_does_not():
    net, params = _init()
    with pytest.raises(ValueError):
        net.apply({"noisy_linear": params}, None, jnp.ones((1, P)))
    net.apply({"noisy_linear": params}, None, jnp.ones((1, P)), False)
