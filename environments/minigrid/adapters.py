"""The JAX Minigrid behind the dm-env and gymnasium interfaces, one environment at a time.

For users of those APIs (evaluation scripts, agents written against ``dm_env`` or
``gymnasium``). Training loops should vmap :func:`environments.minigrid.make`'s pure
functions inside ``jit`` instead; these adapters call the same functions, jitted once.

* :class:`DmEnv`: ``reset()``/``step(action)`` return ``dm_env.TimeStep``; discount 0 on
  termination (goal, lava), 1 on truncation (time limit), and a success on the last allowed
  step counts as the termination it also is. After a LAST step, ``step`` starts a new episode.
* :class:`GymnasiumEnv`: ``reset(seed=...)``/``step(action)`` return gymnasium's tuples
  with the official package's ``terminated``/``truncated`` flags (both on a last-step success).

Observations are dicts ``{"image": [7, 7, 3] uint8, "direction": int, "mission": [MISSION_LENGTH = 20] int32
token ids}`` (the official package gives the mission as a string: ``minigrid.detokenize``).
"""
from __future__ import annotations

from typing import Optional

import dm_env
import jax
import numpy as np
from dm_env import specs

from environments.minigrid import core, envs


def _numpy_obs(obs: core.Observation) -> dict:
    return {"image": np.asarray(obs.image), "direction": int(obs.direction), "mission": np.asarray(obs.mission)}


class _Jitted:
    """One environment's reset and step, jitted once."""

    def __init__(self, env_id: str, **overrides):
        self.env = envs.make(env_id, **overrides)
        self.reset = jax.jit(self.env.reset)
        self.step = jax.jit(self.env.step)


class DmEnv(dm_env.Environment):
    """A single JAX Minigrid environment as a ``dm_env.Environment``."""

    def __init__(self, env_id: str, *, seed: int = 0, **overrides):
        self._fns = _Jitted(env_id, **overrides)
        self._key = jax.random.PRNGKey(seed)
        self._state: Optional[core.State] = None
        self._needs_reset = True

    def reset(self) -> dm_env.TimeStep:
        self._key, key = jax.random.split(self._key)
        self._state, obs = self._fns.reset(key)
        self._needs_reset = False
        return dm_env.restart(_numpy_obs(obs))

    def step(self, action) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        self._state, out = self._fns.step(self._state, int(action))
        obs, reward = _numpy_obs(out.observation), float(out.reward)
        if bool(out.terminated):
            self._needs_reset = True
            return dm_env.termination(reward, obs)
        if bool(out.truncated):
            self._needs_reset = True
            return dm_env.truncation(reward, obs)
        return dm_env.transition(reward, obs)

    def observation_spec(self):
        view = self._fns.env.spec.view_size
        return {"image": specs.BoundedArray((view, view, 3), np.uint8, 0, 255, name="image"),
                "direction": specs.DiscreteArray(4, name="direction"),
                "mission": specs.BoundedArray((envs.MISSION_LENGTH,), np.int32, 0, len(envs.VOCABULARY) - 1,
                                              name="mission")}

    def action_spec(self):
        return specs.DiscreteArray(len(core.ACTIONS), name="action")


def gymnasium_env(env_id: str, **overrides):
    """A single JAX Minigrid environment as a ``gymnasium.Env`` (gymnasium imported on use)."""
    import gymnasium as gym
    from gymnasium import spaces

    class GymnasiumEnv(gym.Env):
        metadata = {"render_modes": []}

        def __init__(self):
            self._fns = _Jitted(env_id, **overrides)
            view = self._fns.env.spec.view_size
            self.observation_space = spaces.Dict({
                "image": spaces.Box(0, 255, (view, view, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "mission": spaces.Box(0, len(envs.VOCABULARY) - 1, (envs.MISSION_LENGTH,), np.int32)})
            self.action_space = spaces.Discrete(len(core.ACTIONS))
            self._key = jax.random.PRNGKey(0)
            self._state = None

        def reset(self, *, seed: Optional[int] = None, options=None):
            super().reset(seed=seed)
            if seed is not None:
                self._key = jax.random.PRNGKey(seed)
            self._key, key = jax.random.split(self._key)
            self._state, obs = self._fns.reset(key)
            return _numpy_obs(obs), {}

        def step(self, action):
            self._state, out = self._fns.step(self._state, int(action))
            return (_numpy_obs(out.observation), float(out.reward), bool(out.terminated), bool(out.truncated), {})

    return GymnasiumEnv()
