"""Miniworld headless behind dm-env: reset/step, the twin task's success and time limit, bad ids."""
import numpy as np
import pytest

import importlib.util

if importlib.util.find_spec("miniworld") is None:  # not imported here: pyglet's headless option comes first
    pytest.skip("pip install '.[miniworld]'", allow_module_level=True)

from environments import miniworld  # noqa: E402  (sets pyglet's headless option, then imports miniworld)
from environments.minigrid import detokenize  # noqa: E402

pytestmark = pytest.mark.timeout(300)
LEFT, RIGHT, FORWARD = 0, 1, 2


@pytest.fixture(scope="module")
def twin_env():
    env = miniworld.DmEnv(miniworld.TWIN_ID, seed=0)
    yield env
    env.close()


def _turns(target_pos):
    # The agent starts at (4.5, 4.5) facing +x; a left turn faces −z (Miniworld's dir → (cos, −sin)).
    x, z = target_pos[0], target_pos[2]
    if x > 6:
        return []
    if z < 3:
        return [LEFT]
    if z > 6:
        return [RIGHT]
    return [LEFT, LEFT]


def test_twin_resets_and_steps_headless_with_its_mission(twin_env):
    ts = twin_env.reset()
    assert ts.first()
    image, mission = ts.observation["image"], ts.observation["mission"]
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8 and image.std() > 0  # something was rendered
    words = detokenize(mission).split()
    assert words[:3] == ["go", "to", "the"] and words[3] in ("red", "green", "blue", "purple", "yellow", "grey")
    assert words[4] in ("ball", "box", "key")
    assert twin_env.observation_spec()["mission"].shape == mission.shape
    assert twin_env.action_spec().num_values == 3


@pytest.mark.parametrize("episode", range(3))
def test_twin_success_is_a_termination_with_miniworld_reward(twin_env, episode):
    ts = twin_env.reset()
    target = twin_env._env.unwrapped.target_obj.pos
    actions = _turns(target) + [FORWARD] * 3
    for a in actions:
        ts = twin_env.step(a)
    assert ts.last() and ts.discount == 0.0
    assert ts.reward == pytest.approx(1 - 0.2 * len(actions) / 100)
    assert twin_env.step(FORWARD).first()  # the step after LAST starts a new episode


def test_twin_time_limit_is_a_truncation(twin_env):
    twin_env.reset()
    for t in range(100):
        ts = twin_env.step(LEFT)  # spinning never reaches an object
        if t < 99:
            assert ts.mid()
    assert ts.last() and ts.discount == 1.0 and ts.reward == 0.0


def test_a_registered_environment_steps():
    env = miniworld.DmEnv("MiniWorld-OneRoom-v0", seed=1, obs_size=(30, 40))
    ts = env.reset()
    assert ts.observation["image"].shape == (30, 40, 3)
    assert not ts.observation["mission"].any()  # OneRoom has no mission: all padding
    for _ in range(5):
        ts = env.step(FORWARD)
    assert ts.observation["image"].dtype == np.uint8
    env.close()


def test_unknown_id_is_one_clear_error():
    with pytest.raises(miniworld.UnknownMiniworldError, match=r"unknown Miniworld environment 'MiniWorld-OneRom-v0'.*MiniWorld-OneRoom-v0"):
        miniworld.make("MiniWorld-OneRom-v0")
    assert miniworld.TWIN_ID in miniworld.env_ids()


def test_mission_tokens_drop_unknown_words():
    assert detokenize(miniworld.mission_tokens("go to the red box please")) == "go to the red box"
    assert not miniworld.mission_tokens(None).any()
