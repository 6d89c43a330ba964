"""Waiting-time likelihood, symmetry augmentation, bootstrap ensemble and distillation of the transition model."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.silicon_dopant import lattice, networks
from algorithms.silicon_dopant import transition_model as tm


def _out(logits, rate):
    return tm.TransitionOutput(jnp.asarray(logits, jnp.float32), jnp.log(jnp.asarray(rate, jnp.float32)))


class NllTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_cases(self):
        nll = self.variant(tm.transition_nll)
        out = _out([[0.0, np.log(2.0), 0.0]] * 2, [2.0, 2.0])
        label, dwell = jnp.array([tm.NO_MOVE, 1]), jnp.array([0.5, 0.5])
        got = nll(out, label, dwell)
        chex.assert_shape(got, (2,))
        chex.assert_type(got, jnp.float32)
        # Λ·T = 1: no move costs Λ·T; a swap to k = 1 costs −log(1 − e^{−1}) − log(2/4).
        np.testing.assert_allclose(got, [1.0, -np.log(1 - np.exp(-1.0)) - np.log(0.5)], rtol=1e-5)


def test_log1mexp_matches_numpy_and_has_finite_gradients():
    x = jnp.array([1e-6, 0.1, 0.69, 0.7, 5.0, 40.0])
    np.testing.assert_allclose(jax.jit(tm.log1mexp)(x), np.log(-np.expm1(-np.asarray(x, np.float64))), rtol=1e-5, atol=1e-12)
    assert np.all(np.isfinite(jax.jit(jax.vmap(jax.grad(tm.log1mexp)))(x)))


def test_the_likelihood_is_maximised_at_the_censored_exponential_mle():
    # N dwells of T with n swaps: argmax_Λ of n·log(1 − e^{−ΛT}) − (N − n)·ΛT is Λ̂ = −log(1 − n/N) / T.
    n_move, total, dwell = 30, 100, 0.5
    label = jnp.array([0] * n_move + [tm.NO_MOVE] * (total - n_move))
    mle = -np.log(1 - n_move / total) / dwell

    @jax.jit
    def loss(log_rate):
        out = tm.TransitionOutput(jnp.zeros((total, 3)), jnp.full((total,), log_rate))
        return jnp.sum(tm.transition_nll(out, label, jnp.full((total,), dwell)))

    assert abs(float(jax.grad(loss)(jnp.log(mle)))) < 1e-3
    assert float(loss(jnp.log(mle))) < min(float(loss(jnp.log(mle * 0.8))), float(loss(jnp.log(mle * 1.25))))


def test_cross_entropy_is_minimised_at_the_empirical_neighbour_frequencies():
    label = jnp.array([0] * 5 + [1] * 3 + [2] * 2)
    logits = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    g = jax.jit(jax.grad(lambda l: jnp.sum(tm.transition_nll(tm.TransitionOutput(jnp.tile(l, (10, 1)), jnp.zeros(10)),
                                                    label, jnp.ones(10)))))(logits)
    np.testing.assert_allclose(g, 0.0, atol=1e-5)


def test_symmetry_transform_keeps_the_true_rates_equivariant_for_all_six_elements():
    rate_fn = lattice.make_rate_fn("mixture1")
    u = jnp.asarray(np.random.default_rng(0).uniform(-3, 3, (64, 2)), jnp.float32)
    rates = lattice.neighbour_rates(rate_fn, np.asarray(u))
    transform = jax.jit(tm.symmetry_transform)
    for rotation in range(3):
        for reflect in (False, True):
            for k in range(3):
                label = jnp.full((64,), k)
                g_u, g_k = transform(u, label, jnp.full((64,), rotation), jnp.full((64,), reflect))
                g_rates = lattice.neighbour_rates(rate_fn, np.asarray(g_u))
                # λ_{g(k)}(g·u) = λ_k(u)
                np.testing.assert_allclose(g_rates[np.arange(64), np.asarray(g_k)], rates[:, k], rtol=1e-4)
    g_u, g_k = transform(u, jnp.full((64,), tm.NO_MOVE), jnp.ones(64, int), jnp.ones(64, bool))
    assert np.all(np.asarray(g_k) == tm.NO_MOVE)
    np.testing.assert_allclose(jnp.linalg.norm(g_u, axis=-1), jnp.linalg.norm(u, axis=-1), rtol=1e-5)


def test_augment_covers_the_group_uniformly():
    u = jnp.tile(jnp.array([[1.0, 0.3]]), (6000, 1))
    g_u, g_k = jax.jit(tm.augment)(jax.random.PRNGKey(0), u, jnp.zeros(6000, jnp.int32))
    angles = np.round(np.rad2deg(np.arctan2(g_u[:, 1], g_u[:, 0]))).astype(int)
    values, counts = np.unique(angles, return_counts=True)
    assert len(values) == 6 and counts.min() > 900
    np.testing.assert_array_equal(np.bincount(np.asarray(g_k), minlength=3) > 1800, True)


def test_bootstrap_weights_resample_the_data():
    w = jax.jit(tm.bootstrap_weights, static_argnums=(1, 2))(jax.random.PRNGKey(1), 4, 500)
    chex.assert_shape(w, (4, 500))
    np.testing.assert_allclose(w.sum(-1), 500)
    # About e^{−1} of the dwells are left out of each member; members differ.
    assert np.all(np.abs((np.asarray(w) == 0).mean(-1) - np.exp(-1)) < 0.06)
    assert not np.array_equal(w[0], w[1])


def test_network_shapes_and_ensemble_and_distillation():
    net = networks.make_transition_network((16, 16))
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    params = jax.jit(jax.vmap(lambda k: net.init(k, jnp.zeros((1, 2)))))(keys)
    u = jnp.ones((7, 2))
    out = jax.jit(net.apply)(jax.tree.map(lambda x: x[0], params), u)
    chex.assert_shape([out.logits, out.log_rate], [(7, 3), (7,)])
    chex.assert_type([out.logits, out.log_rate], jnp.float32)
    rates = jax.jit(lambda p, x: tm.ensemble_rates(net.apply, p, x))(params, u)
    chex.assert_shape(rates, (3, 7, 3))
    np.testing.assert_allclose(rates.sum(-1), 1.0, rtol=1e-5)  # zero-initialised head: Λ = 1/s, uniform π
    # A student equal to the ensemble mean has zero distillation loss; another one has not.
    teacher = jnp.stack([jnp.tile(jnp.array([0.2, 0.5, 0.3]), (7, 1)), jnp.tile(jnp.array([0.4, 0.1, 0.5]), (7, 1))])
    mean = teacher.mean(0)
    exact = tm.TransitionOutput(jnp.log(mean), jnp.log(mean.sum(-1)))
    distill = jax.jit(tm.distillation_loss)
    assert float(distill(exact, teacher)) == pytest.approx(0.0, abs=1e-6)
    # Uniform student with Λ = 1: KL([.3, .3, .4] ‖ uniform) + (log 1 − log 1)².
    kl = 0.6 * np.log(0.9) + 0.4 * np.log(1.2)
    uniform = tm.TransitionOutput(jnp.zeros((7, 3)), jnp.zeros(7))
    assert float(distill(uniform, teacher)) == pytest.approx(kl, rel=1e-4)
    assert float(distill(uniform._replace(log_rate=jnp.ones(7)), teacher)) == pytest.approx(kl + 1.0, rel=1e-4)
    loss = jax.jit(lambda p: tm.ensemble_loss(net.apply, p, jnp.ones((3, 7)), u, jnp.full((7,), tm.NO_MOVE),
                                              jnp.ones(7)))(params)
    assert float(loss) == pytest.approx(1.0, rel=1e-5)  # Λ·T = 1 for every "no move"


def test_rate_map_error_hand_case():
    grid = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    out = tm.rate_map_error(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]), grid)
    assert out["argmax_distance_A"] == pytest.approx(1.0)
    assert out["relative_l2"] == pytest.approx(np.sqrt(2) / np.sqrt(14))
    assert out["peak_relative_error"] == pytest.approx(1 / 3)
