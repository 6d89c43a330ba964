"""The Miniworld half of the paper's twin "go to the {colour} {object}" task.

Chevalier-Boisvert et al. 2023 (arXiv 2306.13831), Sec. 5: the Minigrid task
(``algorithms.minigrid_transfer.twin``) rebuilt in 3-D for the transfer case study, as their
``MiniworldGoToObjEnv``: a 9×9 room, four objects (ball, box or key, four distinct colours)
at the middles of the walls, the agent in the centre facing +x; "fast" movement (forward
0.9, turns of 90°, no domain randomisation) so that one step moves about one Minigrid cell;
three actions (turn left, turn right, move forward); the episode ends with Miniworld's
reward 1 − 0.2·t/T when the point 0.8 ahead of the agent is within 0.2 of the target, and at
T = 100 steps. Random draws use the environment's seeded ``np_random`` (theirs used numpy's
global generator).

Import through :func:`environments.miniworld.make` (which sets pyglet's headless option
first); this module imports ``miniworld`` at import time.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from miniworld.entity import COLOR_NAMES, Ball, Box, Key
from miniworld.miniworld import MiniWorldEnv
from miniworld.params import DEFAULT_PARAMS

ENV_ID = "MiniWorld-GoToObjTwin-v0"
KINDS = (("ball", Ball), ("box", Box), ("key", Key))
POSITIONS = ((0.9, 4.5), (4.5, 8.1), (8.1, 4.5), (4.5, 0.9))  # (x, z) at the walls' middles


class GoToObjTwinEnv(MiniWorldEnv):
    """``go to the {colour} {kind}`` in a 9×9 room (the paper's ``MiniworldGoToObjEnv``)."""

    def __init__(self, size: int = 9, max_episode_steps: int = 100, **kwargs):
        self.size = size
        params = DEFAULT_PARAMS.no_random()
        params.set("forward_step", 0.9)
        params.set("turn_step", 90)
        super().__init__(params=params, max_episode_steps=max_episode_steps, **kwargs)
        self.action_space = spaces.Discrete(self.actions.move_forward + 1)
        self.mission = ""

    def _gen_world(self):
        self.add_rect_room(min_x=0, max_x=self.size, min_z=0, max_z=self.size)
        colors = self.np_random.choice(COLOR_NAMES, size=4, replace=False)
        kinds = self.np_random.integers(0, len(KINDS), size=4)
        self.objs = []
        for i, ((x, z), color, kind) in enumerate(zip(POSITIONS, colors, kinds)):
            name, cls = KINDS[kind]
            entity = cls(color=str(color)) if name == "key" else cls(color=str(color), size=0.5)
            self.objs.append(self.place_entity(entity, pos=np.array([x, 0.5, z]), dir=i * np.pi / 2))
        target = int(self.np_random.integers(0, 4))
        self.target_obj = self.objs[target]
        self.mission = f"go to the {colors[target]} {KINDS[kinds[target]][0]}"
        self.place_agent(pos=np.array([4.5, 0.5, 4.5]), dir=0.0)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        ahead = np.array([self.agent.pos[0] + 0.8 * np.cos(self.agent.dir),
                          self.agent.pos[2] - 0.8 * np.sin(self.agent.dir)])
        if np.hypot(*(ahead - self.target_obj.pos[[0, 2]])) <= 0.2:
            reward += self._reward()
            terminated = True
        return obs, reward, terminated, truncated, info
