"""BBF's math: annealing, renormalisation, SPR loss, traced-n returns, resets, weight-decay mask."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.bbf import bbf


def test_update_horizon_boundaries_and_midpoint():
    n = lambda t: int(bbf.update_horizon(t, n_max=10, n_min=3, duration=10_000))  # noqa: E731
    assert n(0) == 10
    assert n(10_000) == 3 and n(50_000) == 3
    assert n(5_000) == round(10 * (0.3 ** 0.5))  # 5.48 -> 5: geometric, not linear (6.5)
    assert bbf.update_horizon(123, n_max=10, n_min=3, duration=0) == 3  # no annealing


def test_discount_schedule_boundaries_and_midpoint():
    g = lambda t: float(bbf.discount_schedule(t, gamma_min=0.97, gamma_max=0.997, duration=10_000))  # noqa: E731
    assert g(0) == pytest.approx(0.97, abs=1e-6)
    assert g(10_000) == pytest.approx(0.997, abs=1e-6)
    # log-linear in the horizon 1 − γ: the midpoint is the geometric mean of 0.03 and 0.003
    assert g(5_000) == pytest.approx(1 - (0.03 * 0.003) ** 0.5, abs=1e-6)
    assert g(20_000) == pytest.approx(0.997, abs=1e-6)


def test_renormalize_maps_each_sample_to_unit_range():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3, 5)) * jnp.array([1.0, 10.0, 0.1, 100.0])[:, None, None, None]
    y = bbf.renormalize(x)
    chex.assert_shape(y, x.shape)
    flat = y.reshape(4, -1)
    np.testing.assert_allclose(flat.min(axis=1), 0.0, atol=1e-7)
    np.testing.assert_allclose(flat.max(axis=1), 1.0, atol=1e-3)  # (max − min)/(max − min + 1e-5)
    assert np.all(flat <= 1.0)


def test_spr_loss_is_two_minus_two_cosine_on_valid_steps_and_ignores_masked_ones():
    prediction = jnp.array([[1.0, 0.0], [3.0, 3.0], [1.0, 2.0], [5.0, -7.0]])
    target = jnp.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [-1.0, 0.0]])
    cos = [0.0, 1.0, 1.0 / np.sqrt(5.0)]  # cos of the first three pairs, by hand
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    expected = sum(2 - 2 * c for c in cos) / 4  # mean over K = 4 (masked step counts 0)
    assert float(bbf.spr_loss(prediction, target, mask)) == pytest.approx(expected, rel=1e-6)
    changed = prediction.at[3].set(jnp.array([-9.0, 4.0]))  # past the episode end: no effect
    assert float(bbf.spr_loss(changed, target, mask)) == pytest.approx(expected, rel=1e-6)
    assert float(bbf.spr_loss(changed, target, jnp.ones(4))) != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("jit", [False, True])
def test_n_step_return_with_traced_n_matches_hand_computation(jit):
    fn = jax.jit(bbf.n_step_return) if jit else bbf.n_step_return
    reward = jnp.array([1.0, 2.0, 4.0, 8.0, 16.0])
    discount = jnp.ones(5)
    last = jnp.zeros(5, bool)
    for n, expected in ((1, 1.0), (2, 1 + 0.5 * 2), (3, 1 + 0.5 * 2 + 0.25 * 4)):
        ret, boot, m = fn(reward, discount, last, n=jnp.int32(n), gamma=jnp.float32(0.5))
        assert float(ret) == pytest.approx(expected) and float(boot) == pytest.approx(0.5 ** n) and int(m) == n
    # termination at step 2 (LAST with discount 0): the return stops there, no bootstrap
    ret, boot, m = fn(reward, discount.at[1].set(0.0), last.at[1].set(True), n=jnp.int32(4), gamma=jnp.float32(0.5))
    assert (float(ret), float(boot), int(m)) == (pytest.approx(2.0), 0.0, 2)
    # truncation at step 3 (LAST with discount 1): bootstrap from s_3 with γ³
    ret, boot, m = fn(reward, discount, last.at[2].set(True), n=jnp.int32(5), gamma=jnp.float32(0.5))
    assert (float(ret), float(boot), int(m)) == (pytest.approx(3.0), pytest.approx(0.125), 3)


def test_shrink_and_perturb_interpolates_kept_groups_and_replaces_the_rest():
    old = {"encoder/conv": {"w": jnp.full((2, 2), 4.0), "b": jnp.full((2,), 2.0)},
           "transition_model/conv0": {"w": jnp.full((3,), -2.0)},
           "projection": {"w": jnp.full((2,), 8.0)}, "head/value": {"b": jnp.full((1,), 6.0)}}
    fresh = jax.tree.map(lambda x: jnp.full_like(x, 1.0), old)
    out = bbf.shrink_and_perturb(old, fresh, keep_keys=("encoder", "transition_model"), shrink=0.5, perturb=0.5)
    np.testing.assert_allclose(out["encoder/conv"]["w"], 2.5)
    np.testing.assert_allclose(out["encoder/conv"]["b"], 1.5)
    np.testing.assert_allclose(out["transition_model/conv0"]["w"], -0.5)
    np.testing.assert_allclose(out["projection"]["w"], 1.0)
    np.testing.assert_allclose(out["head/value"]["b"], 1.0)


def test_weight_decay_mask_excludes_one_dimensional_parameters():
    params = {"encoder/conv": {"w": jnp.zeros((3, 3, 2, 4)), "b": jnp.zeros(4)}, "head": {"w": jnp.zeros((2, 3)),
                                                                                        "b": jnp.zeros(3)}}
    mask = bbf.weight_decay_mask(params)
    assert mask == {"encoder/conv": {"w": True, "b": False}, "head": {"w": True, "b": False}}
