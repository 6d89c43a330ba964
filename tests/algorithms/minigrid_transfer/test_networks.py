"""The agent's parts: shapes, one params prefix per part, copying parts, the bag-of-tokens mission encoder."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms.minigrid_transfer import networks


def _net(encoder, num_actions=3):
    return hk.without_apply_rng(hk.transform(functools.partial(
        networks.actor_critic, encoder=encoder, num_actions=num_actions, vocab_size=46)))


GRID = jnp.ones((2, 7, 7, 3), jnp.uint8)
PIXELS = jnp.zeros((2, 60, 80, 3), jnp.uint8)
MISSION = jnp.array([[23, 2, 3, 13, 22] + [0] * 15] * 2, jnp.int32)  # go to the red box


@pytest.mark.parametrize("encoder,image", [("grid", GRID), ("pixels", PIXELS)])
def test_shapes_and_parts(encoder, image):
    net = _net(encoder)
    params = net.init(jax.random.PRNGKey(0), image, MISSION)
    out = net.apply(params, image, MISSION)
    assert out.logits.shape == (2, 3) and out.value.shape == (2,)
    assert out.logits.dtype == jnp.float32
    assert {networks.part_of(m) for m in params} == set(networks.PARTS)


def test_copy_parts_moves_only_the_named_parts_across_encoders():
    source = _net("grid").init(jax.random.PRNGKey(0), GRID, MISSION)
    target = _net("pixels").init(jax.random.PRNGKey(1), PIXELS, MISSION)
    out = networks.copy_parts(target, source, ("actor", "mission_encoder"))
    for module, params in out.items():
        origin = source if networks.part_of(module) in ("actor", "mission_encoder") else target
        for name, value in params.items():
            np.testing.assert_array_equal(value, origin[module][name])
    with pytest.raises(ValueError, match="image_encoder"):
        networks.copy_parts(target, source, ("image_encoder",))  # grid and pixel encoders differ
    with pytest.raises(ValueError, match="unknown network parts"):
        networks.copy_parts(target, source, ("policy",))


def test_actor_with_another_action_count_is_refused():
    source = _net("grid", num_actions=7).init(jax.random.PRNGKey(0), GRID, MISSION)
    target = _net("grid", num_actions=3).init(jax.random.PRNGKey(0), GRID, MISSION)
    with pytest.raises(ValueError, match="shape"):
        networks.copy_parts(target, source, ("actor",))


def test_mission_encoder_is_a_bag_of_tokens_ignoring_padding():
    enc = hk.without_apply_rng(hk.transform(lambda m: networks.MissionEncoder(46)(m)))
    params = enc.init(jax.random.PRNGKey(0), MISSION)
    shuffled = jnp.array([[22, 13, 3, 2, 23] + [0] * 15], jnp.int32)
    np.testing.assert_allclose(enc.apply(params, MISSION[:1]), enc.apply(params, shuffled), rtol=1e-6)
    other = jnp.array([[23, 2, 3, 14, 22] + [0] * 15], jnp.int32)  # blue box
    assert not np.allclose(enc.apply(params, MISSION[:1]), enc.apply(params, other))
    empty = jnp.zeros((1, 20), jnp.int32)
    np.testing.assert_allclose(enc.apply(params, empty)[0], params["mission_encoder/linear"]["b"], rtol=1e-6)
