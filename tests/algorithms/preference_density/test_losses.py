"""Preference losses against hand-computed values and the closed-form optima of arXiv 2311.14115.

The "theory curves" are checked on the population loss (every pair of a small grid,
weighted by the proposal, soft labels = the annotator's P(A ≻ B)) minimised over a
tabular log density: its minimiser must be the density the paper predicts.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms.preference_density import densities, losses

G = 24
GRID = densities.make_grid(-4.0, 4.0, G)
LOG_P_STAR = densities.gaussian_mixture_log_probs(GRID, [[-1.5], [1.5]], [0.7, 1.0], [0.3, 0.7])
LOG_PRE = densities.truncated_normal_log_probs(GRID, 0.5, 2.0)
EVERYWHERE = jnp.ones(G, bool)


def _tv(log_p, log_q):
    return float(densities.total_variation(log_p, log_q))


KINDS = ("bt", "dpo", "geometric")


def _population_fit(annotator_logit, log_q, param, *, kind):
    """Minimises Σ_ab q_a q_b · NLL(P_ab | model logit) over a tabular θ (log π up to a constant)."""
    param = 1.0 if kind == "bt" else param  # the unselected losses must stay finite (α = 0 would give 0·inf)
    return _fit(annotator_logit, log_q, jnp.float32(param), jax.nn.one_hot(KINDS.index(kind), len(KINDS)))


@jax.jit
def _fit(annotator_logit, log_q, param, which):
    # One compilation for every loss: ``which`` one-hot selects the loss, ``param`` is β or α.
    prob = jax.nn.sigmoid(annotator_logit)  # [G, G]: P(a ≻ b)
    pair_weight = jnp.exp(log_q[:, None] + log_q[None, :])
    pre_a, pre_b = jnp.broadcast_to(LOG_PRE[:, None], (G, G)), jnp.broadcast_to(LOG_PRE[None, :], (G, G))

    def loss(theta):
        a, b = jnp.broadcast_to(theta[:, None], (G, G)), jnp.broadcast_to(theta[None, :], (G, G))
        per_pair = jnp.stack([losses.bradley_terry_loss(a, b, prob),
                              losses.dpo_loss(a, b, pre_a, pre_b, prob, beta=param),
                              losses.geometric_pbde_loss(a, b, pre_a, pre_b, prob, alpha=param)])
        return jnp.sum(pair_weight * jnp.tensordot(which, per_pair, axes=1))

    opt = optax.adam(0.05)
    theta = jnp.zeros(G)

    def step(carry, _):
        theta, state = carry
        updates, state = opt.update(jax.grad(loss)(theta), state)
        return (optax.apply_updates(theta, updates), state), None

    (theta, _), _ = jax.lax.scan(step, (theta, opt.init(theta)), None, length=3000)
    return theta


def _luce(log_p):
    return log_p[:, None] - log_p[None, :]


def test_bradley_terry_loss_hand_values():
    np.testing.assert_allclose(losses.bradley_terry_loss(jnp.array(1.0), jnp.array(1.0), jnp.array(1.0)), np.log(2),
                               rtol=1e-6)
    # r_A − r_B = log 3: P(A ≻ B) = 3/4.
    r_a, r_b = jnp.array([np.log(3.0), np.log(3.0)]), jnp.zeros(2)
    np.testing.assert_allclose(losses.bradley_terry_loss(r_a, r_b, jnp.array([1.0, 0.0])),
                               [-np.log(0.75), -np.log(0.25)], rtol=1e-6)
    # A soft label is the expected loss.
    np.testing.assert_allclose(losses.bradley_terry_loss(r_a[:1], r_b[:1], jnp.array([0.3])),
                               [-(0.3 * np.log(0.75) + 0.7 * np.log(0.25))], rtol=1e-6)


def test_dpo_and_geometric_logits_hand_values():
    la, lb, pa, pb = (jnp.array(v) for v in (-1.0, -3.0, -2.0, -2.5))
    np.testing.assert_allclose(losses.dpo_logit(la, lb, pa, pb, beta=2.0), 2.0 * ((-1 + 2) - (-3 + 2.5)), rtol=1e-6)
    np.testing.assert_allclose(losses.geometric_pbde_logit(la, lb, pa, pb, alpha=0.25),
                               ((-1 - 0.75 * -2) - (-3 - 0.75 * -2.5)) / 0.25, rtol=1e-6)
    # α = 1 is Bradley–Terry on log π: π_pre drops out.
    np.testing.assert_allclose(losses.geometric_pbde_logit(la, lb, pa, pb, alpha=1.0), la - lb, rtol=1e-6)


class LossVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_dtypes_and_finiteness(self):
        key = jax.random.PRNGKey(0)
        la, lb, pa, pb = jax.random.normal(key, (4, 5, 3))
        y = (jax.random.uniform(key, (5, 3)) > 0.5).astype(jnp.float32)
        dpo = self.variant(functools.partial(losses.dpo_loss, beta=4.0))(la, lb, pa, pb, y)
        ipo = self.variant(functools.partial(losses.ipo_loss, tau=0.1))(la - lb, y)
        slic = self.variant(functools.partial(losses.slic_loss, delta=1.0))(la - lb, y)
        mix = self.variant(losses.mixture_preference_loss)(la, lb, jnp.zeros(3), y[:, 0])
        chex.assert_shape([dpo, ipo, slic], (5, 3))
        chex.assert_shape(mix, (5,))
        chex.assert_type([dpo, ipo, slic, mix], jnp.float32)
        chex.assert_tree_all_finite([dpo, ipo, slic, mix])


@pytest.mark.parametrize("beta", [1.0, 4.0, 16.0])
def test_dpo_on_luce_preferences_converges_to_pre_times_p_star_to_the_one_over_beta(beta):
    theta = _population_fit(_luce(LOG_P_STAR), densities.uniform_log_probs(EVERYWHERE), beta, kind="dpo")
    expected = losses.dpo_optimum(LOG_PRE, LOG_P_STAR, beta=beta)
    np.testing.assert_allclose(np.exp(expected), np.exp(LOG_PRE + LOG_P_STAR / beta) / np.exp(
        LOG_PRE + LOG_P_STAR / beta).sum(), rtol=1e-5)
    assert _tv(densities.log_normalize(theta), expected) < 2e-3
    # ... and not p* itself (for β > 1 the optimum stays close to π_pre).
    if beta > 1:
        assert _tv(expected, LOG_P_STAR) > 0.1


def test_dpo_on_dpo_annotator_preferences_recovers_p_star():
    beta = 4.0
    annotator = _luce(beta * (LOG_P_STAR - LOG_PRE))  # PBDE f = β, g = −β log π_pre
    theta = _population_fit(annotator, densities.uniform_log_probs(EVERYWHERE), beta, kind="dpo")
    assert _tv(densities.log_normalize(theta), LOG_P_STAR) < 2e-3


@pytest.mark.parametrize("alpha", [0.25, 0.5])
def test_geometric_pbde_converges_to_the_geometric_average(alpha):
    theta = _population_fit(_luce(LOG_P_STAR), densities.uniform_log_probs(EVERYWHERE), alpha, kind="geometric")
    expected = losses.geometric_optimum(LOG_PRE, LOG_P_STAR, alpha=alpha)
    np.testing.assert_allclose(expected, densities.log_normalize((1 - alpha) * LOG_PRE + alpha * LOG_P_STAR),
                               atol=1e-5)
    assert _tv(densities.log_normalize(theta), expected) < 2e-3


def test_bradley_terry_recovers_log_p_star_up_to_a_constant_on_the_support_only():
    support = GRID.points[:, 0] < 1.0
    theta = _population_fit(_luce(LOG_P_STAR), densities.uniform_log_probs(support), 0.0, kind="bt")
    on = np.asarray(support)
    offset = np.asarray(theta - LOG_P_STAR)[on]
    np.testing.assert_allclose(offset, offset.mean(), atol=0.02)  # r = log p* + c on the support
    assert _tv(densities.restrict(theta, support), losses.bradley_terry_optimum(LOG_P_STAR, support)) < 2e-3
    np.testing.assert_array_equal(np.asarray(theta)[~on], 0.0)  # off the support nothing is learned
    assert _tv(densities.log_normalize(theta), LOG_P_STAR) > 0.2


def test_pbde_optimum_special_cases():
    zero = jnp.zeros(G)
    np.testing.assert_allclose(losses.pbde_optimum(LOG_P_STAR, f_annotator=1.0, g_annotator=zero, f_model=1.0,
                                                   g_model=zero), LOG_P_STAR, atol=1e-5)
    np.testing.assert_allclose(
        losses.pbde_optimum(LOG_P_STAR, f_annotator=1.0, g_annotator=zero, f_model=4.0, g_model=-4.0 * LOG_PRE),
        losses.dpo_optimum(LOG_PRE, LOG_P_STAR, beta=4.0), atol=1e-5)
    np.testing.assert_allclose(
        losses.pbde_optimum(LOG_P_STAR, f_annotator=4.0, g_annotator=-4.0 * LOG_PRE, f_model=4.0,
                            g_model=-4.0 * LOG_PRE), LOG_P_STAR, atol=1e-5)
    np.testing.assert_allclose(
        losses.pbde_optimum(LOG_P_STAR, f_annotator=1.0, g_annotator=zero, f_model=1 / 0.3,
                            g_model=-(0.7 / 0.3) * LOG_PRE), losses.geometric_optimum(LOG_PRE, LOG_P_STAR, alpha=0.3),
        atol=1e-5)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_ipo_per_pair_optimum_is_a_margin_linear_in_the_preference_probability(p):
    tau = 0.25
    expected_loss = lambda h: p * losses.ipo_loss(h, jnp.array(1.0), tau=tau) + (1 - p) * losses.ipo_loss(
        h, jnp.array(0.0), tau=tau)
    h_star = (2 * p - 1) / (2 * tau)
    np.testing.assert_allclose(jax.grad(expected_loss)(jnp.array(h_star)), 0.0, atol=1e-5)
    assert jax.grad(jax.grad(expected_loss))(jnp.array(h_star)) > 0
    # Not the Luce log-odds log(p / (1 − p)) that a likelihood would recover.
    if p != 0.5:
        assert abs(h_star - np.log(p / (1 - p))) > 0.1


@pytest.mark.parametrize("p", [0.3, 0.8])
def test_slic_per_pair_optimum_is_delta_times_the_sign(p):
    delta = 1.5
    hs = jnp.linspace(-4, 4, 801)
    expected = p * losses.slic_loss(hs, jnp.ones_like(hs), delta=delta) + (1 - p) * losses.slic_loss(
        hs, jnp.zeros_like(hs), delta=delta)
    np.testing.assert_allclose(hs[jnp.argmin(expected)], delta * np.sign(2 * p - 1), atol=1e-2)
    np.testing.assert_allclose(losses.slic_loss(jnp.array([2.0, 0.5]), jnp.array([1.0, 0.0]), delta=1.0), [0.0, 1.5])


def test_mixture_loss_reduces_to_bradley_terry_and_matches_a_hand_value():
    r_a, r_b, y = jnp.array([[0.3]]), jnp.array([[-0.2]]), jnp.array([1.0])
    np.testing.assert_allclose(losses.mixture_preference_loss(r_a, r_b, jnp.zeros(1), y),
                               losses.bradley_terry_loss(r_a[:, 0], r_b[:, 0], y), rtol=1e-6)
    same = jnp.concatenate([r_a, r_a], axis=1), jnp.concatenate([r_b, r_b], axis=1)
    np.testing.assert_allclose(losses.mixture_preference_loss(*same, jnp.array([0.7, -1.0]), y),
                               losses.bradley_terry_loss(r_a[:, 0], r_b[:, 0], y), rtol=1e-6)
    # Components with logits log 3 and −log 3, weights 0.4 / 0.6: P(A ≻ B) = 0.4·¾ + 0.6·¼ = 0.45.
    r_a, r_b = jnp.array([[np.log(3.0), 0.0]]), jnp.array([[0.0, np.log(3.0)]])
    log_w = jnp.log(jnp.array([0.4, 0.6]))
    np.testing.assert_allclose(losses.mixture_preference_loss(r_a, r_b, log_w, y), [-np.log(0.45)], rtol=1e-5)
    np.testing.assert_allclose(losses.mixture_preference_loss(r_a, r_b, log_w, 1 - y), [-np.log(0.55)], rtol=1e-5)
