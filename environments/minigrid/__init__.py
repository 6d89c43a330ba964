"""Minigrid in JAX, exact to the official ``minigrid`` package (arXiv 2306.13831).

``make(env_id)`` returns a :class:`MiniGrid` of pure ``reset``/``step`` functions over a
:class:`State` pytree, jittable and vmappable; see ``core.py`` for the world and the
dynamics, ``envs.py``, ``families.py`` and ``rooms.py`` for the layout generators, ``rules.py`` for
the families' step rules and ``rendering.py`` for the official RGB images.
"""
from environments.minigrid.core import (ACTIONS, COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX, Observation, State,
                                        StepOutput, Task)
from environments.minigrid.envs import ENV_IDS, Layout, MiniGrid, batch_step_auto_reset, detokenize, make, tokenize
from environments.minigrid.rendering import rgb_full_view, rgb_partial_view

__all__ = ["ACTIONS", "COLOR_TO_IDX", "ENV_IDS", "Layout", "MiniGrid", "OBJECT_TO_IDX", "Observation", "STATE_TO_IDX",
           "State", "StepOutput", "Task", "batch_step_auto_reset", "detokenize", "make", "rgb_full_view",
           "rgb_partial_view", "tokenize"]
