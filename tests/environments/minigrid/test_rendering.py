"""RGB images against the official renderer: every tile, and whole frames of ``RGBImgPartialObsWrapper``
and ``RGBImgObsWrapper`` (tile size 8) along random episodes; pixel equality required."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core, rendering

gym = pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.world_object import WorldObj  # noqa: E402
from minigrid.wrappers import RGBImgObsWrapper, RGBImgPartialObsWrapper  # noqa: E402


def _check_tiles(colors):
    atlas = rendering.tile_atlas(8)
    checked = 0
    for kind in range(core.EMPTY, core.AGENT):
        for color in colors(kind):
            for state in range(3):
                obj = None if kind == core.EMPTY else WorldObj.decode(kind, color, state)
                if obj is not None and tuple(obj.encode()) != (kind, color, state):
                    continue  # not a cell the official world can hold (a red goal, a closed key)
                for direction in range(5):
                    for tint in (False, True):
                        expected = Grid.render_tile(obj, agent_dir=None if direction == 4 else direction,
                                                    highlight=tint, tile_size=8)
                        np.testing.assert_array_equal(atlas[kind, color, state, direction, int(tint)],
                                                      expected.astype(np.uint8), err_msg=str((kind, color, state)))
                        checked += 1
    return checked


def test_a_tile_of_every_object_and_state_matches_the_official_render_tile():
    # One colour per object (cycling), every agent direction, with and without the tint.
    assert _check_tiles(lambda kind: [core.COLOR_TO_IDX["green"]] if kind == core.GOAL else [kind % 6]) > 100


@pytest.mark.slow
def test_every_tile_matches_the_official_render_tile():
    assert _check_tiles(lambda kind: range(len(core.COLOR_NAMES))) > 600


@pytest.mark.parametrize("env_id", ["MiniGrid-KeyCorridorS3R2-v0", "MiniGrid-GoToDoor-6x6-v0",
                                    pytest.param("MiniGrid-LavaCrossingS9N1-v0", marks=pytest.mark.slow)])
def test_rgb_observations_match_the_official_wrappers(env_id):
    spec = minigrid.make(env_id).spec
    partial = jax.jit(rendering.rgb_partial_view)
    full = jax.jit(lambda state: rendering.rgb_full_view(state, view_size=spec.view_size,
                                                         see_through_walls=spec.see_through_walls))
    official = gym.make(env_id)
    rng = np.random.default_rng(0)
    for seed in range(2):
        official.reset(seed=seed)
        env = official.unwrapped
        for t in range(25):
            if t:
                _, _, terminated, truncated, _ = official.step(int(rng.choice(7, p=[.25, .25, .3, .1, 0, .1, 0])))
                if terminated or truncated:
                    break
            carrying = env.carrying.encode() if env.carrying is not None else core.EMPTY_CELL
            state = core.new_state(env.grid.encode(), env.agent_pos, env.agent_dir, np.zeros(20, np.int32),
                                   carrying=carrying)
            image = env.gen_obs()["image"]
            np.testing.assert_array_equal(partial(jnp.asarray(image)), env.get_frame(tile_size=8, agent_pov=True),
                                          err_msg=f"{env_id} seed {seed} step {t} partial")
            np.testing.assert_array_equal(full(state), env.get_frame(highlight=True, tile_size=8),
                                          err_msg=f"{env_id} seed {seed} step {t} full")
    # The wrappers themselves return these frames.
    official.reset(seed=5)
    env = official.unwrapped
    np.testing.assert_array_equal(RGBImgPartialObsWrapper(official).observation(env.gen_obs())["image"],
                                  partial(jnp.asarray(env.gen_obs()["image"])))
    state = core.new_state(env.grid.encode(), env.agent_pos, env.agent_dir, np.zeros(20, np.int32))
    np.testing.assert_array_equal(RGBImgObsWrapper(official).observation(env.gen_obs())["image"], full(state))
