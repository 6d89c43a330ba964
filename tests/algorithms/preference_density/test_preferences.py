"""Generative processes of preferences: Luce / PBDE annotators, populations, proposals."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from algorithms.preference_density import densities, preferences


def test_luce_rule_hand_value_and_pbde_special_case():
    log_p = jnp.log(jnp.array([0.1, 0.3]))
    logit = preferences.luce_logit(log_p[:1], log_p[1:])
    np.testing.assert_allclose(jax.nn.sigmoid(logit), [0.1 / (0.1 + 0.3)], rtol=1e-6)  # p_A / (p_A + p_B)
    zero = jnp.zeros(1)
    np.testing.assert_allclose(preferences.pbde_logit(log_p[:1], log_p[1:], zero, zero, f=1.0), logit)
    g = jnp.array([0.5, -0.25])
    np.testing.assert_allclose(preferences.pbde_logit(log_p[:1], log_p[1:], g[:1], g[1:], f=2.0),
                               2 * (np.log(0.1) - np.log(0.3)) + 0.75, rtol=1e-6)
    # The PBDE's optimal density reproduces the annotator's logits.
    log_p_star = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    g3 = jnp.array([0.1, -0.4, 0.7])
    q = preferences.pbde_optimal_log_density(log_p_star, g3, f=3.0)
    np.testing.assert_allclose(3.0 * (q[0] - q[1]) + g3[0] - g3[1], log_p_star[0] - log_p_star[1], rtol=1e-5)


def test_annotated_labels_follow_the_sigmoid_of_the_logit():
    n = 40_000
    a, b = jnp.zeros(n, jnp.int32), jnp.ones(n, jnp.int32)
    prefs = preferences.annotate(jax.random.PRNGKey(0), a, b, jnp.full(n, np.log(3.0)))
    chex.assert_type([prefs.item_a, prefs.a_preferred, prefs.annotator], [jnp.int32, jnp.float32, jnp.int32])
    assert abs(float(prefs.a_preferred.mean()) - 0.75) < 0.01  # 4σ ≈ 0.009
    assert bool(jnp.all(prefs.annotator == preferences.NO_ANNOTATOR))


def test_luce_dataset_on_two_points_matches_p_star_ratio():
    log_p_star = jnp.log(jnp.array([0.25, 0.75]))
    prefs = preferences.luce_dataset(jax.random.PRNGKey(1), jnp.log(jnp.array([0.5, 0.5])), log_p_star, 40_000)
    pairs = np.asarray((prefs.item_a == 0) & (prefs.item_b == 1))
    assert abs(pairs.mean() - 0.25) < 0.01  # the proposal draws (0, 1) a quarter of the time
    assert abs(float(prefs.a_preferred[pairs].mean()) - 0.25) < 0.02  # 0.25 / (0.25 + 0.75)
    ties = np.asarray(prefs.item_a == prefs.item_b)
    assert abs(float(prefs.a_preferred[ties].mean()) - 0.5) < 0.02


def test_population_labels_come_from_the_drawn_annotator():
    n = 40_000
    a, b = jnp.zeros(n, jnp.int32), jnp.ones(n, jnp.int32)
    logits = jnp.broadcast_to(jnp.array([30.0, -30.0]), (n, 2))  # annotator 0 always picks A, 1 always B
    prefs = preferences.annotate_population(jax.random.PRNGKey(2), a, b, logits, jnp.array([0.4, 0.6]))
    np.testing.assert_array_equal(prefs.a_preferred, (prefs.annotator == 0).astype(np.float32))
    assert abs(float(jnp.mean(prefs.annotator == 0)) - 0.4) < 0.01
    np.testing.assert_allclose(preferences.population_probability(jnp.array([[np.log(3.0), -np.log(3.0)]]),
                                                                   jnp.array([0.4, 0.6])), [0.4 * 0.75 + 0.6 * 0.25],
                               rtol=1e-6)


def test_pairs_stay_on_the_proposal_support():
    grid = densities.make_grid(-5.0, 5.0, 50)
    support = densities.box_mask(grid, -2.0, 2.0)
    a, b = preferences.sample_pairs(jax.random.PRNGKey(3), densities.uniform_log_probs(support), 5_000)
    assert bool(jnp.all(support[a]) and jnp.all(support[b]))
    assert len(np.unique(np.asarray(a))) == int(support.sum())  # every supported point is proposed


def test_population_dataset_mixes_annotators_by_weight():
    grid = densities.make_grid(-5.0, 5.0, 40)
    comps = jnp.stack([densities.truncated_normal_log_probs(grid, m, 1.0) for m in (-2.5, 2.5)])
    prefs = preferences.population_dataset(jax.random.PRNGKey(4), densities.uniform_log_probs(jnp.ones(40, bool)),
                                           comps, jnp.array([0.4, 0.6]), 20_000)
    assert abs(float(jnp.mean(prefs.annotator == 1)) - 0.6) < 0.015
    # Annotator 0 prefers the left item of a (left, right) pair, annotator 1 the right one.
    x_a, x_b = grid.points[prefs.item_a, 0], grid.points[prefs.item_b, 0]
    pair = np.asarray((x_a < -2) & (x_b > 2))
    for who, want in ((0, 1.0), (1, 0.0)):
        rows = pair & np.asarray(prefs.annotator == who)
        assert abs(float(prefs.a_preferred[rows].mean()) - want) < 0.02
