"""ReDo math: scores, masks, recycling of dense and conv layers, Adam moments (arXiv 2302.12902)."""
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms.redo import redo


def test_scores_average_to_one_and_match_the_definition():
    h = jnp.array([[1.0, -2.0, 0.0, 3.0], [3.0, 2.0, 0.0, -1.0]])  # [B=2, H=4]
    scores = redo.neuron_scores(h)
    mean_abs = np.array([2.0, 2.0, 0.0, 2.0])
    np.testing.assert_allclose(scores, mean_abs / mean_abs.mean(), rtol=1e-6)
    np.testing.assert_allclose(scores.mean(), 1.0, rtol=1e-6)


def test_conv_scores_reduce_batch_and_spatial_axes():
    h = jnp.zeros((2, 3, 3, 2)).at[:, :, :, 0].set(1.0).at[0, 0, 0, 1].set(9.0)  # channel 1 active at one place
    scores = redo.neuron_scores(h)
    # E|h_0| = 1, E|h_1| = 9 / 18 = 0.5; layer mean 0.75.
    np.testing.assert_allclose(scores, [1.0 / 0.75, 0.5 / 0.75], rtol=1e-6)


def test_a_silent_layer_scores_zero_and_is_all_dormant():
    scores = redo.neuron_scores(jnp.zeros((4, 3)))
    np.testing.assert_array_equal(scores, np.zeros(3))
    assert bool(redo.dormant_mask(scores, tau=0.0).all())


def test_mask_is_inclusive_at_tau_and_fractions():
    scores = jnp.array([0.0, 0.1, 0.1000001, 2.0])
    mask = redo.dormant_mask(scores, tau=0.1)
    np.testing.assert_array_equal(mask, [True, True, False, False])
    fractions = redo.dormant_fractions({"a": mask, "b": jnp.array([True, False])})
    np.testing.assert_allclose(fractions.per_layer["a"], 0.5)
    np.testing.assert_allclose(fractions.total, 3 / 6)


def _mlp_params():
    def forward(x):
        x = jax.nn.relu(hk.Linear(5, name="l0")(x))
        x = jax.nn.relu(hk.Linear(4, name="l1")(x))
        return hk.Linear(2, name="out")(x)
    net = hk.without_apply_rng(hk.transform(forward))
    return net, net.init(jax.random.PRNGKey(0), jnp.ones((1, 3)))


LINKS = [redo.LayerLink("l0", "l1"), redo.LayerLink("l1", "out")]


def test_recycle_dense_redraws_incoming_zeroes_bias_and_outgoing_rows_only():
    _, params = _mlp_params()
    params = jax.tree.map(lambda x: x + 0.5, params)  # nonzero biases, to see them zeroed
    mask = jnp.array([False, True, False, False, True])
    opt_state = optax.adam(1e-3).init(params)
    new, _ = redo.recycle(params, opt_state, {"l0": mask}, jax.random.PRNGKey(1), links=LINKS)
    w0, w0_new = np.asarray(params["l0"]["w"]), np.asarray(new["l0"]["w"])
    np.testing.assert_array_equal(w0_new[:, ~np.asarray(mask)], w0[:, ~np.asarray(mask)])
    assert not np.any(w0_new[:, np.asarray(mask)] == w0[:, np.asarray(mask)])
    fresh = redo.DEFAULT_INIT(jax.random.split(jax.random.PRNGKey(1), 2)[0], w0.shape, w0.dtype)
    np.testing.assert_array_equal(w0_new[:, np.asarray(mask)], np.asarray(fresh)[:, np.asarray(mask)])
    np.testing.assert_array_equal(new["l0"]["b"], np.where(mask, 0.0, params["l0"]["b"]))
    w1 = np.asarray(new["l1"]["w"])
    np.testing.assert_array_equal(w1[[1, 4]], 0.0)
    np.testing.assert_array_equal(w1[[0, 2, 3]], np.asarray(params["l1"]["w"])[[0, 2, 3]])
    for name in ("out",):
        chex.assert_trees_all_equal(new[name], params[name])
    chex.assert_trees_all_equal(new["l1"]["b"], params["l1"]["b"])


def test_recycling_dead_relu_neurons_leaves_the_output_unchanged():
    net, params = _mlp_params()
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 3))
    mask = jnp.array([True, False, True, False])
    params["l1"]["b"] = jnp.where(mask, -100.0, params["l1"]["b"])  # neurons 0 and 2 never fire
    assert bool(jnp.all(redo.dormant_mask(redo.neuron_scores(
        jax.nn.relu(jax.nn.relu(x @ params["l0"]["w"] + params["l0"]["b"]) @ params["l1"]["w"] + params["l1"]["b"])),
        tau=0.0) == mask))
    new, _ = redo.recycle(params, optax.sgd(0.1).init(params), {"l1": mask}, jax.random.PRNGKey(3), links=LINKS)
    np.testing.assert_allclose(net.apply(new, x), net.apply(params, x), rtol=1e-6, atol=1e-6)


def test_conv_to_dense_outgoing_rows_follow_channels_last_flattening():
    def forward(x):
        x = jax.nn.relu(hk.Conv2D(3, 3, name="conv")(x))  # [B, 2, 2, 3]
        x = hk.Flatten()(x)  # row r carries channel r % 3
        return hk.Linear(4, name="dense")(x)
    net = hk.without_apply_rng(hk.transform(forward))
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 2, 1))
    params = net.init(jax.random.PRNGKey(1), x)
    mask = jnp.array([False, True, False])
    params["conv"]["b"] = params["conv"]["b"].at[1].set(-100.0)  # feature map 1 is dead
    new, _ = redo.recycle(params, optax.adam(1e-3).init(params), {"conv": mask}, jax.random.PRNGKey(2),
                          links=[redo.LayerLink("conv", "dense")])
    dense = np.asarray(new["dense"]["w"])  # [12, 4]
    np.testing.assert_array_equal(dense[[1, 4, 7, 10]], 0.0)
    keep = [r for r in range(12) if r % 3 != 1]
    np.testing.assert_array_equal(dense[keep], np.asarray(params["dense"]["w"])[keep])
    conv = np.asarray(new["conv"]["w"])  # [3, 3, 1, 3]
    np.testing.assert_array_equal(conv[..., [0, 2]], np.asarray(params["conv"]["w"])[..., [0, 2]])
    assert not np.any(conv[..., 1] == np.asarray(params["conv"]["w"])[..., 1])
    np.testing.assert_allclose(net.apply(new, x), net.apply(params, x), rtol=1e-5, atol=1e-6)


def test_adam_moments_reset_only_for_touched_entries_inside_a_chain():
    _, params = _mlp_params()
    optimizer = optax.chain(optax.add_decayed_weights(1e-4), optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = optimizer.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = optimizer.update(grads, state, params)  # nonzero moments everywhere
    mask = jnp.array([True, False, False, True, False])
    new_params, new_state = redo.recycle(params, state, {"l0": mask}, jax.random.PRNGKey(4), links=LINKS)
    adam = [s for s in jax.tree.leaves(new_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]
    old_adam = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
                if isinstance(s, optax.ScaleByAdamState)][0]
    m = np.asarray(mask)
    for moment, old in ((adam.mu, old_adam.mu), (adam.nu, old_adam.nu)):
        np.testing.assert_array_equal(np.asarray(moment["l0"]["w"])[:, m], 0.0)
        np.testing.assert_array_equal(np.asarray(moment["l0"]["w"])[:, ~m], np.asarray(old["l0"]["w"])[:, ~m])
        np.testing.assert_array_equal(np.asarray(moment["l0"]["b"])[m], 0.0)
        np.testing.assert_array_equal(np.asarray(moment["l1"]["w"])[m], 0.0)
        np.testing.assert_array_equal(np.asarray(moment["l1"]["w"])[~m], np.asarray(old["l1"]["w"])[~m])
        chex.assert_trees_all_equal(moment["out"], old["out"])
    assert int(adam.count) == int(old_adam.count)


def test_the_final_layer_is_never_recycled():
    _, params = _mlp_params()
    with pytest.raises(ValueError, match="final layer is never recycled"):
        redo.recycle(params, optax.adam(1e-3).init(params), {"out": jnp.array([True, False])},
                     jax.random.PRNGKey(0), links=LINKS)


def test_recycle_jits_and_schedule():
    _, params = _mlp_params()
    state = optax.adam(1e-3).init(params)
    masks = {"l0": jnp.zeros(5, bool).at[2].set(True), "l1": jnp.zeros(4, bool)}
    f = jax.jit(lambda p, s, m, k: redo.recycle(p, s, m, k, links=LINKS))
    new, _ = f(params, state, masks, jax.random.PRNGKey(0))
    chex.assert_trees_all_equal_shapes_and_dtypes(new, params)
    steps = jnp.arange(0, 3000, 250)
    on = jax.vmap(lambda t: redo.scheduled(t, period=1000, start=500, end=2600))(steps)
    np.testing.assert_array_equal(np.asarray(steps)[np.asarray(on)], [1000, 2000])
    assert not redo.scheduled(jnp.asarray(0), period=1000)
