"""The Minigrid half of the paper's twin "go to the {colour} {object}" task, in JAX.

Chevalier-Boisvert et al. 2023 (arXiv 2306.13831), Sec. 5, built one task in both libraries
for the transfer case study (their ``GoToObjEnv`` for Minigrid, ``MiniworldGoToObjEnv`` for
Miniworld; the Miniworld half is ``environments.miniworld.twin``). Minigrid's, as in their
code: an 11×11 room (9×9 inside, walls around), four objects at the middles of the walls,
(5, 1), (1, 5), (9, 5), (5, 9), each a ball, box or key; the agent in the centre (5, 5) facing
right; the mission names one of the four. The episode ends with 1 − 0.9·t/T when the agent
faces the target (any action), and at T = 4·11² = 484 steps; see-through-walls on (theirs).

Departures: the colours of the four objects are distinct (as Miniworld's half draws them;
the Minigrid half drew them with replacement, so its mission could name two objects), and
the agent has the three actions both halves share (left, right, forward; the paper's
Minigrid agent had all seven, its ``toggle`` ended the episode).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core, envs, missions

ENV_ID = "MiniGrid-GoToObjTwin-11x11-v0"
SIZE = 11
MAX_STEPS = 4 * SIZE * SIZE
NUM_ACTIONS = 3  # left, right, forward: the actions Miniworld's half has too
OBJECT_CELLS = np.array([(5, 1), (1, 5), (9, 5), (5, 9)], np.int32)
KINDS = np.array([core.BALL, core.BOX, core.KEY], np.int32)  # the reference's ["ball", "box", "key"]
SPEC = envs.Spec(width=SIZE, height=SIZE, max_steps=MAX_STEPS, generate=None, see_through_walls=True)


def generate(key: jax.Array) -> core.Layout:
    """A fresh layout: kinds uniform with repeats, four distinct colours, a uniform target."""
    kind_key, color_key, target_key = jax.random.split(key, 3)
    kinds = jnp.asarray(KINDS)[jax.random.randint(kind_key, (4,), 0, len(KINDS))]
    colors = jax.random.permutation(color_key, len(core.COLOR_NAMES))[:4]
    grid = core.wall_rect(jnp.asarray(core.empty_grid(SIZE, SIZE)), 0, 0, SIZE, SIZE)
    for k, (x, y) in enumerate(OBJECT_CELLS):
        grid = core.put(grid, int(x), int(y), jnp.stack([kinds[k], colors[k], 0]).astype(jnp.uint8))
    target = jax.random.randint(target_key, (), 0, 4)
    mission = missions.fill("go to the {color} {kind}", color=missions.color_token(colors[target]),
                            kind=missions.object_token(kinds[target]))
    return core.Layout(grid=grid, box_contents=jnp.zeros_like(grid), agent_pos=jnp.array([5, 5], jnp.int32),
                       agent_dir=jnp.asarray(0, jnp.int32), mission=mission,
                       task=core.new_task(target_pos=jnp.asarray(OBJECT_CELLS)[target]))


def make() -> envs.MiniGrid:
    """The twin task as a :class:`environments.minigrid.MiniGrid` (same pure-function interface)."""

    def observe(state):
        return core.observe(state, view_size=SPEC.view_size, see_through_walls=True)

    def from_layout(layout):
        state = core.new_state(layout.grid, layout.agent_pos, layout.agent_dir, layout.mission,
                               box_contents=layout.box_contents, task=layout.task)
        return state, observe(state)

    def reset(key):
        return from_layout(generate(key))

    def step(state, action):
        state, reward, terminated, truncated = core.step_dynamics(state, jnp.asarray(action, jnp.int32),
                                                                  max_steps=MAX_STEPS)
        facing = jnp.all(core.front_pos(state) == state.task.target_pos)
        reward = jnp.where(facing, (1.0 - 0.9 * state.step_count / MAX_STEPS).astype(jnp.float32), reward)
        return state, core.StepOutput(observation=observe(state), reward=reward, terminated=terminated | facing,
                                      truncated=truncated)

    def step_auto_reset(key, state, action):
        state, out = step(state, action)
        state = envs.select(out.terminated | out.truncated, reset(key)[0], state)
        return state, out._replace(observation=observe(state))

    return envs.MiniGrid(env_id=ENV_ID, spec=SPEC._replace(generate=generate), reset=reset, step=step,
                         step_auto_reset=step_auto_reset, from_layout=from_layout, observe=observe)
