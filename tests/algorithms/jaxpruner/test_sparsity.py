"""Sparsity distributions, structures, masks and schedules: hand-computed cases and paper properties."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.jaxpruner import schedules
from algorithms.jaxpruner import sparsity as sp

HAND = {"a": {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}, "b": {"w": jnp.zeros((8, 2))},
        "c": {"w": jnp.zeros((100, 10)), "b": jnp.zeros(10)}}


def test_erk_densities_on_a_hand_computed_network():
    # raw (Σ dims / Π dims): a 8/16, b 10/16, c 110/1000; budget 0.5·1032 = 516.
    # ε = 516 / (8 + 10 + 110) = 4.03: a and b would exceed density 1, so both are dense;
    # re-solved over c alone: ε = (516 − 32) / 110 = 4.4, density of c = 4.4 · 0.11 = 0.484.
    s = sp.erk(HAND, 0.5)
    assert s["a"]["b"] is None and s["c"]["b"] is None
    assert s["a"]["w"] == 0.0 and s["b"]["w"] == 0.0
    np.testing.assert_allclose(s["c"]["w"], 1 - 0.484, atol=1e-12)


def test_erk_keeps_the_total_budget_and_favours_small_layers():
    params = {"conv": {"w": jnp.zeros((3, 3, 4, 16))}, "d1": {"w": jnp.zeros((1024, 128))},
              "d2": {"w": jnp.zeros((128, 6))}, "d2b": {"b": jnp.zeros(6)}}
    s = sp.erk(params, 0.98)
    sizes = {"conv": 576, "d1": 131072, "d2": 768}
    kept = sum((1 - s[k]["w"]) * n for k, n in sizes.items())
    np.testing.assert_allclose(kept, 0.02 * sum(sizes.values()), rtol=1e-9)
    # raw densities: d2 134/768 = 0.17 > conv 26/576 = 0.045 > d1 1152/131072 = 0.0088
    assert s["d2"]["w"] < s["conv"]["w"] < s["d1"]["w"] and s["d2b"]["b"] is None
    assert all(0 <= s[k]["w"] < 1 for k in sizes)


def test_uniform_skips_one_dimensional_parameters_and_takes_overrides():
    s = sp.uniform(HAND, 0.7, custom_sparsity_map={"c/b": 0.5, "a/w": 0.1})
    assert s == {"a": {"w": 0.1, "b": None}, "b": {"w": 0.7}, "c": {"w": 0.7, "b": 0.5}}
    with pytest.raises(ValueError, match="unknown parameters"):
        sp.uniform(HAND, 0.7, custom_sparsity_map={"nope/w": 0.5})
    only_a = sp.uniform(HAND, 0.7, filter_fn=lambda name, p: name.startswith("a/"))
    assert only_a["a"]["b"] == 0.7 and only_a["b"]["w"] is None


@pytest.mark.parametrize("jit", [False, True])
def test_unstructured_topk_keeps_exactly_the_largest_scores(jit):
    scores = jax.random.normal(jax.random.PRNGKey(0), (13, 7))
    topk = jax.jit(sp.topk_mask) if jit else sp.topk_mask
    for density in (0.0, 0.1, 0.5, 0.98, 1.0):
        mask = np.asarray(topk(scores, density))
        chex.assert_type(mask, np.uint8)
        k = int(round(density * scores.size))
        assert mask.sum() == k
        expected = np.zeros(scores.size, np.uint8)
        expected[np.argsort(-np.asarray(scores).reshape(-1))[:k]] = 1
        np.testing.assert_array_equal(mask.reshape(-1), expected)


def test_n_by_m_keeps_the_top_n_of_every_group_of_m_along_the_input_axis():
    scores = jax.random.uniform(jax.random.PRNGKey(1), (8, 3))  # haiku Linear [in, out]: groups along `in`
    mask = np.asarray(sp.topk_mask(scores, 0.123, sp.NByM(2, 4)))
    groups = mask.T.reshape(3, 2, 4)
    assert (groups.sum(-1) == 2).all()
    s = np.asarray(scores).T.reshape(3, 2, 4)
    top = np.argsort(-s, axis=-1)[..., :2]
    np.testing.assert_array_equal(np.sort(np.argwhere(groups)[:, -1].reshape(3, 2, 2), -1), np.sort(top, -1))


def test_block_masks_are_constant_on_blocks_and_keep_the_best_mean_blocks():
    scores = jnp.abs(jax.random.normal(jax.random.PRNGKey(2), (4, 6)))
    mask = np.asarray(sp.topk_mask(scores, 0.5, sp.Block((2, 2))))
    blocks = mask.reshape(2, 2, 3, 2).transpose(0, 2, 1, 3).reshape(6, 4)
    assert ((blocks == 0) | (blocks == 1)).all() and (blocks.min(1) == blocks.max(1)).all()
    means = np.asarray(scores).reshape(2, 2, 3, 2).mean(axis=(1, 3)).reshape(-1)
    kept = blocks[:, 0].astype(bool)
    assert kept.sum() == 3 and means[kept].min() > means[~kept].max()
    assert mask.mean() == 0.5


def test_channel_masks_keep_whole_output_channels():
    scores = jnp.abs(jax.random.normal(jax.random.PRNGKey(3), (3, 3, 4, 10)))
    mask = np.asarray(sp.topk_mask(scores, 0.3, sp.Channel(-1)))
    per_channel = mask.reshape(-1, 10)
    assert (per_channel.min(0) == per_channel.max(0)).all() and per_channel[0].sum() == 3
    means = np.asarray(scores).reshape(-1, 10).mean(0)
    assert means[per_channel[0] == 1].min() > means[per_channel[0] == 0].max()


def test_sparsity_type_strings():
    assert sp.parse_sparsity_type("nm_2,4") == sp.NByM(2, 4)
    assert sp.parse_sparsity_type("block_4,2") == sp.Block((4, 2))
    assert sp.parse_sparsity_type("channel_-1") == sp.Channel(-1)
    assert sp.parse_sparsity_type("unstructured") == sp.Unstructured() == sp.parse_sparsity_type(None)
    for bad in ("nm_4,2", "diagonal", "block_0,1"):
        with pytest.raises(ValueError, match="unknown sparsity type"):
            sp.parse_sparsity_type(bad)


def test_bit_packing_round_trips_in_an_eighth_of_the_bytes():
    mask = (jax.random.uniform(jax.random.PRNGKey(4), (3, 3, 5, 7)) < 0.3).astype(jnp.uint8)
    packed = sp.pack_mask(mask)
    chex.assert_shape(packed, (int(np.ceil(mask.size / 8)),))
    chex.assert_type(packed, jnp.uint8)
    np.testing.assert_array_equal(sp.unpack_mask(packed, mask.shape), mask)


def test_summary_counts_zeros_per_parameter_and_prunable_total():
    params = {"l": {"w": jnp.array([[0.0, 1.0], [0.0, 0.0]]), "b": jnp.array([0.0, 2.0])}}
    summary = sp.summarize_sparsity(params)
    assert float(summary.per_param["l/w"]) == 0.75 and float(summary.per_param["l/b"]) == 0.5
    np.testing.assert_allclose(summary.total, 4 / 6)
    np.testing.assert_allclose(summary.total_prunable, 0.75)


# --------------------------------------------------------------------------- schedules


def test_polynomial_schedule_values_at_its_boundaries():
    sched = schedules.PolynomialSchedule(update_freq=10, update_start_step=100, update_end_step=200)
    value = lambda t: float(sched.sparsity(0.9, t))  # noqa: E731
    assert value(0) == 0.0 and value(100) == 0.0 and value(200) == pytest.approx(0.9) and value(10_000) == pytest.approx(0.9)
    assert value(150) == pytest.approx(0.9 * (1 - 0.5 ** 3))
    updates = [t for t in range(0, 300) if bool(sched.is_mask_update_iter(t))]
    assert updates == list(range(100, 201, 10))
    odd = schedules.PolynomialSchedule(update_freq=30, update_start_step=0, update_end_step=100)
    assert [t for t in range(200) if bool(odd.is_mask_update_iter(t))] == [0, 30, 60, 90, 100]


def test_one_shot_periodic_and_no_update_schedules():
    one = schedules.OneShotSchedule(target_step=7)
    assert [t for t in range(20) if bool(one.is_mask_update_iter(t))] == [7]
    assert float(one.sparsity(0.8, 0)) == pytest.approx(0.8)
    periodic = schedules.PeriodicSchedule(update_freq=5, update_start_step=3, update_end_step=20)
    assert [t for t in range(40) if bool(periodic.is_mask_update_iter(t))] == [3, 8, 13, 18]
    forever = schedules.PeriodicSchedule(update_freq=5, update_start_step=3)
    assert bool(forever.is_mask_update_iter(10_003))
    never = schedules.NoUpdateSchedule()
    assert not any(bool(never.is_mask_update_iter(t)) for t in range(10)) and float(never.sparsity(0.5, 3)) == 0.5


def test_cosine_drop_fraction_decays_from_its_initial_value_to_zero():
    f = lambda t: float(schedules.cosine_drop_fraction(t, initial=0.3, decay_steps=100))  # noqa: E731
    assert f(0) == pytest.approx(0.3) and f(50) == pytest.approx(0.15) and f(100) == pytest.approx(0.0, abs=1e-7)
    assert f(1000) == pytest.approx(0.0, abs=1e-7)
