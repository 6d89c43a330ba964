"""The updaters: target densities for every algorithm and distribution, magnitude/STE/SET/RigL
properties, the optax contract, registration, and masks through a checkpoint round trip."""
import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms.jaxpruner import algorithms as algos
from algorithms.jaxpruner import api as jaxpruner
from algorithms.jaxpruner import sparsity as sp
from core.checkpoint import Checkpointer

PARAMS = {"conv": {"w": jax.random.normal(jax.random.PRNGKey(0), (3, 3, 2, 8)), "b": jnp.zeros(8)},
          "dense": {"w": jax.random.normal(jax.random.PRNGKey(1), (40, 16)), "b": jnp.zeros(16)},
          "out": {"w": jax.random.normal(jax.random.PRNGKey(2), (16, 3))}}
X = jax.random.normal(jax.random.PRNGKey(3), (40,))


def loss(params):
    """A smooth scalar touching every parameter (its gradient is dense)."""
    h = jnp.tanh(X @ params["dense"]["w"] + params["dense"]["b"] + jnp.sum(params["conv"]["w"]) + params["conv"]["b"].sum())
    return jnp.sum((h @ params["out"]["w"]) ** 2)


def config(algorithm, **extra):
    return {**dict(algorithm=algorithm, sparsity=0.75, dist_type="uniform", update_freq=2, update_start_step=0,
                   update_end_step=6, drop_fraction=0.3, rng_seed=0), **extra}


def make_step(updater, tx):
    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(updater.pre_forward_update(params, state))
        updates, state = tx.update(grads, state, params)
        return updater.post_gradient_update(optax.apply_updates(params, updates), state), state
    return step


def train(updater, steps=8, lr=1e-2):
    tx = updater.wrap_optax(optax.adam(lr))
    state = tx.init(PARAMS)
    params = updater.post_gradient_update(PARAMS, state)
    step = make_step(updater, tx)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def final_masks(updater):
    """The masks an updater produces at the end of its schedule (eager: no compilation)."""
    key, grads = jax.random.PRNGKey(7), jax.grad(loss)(PARAMS)
    late = jnp.asarray(1000, jnp.int32)
    if updater.starts_sparse:
        masks = updater.get_initial_masks(PARAMS, key)
        return updater.update_masks(PARAMS, grads, masks, jnp.asarray(0), key).masks if updater.regrows else masks
    if updater.straight_through:
        return updater.forward_masks(PARAMS, algos.SparseState(None, None, late, key))
    ones = jax.tree.map(lambda s, p: None if s is None else jnp.ones(p.shape, jnp.uint8),
                        updater.target_sparsities(PARAMS), PARAMS, is_leaf=lambda x: x is None)
    return updater.update_masks(PARAMS, grads, ones, late, key).masks


@pytest.mark.parametrize("dist_type", ["uniform", "erk"])
@pytest.mark.parametrize("algorithm", sorted(set(jaxpruner.all_algorithm_names()) - {"no_prune"}))
def test_mask_density_matches_target(algorithm, dist_type):
    updater = jaxpruner.create_updater_from_config({**config(algorithm), "dist_type": dist_type})
    masks = final_masks(updater)
    assert masks["conv"]["b"] is None and masks["dense"]["b"] is None  # never materialised for biases
    if algorithm.startswith("global_"):
        kept = sum(float(jnp.sum(m)) for m in jax.tree.leaves(masks))
        assert kept == round(0.25 * sum(m.size for m in jax.tree.leaves(masks)))
        return
    targets = updater.target_sparsities(PARAMS)
    if dist_type == "erk":
        assert targets["out"]["w"] < targets["conv"]["w"] < targets["dense"]["w"]
    for name in ("conv", "dense", "out"):
        mask, s = masks[name]["w"], targets[name]["w"]
        chex.assert_type(mask, jnp.uint8)
        chex.assert_shape(mask, PARAMS[name]["w"].shape)
        assert int(mask.sum()) == round((1 - s) * mask.size), (name, s)


def test_no_prune_has_no_masks_and_passes_the_inner_updates_through():
    updater = jaxpruner.create_updater_from_config({"algorithm": "no_prune"})
    tx, adam = updater.wrap_optax(optax.adam(1e-2)), optax.adam(1e-2)
    state, grads = tx.init(PARAMS), jax.grad(loss)(PARAMS)
    assert jax.tree.leaves(state.masks) == []
    updates, state = tx.update(grads, state, PARAMS)
    expected, _ = adam.update(grads, adam.init(PARAMS), PARAMS)
    chex.assert_trees_all_equal(updates, expected)
    assert int(state.count) == 1


def test_magnitude_keeps_exactly_the_largest_weights():
    updater = jaxpruner.create_updater_from_config(config("magnitude"))
    sparse, masks = updater.instant_sparsify(PARAMS)
    for name in ("conv", "dense", "out"):
        w = np.asarray(PARAMS[name]["w"]).reshape(-1)
        k = round(0.25 * w.size)
        expected = np.zeros(w.size, bool)
        expected[np.argsort(-np.abs(w))[:k]] = True
        np.testing.assert_array_equal(np.asarray(masks[name]["w"]).reshape(-1).astype(bool), expected)
        np.testing.assert_array_equal(np.asarray(sparse[name]["w"]).reshape(-1), np.where(expected, w, 0.0))
    np.testing.assert_array_equal(sparse["dense"]["b"], PARAMS["dense"]["b"])


def test_global_magnitude_uses_one_threshold_over_normalised_layers():
    updater = jaxpruner.create_updater_from_config(config("global_magnitude"))
    _, masks = updater.instant_sparsify(PARAMS)
    scores = {n: np.abs(np.asarray(PARAMS[n]["w"])) / np.linalg.norm(np.asarray(PARAMS[n]["w"]))
              for n in ("conv", "dense", "out")}
    kept = np.concatenate([scores[n][np.asarray(masks[n]["w"]) == 1] for n in scores])
    dropped = np.concatenate([scores[n][np.asarray(masks[n]["w"]) == 0] for n in scores])
    assert kept.min() >= dropped.max()
    densities = {n: float(np.mean(masks[n]["w"])) for n in scores}
    assert len(set(densities.values())) > 1  # the layer sparsities follow from the global top-k


def test_ste_forward_is_masked_and_gradients_reach_the_dense_weights():
    updater = jaxpruner.create_updater_from_config(config("magnitude_ste", update_start_step=None))
    state = updater.wrap_optax(optax.sgd(1.0)).init(PARAMS)
    forward = updater.pre_forward_update(PARAMS, state)
    w = PARAMS["dense"]["w"]
    kept = forward["dense"]["w"] != 0
    assert int(kept.sum()) == round(0.25 * w.size)
    np.testing.assert_array_equal(forward["dense"]["w"], jnp.where(kept, w, 0.0))
    probe = jax.random.normal(jax.random.PRNGKey(5), w.shape)
    grad = jax.grad(lambda p: jnp.sum(updater.pre_forward_update(p, state)["dense"]["w"] * probe))(PARAMS)
    np.testing.assert_allclose(grad["dense"]["w"], probe)  # straight through: pruned weights get gradient too


@pytest.mark.slow
def test_ste_training_keeps_the_stored_weights_dense():
    updater = jaxpruner.create_updater_from_config(config("magnitude_ste", update_start_step=None))
    params, state = train(updater, steps=3)
    assert float(jnp.mean(params["dense"]["w"] == 0)) == 0.0
    forward = updater.pre_forward_update(params, state)
    assert int(jnp.sum(forward["dense"]["w"] != 0)) == round(0.25 * params["dense"]["w"].size)


DROP_AND_GROW = dict(update_start_step=1, update_freq=1000, update_end_step=1000, drop_fraction=0.5)


@functools.lru_cache(maxsize=None)
def drop_and_grow_updater(algorithm: str, seed: int = 0):
    return jaxpruner.create_updater_from_config(config(algorithm, rng_seed=seed, **DROP_AND_GROW))


@functools.lru_cache(maxsize=None)
def drop_and_grow_step(algorithm: str):
    """One compiled step per algorithm: the seed only enters the state (init), so all seeds share it."""
    updater = drop_and_grow_updater(algorithm)
    return make_step(updater, updater.wrap_optax(optax.adam(1e-2)))


@pytest.mark.parametrize("algorithm", [pytest.param("set", marks=pytest.mark.slow), "rigl"])
def test_drop_and_grow_keeps_sparsity_and_resets_regrown_moments(algorithm):
    updater = drop_and_grow_updater(algorithm)
    state = updater.wrap_optax(optax.adam(1e-2)).init(PARAMS)
    params = updater.post_gradient_update(PARAMS, state)
    step = drop_and_grow_step(algorithm)
    params, state = step(params, state)  # t = 0: no mask update, Adam moments become nonzero
    before, mu_before = updater.masks_of(state, params), state.inner_state[0].mu
    grads = jax.grad(loss)(params)
    params, state = step(params, state)  # t = 1: drop half of the active weights, regrow as many
    after = updater.masks_of(state, params)
    adam = state.inner_state[0]
    for name in ("conv", "dense", "out"):
        old, new = np.asarray(before[name]["w"]).astype(bool), np.asarray(after[name]["w"]).astype(bool)
        assert new.sum() == old.sum()  # constant sparsity across drop-and-grow
        grown = new & ~old
        assert grown.any()
        np.testing.assert_array_equal(np.asarray(adam.mu[name]["w"])[grown], 0.0)
        np.testing.assert_array_equal(np.asarray(adam.nu[name]["w"])[grown], 0.0)
        np.testing.assert_array_equal(np.asarray(params[name]["w"])[grown], 0.0)
        # kept weights keep their moments (regrown ones, even if just dropped, restart at 0 with zero moments)
        untouched = old & new & (np.asarray(params[name]["w"]) != 0) & (np.asarray(mu_before[name]["w"]) != 0)
        assert untouched.any() and np.abs(np.asarray(adam.mu[name]["w"])[untouched]).min() > 0
        if algorithm == "rigl" and name == "dense":
            g = np.abs(np.asarray(grads[name]["w"]))
            assert g[grown].min() >= np.percentile(g[~old], 50)  # grown where |g| is large


def test_gradual_magnitude_prunes_on_the_polynomial_schedule():
    updater = jaxpruner.create_updater_from_config(config("magnitude", update_start_step=2, update_end_step=6))
    tx = updater.wrap_optax(optax.adam(1e-2))
    state, params = tx.init(PARAMS), PARAMS
    step = make_step(updater, tx)
    density = []
    for _ in range(8):
        params, state = step(params, state)
        density.append(float(jnp.mean(updater.masks_of(state, params)["dense"]["w"])))
    s = [0.75 * (1 - (1 - min(max((t - 2) / 4, 0), 1)) ** 3) for t in range(8)]
    expected = [1.0, 1.0, round((1 - s[2]) * 640) / 640, round((1 - s[2]) * 640) / 640,
                round((1 - s[4]) * 640) / 640, round((1 - s[4]) * 640) / 640, 0.25, 0.25]
    np.testing.assert_allclose(density, expected)
    masks = updater.masks_of(state, params)
    for name in ("conv", "dense", "out"):  # the stored weights are exactly as sparse as the masks
        assert int(jnp.sum(params[name]["w"] != 0)) == int(masks[name]["w"].sum()) == round(0.25 * params[name]["w"].size)
    assert masks["dense"]["b"] is None and float(jnp.mean(params["dense"]["b"] != 0)) > 0.5  # trained, not pruned


def test_contract_jits_deterministic_per_seed_different_across_seeds():
    step = drop_and_grow_step("rigl")  # compiled once (shared with the drop-and-grow test)

    def run(seed):
        updater = drop_and_grow_updater("rigl", seed)
        state = updater.wrap_optax(optax.adam(1e-2)).init(PARAMS)
        params = updater.post_gradient_update(PARAMS, state)
        shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
        for _ in range(3):  # steps 0, 1 (drop and grow), 2
            params, state = step(params, state)
            assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == shapes  # state shapes stable
        return params, state

    (p0, s0), (p0b, s0b), (p1, s1) = run(0), run(0), run(1)
    chex.assert_trees_all_equal(s0.masks, s0b.masks)
    chex.assert_trees_all_equal(p0, p0b)
    assert not np.array_equal(s0.masks["dense"]["w"], s1.masks["dense"]["w"])
    chex.assert_tree_all_finite(p0)


def test_structured_pruning_through_the_updater():
    updater = jaxpruner.create_updater_from_config(config("magnitude", sparsity_type="nm_2,4"))
    _, masks = updater.instant_sparsify(PARAMS)
    assert (np.asarray(masks["dense"]["w"]).T.reshape(16, 10, 4).sum(-1) == 2).all()


def test_bit_packed_masks_take_an_eighth_of_the_bytes():
    sizes = (3 * 3 * 2 * 8, 40 * 16, 16 * 3)
    plain = jaxpruner.create_updater_from_config(config("static_sparse"))
    packed = jaxpruner.create_updater_from_config(config("static_sparse", bit_packing=True))
    s1 = plain.wrap_optax(optax.adam(1e-2)).init(PARAMS)
    s2 = packed.wrap_optax(optax.adam(1e-2)).init(PARAMS)
    chex.assert_trees_all_equal(packed.masks_of(s2, PARAMS), s1.masks)
    assert jaxpruner.mask_bytes(s1) == sum(sizes)
    assert jaxpruner.mask_bytes(s2) == sum(-(-n // 8) for n in sizes)


@pytest.mark.slow
def test_bit_packed_masks_train_identically():
    plain = jaxpruner.create_updater_from_config(config("rigl"))
    packed = jaxpruner.create_updater_from_config(config("rigl", bit_packing=True))
    p1, s1 = train(plain, steps=5)
    p2, s2 = train(packed, steps=5)
    chex.assert_trees_all_equal(p1, p2)
    chex.assert_trees_all_equal(packed.masks_of(s2, p2), plain.masks_of(s1, p1))


def test_masks_survive_a_checkpoint_round_trip(tmp_path):
    updater = jaxpruner.create_updater_from_config(config("static_sparse", bit_packing=True, rng_seed=3))
    tx = updater.wrap_optax(optax.adam(1e-2))
    state = tx.init(PARAMS)
    params = updater.post_gradient_update(PARAMS, state)
    checkpointer = Checkpointer(str(tmp_path / "ckpt"))
    checkpointer.save(5, {"params": params, "opt": state})
    checkpointer.close()
    template = {"params": PARAMS, "opt": jaxpruner.create_updater_from_config(config("static_sparse", bit_packing=True))
                .wrap_optax(optax.adam(1e-2)).init(PARAMS)}  # another seed: other masks
    assert not np.array_equal(template["opt"].masks["dense"]["w"], state.masks["dense"]["w"])
    restored = Checkpointer(str(tmp_path / "ckpt")).restore(5, template)
    chex.assert_trees_all_equal(restored["opt"], state)
    chex.assert_trees_all_equal(restored["params"], params)
    assert restored["opt"].masks["dense"]["b"] is None


def test_registration_and_config_errors():
    @dataclasses.dataclass(frozen=True)
    class Smallest(algos.BaseUpdater):
        """Keeps the smallest weights (a test algorithm)."""

        def scores(self, params, grads, masks, key):
            return algos._map_masked(lambda m, p: -jnp.abs(p), masks, params)

    jaxpruner.register_algorithm("smallest_test", Smallest)
    try:
        updater = jaxpruner.create_updater_from_config(config("smallest_test"))
        _, masks = updater.instant_sparsify(PARAMS)
        w = np.abs(np.asarray(PARAMS["out"]["w"]))
        assert w[np.asarray(masks["out"]["w"]) == 1].max() <= w[np.asarray(masks["out"]["w"]) == 0].min()
    finally:
        del jaxpruner.ALGORITHM_REGISTRY["smallest_test"]
    with pytest.raises(ValueError, match="unknown algorithm 'nope'"):
        jaxpruner.create_updater_from_config(config("nope"))
    with pytest.raises(ValueError, match="sparsity must be"):
        jaxpruner.create_updater_from_config({**config("magnitude"), "sparsity": 1.5})
    with pytest.raises(ValueError, match="dist_type"):
        jaxpruner.create_updater_from_config({**config("magnitude"), "dist_type": "normal"})
    with pytest.raises(TypeError):
        jaxpruner.register_algorithm("bad", object)


def test_summaries_report_per_layer_and_total_sparsity():
    updater = jaxpruner.create_updater_from_config(config("magnitude"))
    sparse, masks = updater.instant_sparsify(PARAMS)
    summary = jaxpruner.summarize_sparsity(sparse)
    assert float(summary["dense/w"]) == 0.75 and float(summary["dense/b"]) == 1.0  # zero-initialised biases
    np.testing.assert_allclose(summary["_prunable_sparsity"], 0.75, atol=1 / 144)
    assert set(jaxpruner.summarize_sparsity(sparse, only_total_sparsity=True)) == {"_total_sparsity",
                                                                                   "_prunable_sparsity"}
