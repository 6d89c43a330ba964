"""Miniworld (the official ``miniworld`` package, 3-D) behind the dm-env interface, headless.

Chevalier-Boisvert et al. 2023, arXiv 2306.13831. Set-up (README.md): ``pip install
'.[miniworld]'`` (miniworld 2.1, pyglet 1.5); nothing from apt. Miniworld renders with
OpenGL through pyglet; with pyglet's ``headless`` option pyglet opens an EGL context without
a display, which the Mesa libraries of the system give in software (llvmpipe). The option
must be set before pyglet creates anything, so this module sets it before it imports
``miniworld`` — import Miniworld through :func:`make`, not directly, in the same process.

* :func:`make`: a ``gymnasium`` environment of ``env_id`` (every ``MiniWorld-*`` id the
  package registers, and ``MiniWorld-GoToObjTwin-v0``, the twin task of the paper's transfer
  case study, ``twin.py``); an unknown id raises :class:`UnknownMiniworldError` naming the
  closest ids.
* :class:`DmEnv`: one environment as a ``dm_env.Environment`` like
  ``environments.minigrid.adapters.DmEnv``: observations ``{"image": [H, W, 3] uint8,
  "mission": [20] int32}`` (the mission as Minigrid's token ids, words outside Minigrid's
  vocabulary dropped; all padding when the environment has no mission), discount 0 on
  termination, 1 on truncation, and the step after a LAST one starts a new episode.
"""
from __future__ import annotations

import difflib
import re
from typing import Optional, Tuple

import dm_env
import numpy as np
from dm_env import specs

from environments.minigrid import missions

TWIN_ID = "MiniWorld-GoToObjTwin-v0"
DEFAULT_OBS_SIZE = (60, 80)  # Miniworld's own default (obs_height, obs_width)


class UnknownMiniworldError(ValueError):
    """An id that is not a Miniworld environment; the message lists the closest ids."""


def _import_miniworld():
    """Imports ``miniworld`` (registering its ids) with pyglet in headless mode."""
    import pyglet

    pyglet.options["headless"] = True
    import miniworld  # noqa: F401  (registers MiniWorld-* with gymnasium)

    return miniworld


def env_ids() -> Tuple[str, ...]:
    """Every id :func:`make` accepts."""
    _import_miniworld()
    import gymnasium as gym

    return tuple(sorted([i for i in gym.registry if i.startswith("MiniWorld-")] + [TWIN_ID]))


def check_env_id(env_id: str) -> None:
    """Raises :class:`UnknownMiniworldError` (closest ids named) unless ``env_id`` is known."""
    known = env_ids()
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.4)
        raise UnknownMiniworldError(f"unknown Miniworld environment {env_id!r}; closest: {close or list(known[:3])}")


def make(env_id: str, *, obs_size: Tuple[int, int] = DEFAULT_OBS_SIZE, **kwargs):
    """A headless ``gymnasium`` Miniworld environment (``obs_size`` = (height, width) of the view)."""
    check_env_id(env_id)
    height, width = obs_size
    if env_id == TWIN_ID:
        from environments.miniworld.twin import GoToObjTwinEnv

        return GoToObjTwinEnv(obs_height=height, obs_width=width, **kwargs)
    import gymnasium as gym

    return gym.make(env_id, obs_height=height, obs_width=width, **kwargs)


def mission_tokens(mission: Optional[str]) -> np.ndarray:
    """``[20]`` int32 Minigrid token ids of ``mission``; words Minigrid does not know are dropped."""
    words = [w for w in re.findall(r"[a-z]+", (mission or "").lower()) if w in missions.WORD_TO_ID]
    return missions.tokenize(" ".join(words[:missions.MISSION_LENGTH]))


class DmEnv(dm_env.Environment):
    """A Miniworld environment as a ``dm_env.Environment`` (see the module docstring)."""

    def __init__(self, env_id: str, *, seed: int = 0, obs_size: Tuple[int, int] = DEFAULT_OBS_SIZE, **kwargs):
        self._env = make(env_id, obs_size=obs_size, **kwargs)
        self._seed: Optional[int] = seed
        self._needs_reset = True
        self.obs_size = tuple(obs_size)

    def _observation(self, image) -> dict:
        return {"image": np.asarray(image, np.uint8),
                "mission": mission_tokens(getattr(self._env.unwrapped, "mission", None))}

    def reset(self) -> dm_env.TimeStep:
        image, _ = self._env.reset(seed=self._seed)
        self._seed = None  # seeded once; later episodes continue the generator
        self._needs_reset = False
        return dm_env.restart(self._observation(image))

    def step(self, action) -> dm_env.TimeStep:
        if self._needs_reset:
            return self.reset()
        image, reward, terminated, truncated, _ = self._env.step(int(action))
        obs, reward = self._observation(image), float(reward)
        if terminated or truncated:
            self._needs_reset = True
            return dm_env.termination(reward, obs) if terminated else dm_env.truncation(reward, obs)
        return dm_env.transition(reward, obs)

    def observation_spec(self):
        return {"image": specs.BoundedArray((*self.obs_size, 3), np.uint8, 0, 255, name="image"),
                "mission": specs.BoundedArray((missions.MISSION_LENGTH,), np.int32, 0, len(missions.VOCABULARY) - 1,
                                              name="mission")}

    def action_spec(self):
        return specs.DiscreteArray(int(self._env.action_space.n), name="action")

    def close(self) -> None:
        self._env.close()
