"""dm-env and gymnasium adapters of the JAX Minigrid: episode semantics and spaces."""
import numpy as np
import pytest

from environments.minigrid import adapters, core

PATH = [core.FORWARD, core.FORWARD, core.RIGHT, core.FORWARD, core.FORWARD]  # Empty-5x5: the goal in 5 steps


def test_dm_env_adapter_episode_semantics():
    env = adapters.DmEnv("MiniGrid-Empty-5x5-v0", max_steps=5)
    ts = env.reset()
    assert ts.first() and ts.observation["image"].shape == (7, 7, 3)
    for action in PATH:
        ts = env.step(action)
    # A success on the last allowed step: the termination it also is (discount 0), reward 1 − 0.9.
    assert ts.last() and ts.discount == 0.0 and ts.reward == pytest.approx(0.1)
    assert env.step(core.FORWARD).first()  # a new episode
    for _ in range(5):
        ts = env.step(core.LEFT)
    assert ts.last() and ts.discount == 1.0 and ts.reward == 0.0  # time limit: truncation
    spec = env.observation_spec()
    spec["image"].validate(ts.observation["image"])
    assert env.action_spec().num_values == 7


def test_gymnasium_adapter_matches_the_official_flags():
    gym = pytest.importorskip("gymnasium")
    env = adapters.gymnasium_env("MiniGrid-Empty-5x5-v0", max_steps=5)
    assert isinstance(env, gym.Env)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for action in PATH:
        obs, reward, terminated, truncated, _ = env.step(action)
    assert terminated and truncated and reward == pytest.approx(0.1)
    assert env.observation_space.contains(obs) and obs["image"].dtype == np.uint8
