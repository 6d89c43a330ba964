"""Grid densities with exact partition functions; total variation."""
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.preference_density import densities


def test_grid_points_and_cell_volume():
    g1 = densities.make_grid(-1.0, 1.0, 4)
    np.testing.assert_allclose(g1.points[:, 0], [-0.75, -0.25, 0.25, 0.75])
    assert g1.cell_volume == pytest.approx(0.5)
    g2 = densities.make_grid(0.0, 2.0, 2, dims=2)
    np.testing.assert_allclose(g2.points, [[0.5, 0.5], [0.5, 1.5], [1.5, 0.5], [1.5, 1.5]])
    assert g2.cell_volume == pytest.approx(1.0)


def test_exact_normalisation_and_the_continuous_normal():
    grid = densities.make_grid(-8.0, 8.0, 400)
    log_p = densities.truncated_normal_log_probs(grid, 0.5, 1.2)
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, rtol=1e-5)
    x = np.asarray(grid.points[:, 0])
    pdf = np.exp(-0.5 * ((x - 0.5) / 1.2) ** 2) / (1.2 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(np.exp(log_p) / grid.cell_volume, pdf, atol=1e-4)  # truncation mass ~1e-9
    np.testing.assert_allclose(densities.log_normalize(jnp.array([0.0, np.log(3.0)])), np.log([0.25, 0.75]),
                               rtol=1e-6)


def test_truncation_to_the_box_renormalises():
    grid = densities.make_grid(0.0, 5.0, 500)  # a standard normal truncated to [0, 5]: twice the half-normal pdf
    p = np.exp(densities.truncated_normal_log_probs(grid, 0.0, 1.0)) / grid.cell_volume
    x = np.asarray(grid.points[:, 0])
    np.testing.assert_allclose(p, 2 * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), atol=2e-3)


def test_total_variation_hand_cases_and_restriction():
    log = lambda v: jnp.log(jnp.asarray(v, jnp.float32))
    assert float(densities.total_variation(log([0.5, 0.5]), log([1.0, 1e-30]))) == pytest.approx(0.5, abs=1e-6)
    assert float(densities.total_variation(log([0.2, 0.8]), log([0.2, 0.8]))) == pytest.approx(0.0, abs=1e-7)
    # Restricted to the first two points both are (1/3, 2/3) vs (1/2, 1/2).
    mask = jnp.array([True, True, False])
    tv = densities.total_variation(log([0.1, 0.2, 0.7]), log([0.25, 0.25, 0.5]), mask)
    assert float(tv) == pytest.approx(1 / 6, abs=1e-6)
    np.testing.assert_allclose(jnp.exp(densities.restrict(log([0.1, 0.2, 0.7]), mask)), [1 / 3, 2 / 3, 0.0],
                               rtol=1e-6)


def test_mixtures_and_the_2d_grid():
    grid = densities.make_grid(-5.0, 5.0, 30, dims=2)
    assert grid.points.shape == (900, 2)
    comps = jnp.stack([densities.truncated_normal_log_probs(grid, m, 1.0) for m in ([-2.0, 0.0], [2.0, 1.0])])
    mix = densities.mixture_log_probs(comps, [0.3, 0.7])
    np.testing.assert_allclose(jnp.exp(mix), 0.3 * jnp.exp(comps[0]) + 0.7 * jnp.exp(comps[1]), atol=1e-7)
    np.testing.assert_allclose(jnp.exp(mix).sum(), 1.0, rtol=1e-5)
    same = densities.gaussian_mixture_log_probs(grid, [[-2.0, 0.0], [2.0, 1.0]], [1.0, 1.0], [0.3, 0.7])
    np.testing.assert_allclose(same, mix, atol=1e-5)
    inner = densities.box_mask(grid, -1.0, 1.0)
    assert int(inner.sum()) == 36  # 6 × 6 cell centres inside [−1, 1]²
    np.testing.assert_allclose(jnp.exp(densities.uniform_log_probs(inner))[inner], 1 / 36, rtol=1e-6)
