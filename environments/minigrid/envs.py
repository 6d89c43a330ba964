"""Minigrid environments as pure functions: layout generators with the official distributions.

Each environment id of the official package (``MiniGrid-Empty-8x8-v0``, ...) maps to a
generator ``key -> Layout`` that builds a fresh random layout exactly as the official
``_gen_grid`` does (same walls, same objects, same sampling regions; positions uniform over
the free cells as the official rejection sampling), and to the official ``max_steps``.
:func:`make` wraps a generator into :class:`MiniGrid`: ``reset``/``step`` (jittable and
vmappable), and ``step_auto_reset`` for training loops.
"""
from __future__ import annotations

import difflib
import re
from typing import Callable, Dict, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core

Array = chex.Array

VOCABULARY = ("<pad>", "get", "to", "the", "green", "goal", "square", "use", "key", "open", "door", "and", "then",
              "red", "blue", "purple", "yellow", "grey", "avoid", "lava", "reach", "ball", "box", "go", "pick",
              "up", "a", "an", "put", "near", "object", "traverse", "rooms", "unlock", "find")
"""Mission words; token 0 pads. ``tokenize``/``detokenize`` map missions to ``[MISSION_LENGTH]`` ids."""
MISSION_LENGTH = 16
_WORD_TO_ID = {w: i for i, w in enumerate(VOCABULARY)}


def tokenize(mission: str, length: int = MISSION_LENGTH) -> np.ndarray:
    """``[length]`` int32 token ids of a mission string (ValueError names an unknown word)."""
    words = re.findall(r"[a-z]+", mission.lower())
    unknown = [w for w in words if w not in _WORD_TO_ID]
    if unknown or len(words) > length:
        raise ValueError(f"cannot tokenize mission {mission!r}: unknown words {unknown} or longer than {length}")
    return np.array([_WORD_TO_ID[w] for w in words] + [0] * (length - len(words)), np.int32)


def detokenize(tokens) -> str:
    return " ".join(VOCABULARY[int(t)] for t in np.asarray(tokens) if int(t) != 0)


class Layout(NamedTuple):
    """A freshly generated world (the official ``_gen_grid`` result)."""

    grid: Array  # [W, H, 3] uint8
    box_contents: Array  # [W, H, 3] uint8
    agent_pos: Array  # [2] int32
    agent_dir: Array  # [] int32
    mission: Array  # [L] int32


class Spec(NamedTuple):
    """A registered environment: its size, time limit and layout generator."""

    width: int
    height: int
    max_steps: int
    generate: Callable  # key -> Layout
    see_through_walls: bool = False
    view_size: int = 7


def _layout(grid, agent_pos, agent_dir, mission: str, box_contents=None) -> Layout:
    grid = jnp.asarray(grid, jnp.uint8)
    contents = jnp.broadcast_to(jnp.asarray(core.EMPTY_CELL), grid.shape) if box_contents is None else box_contents
    return Layout(grid=grid, box_contents=contents, agent_pos=jnp.asarray(agent_pos, jnp.int32),
                  agent_dir=jnp.asarray(agent_dir, jnp.int32), mission=jnp.asarray(tokenize(mission)))


def _walled(size: int) -> Array:
    return core.wall_rect(jnp.asarray(core.empty_grid(size, size)), 0, 0, size, size)


def empty_env(size: int, *, random_start: bool) -> Callable:
    """``EmptyEnv``: walls around, the goal in the bottom-right corner, agent at (1, 1) facing right
    (``-Random-``: anywhere free, any direction)."""

    def generate(key: Array) -> Layout:
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        if random_start:
            pos_key, dir_key = jax.random.split(key)
            pos = core.sample_free_cell(pos_key, grid)
            direction = jax.random.randint(dir_key, (), 0, 4)
        else:
            pos, direction = jnp.array([1, 1]), jnp.array(0)
        return _layout(grid, pos, direction, "get to the green goal square")

    return generate


def door_key_env(size: int) -> Callable:
    """``DoorKeyEnv``: a wall at a random column splits the room; a locked yellow door in it; the
    agent and a yellow key on the left, the goal bottom-right."""

    def generate(key: Array) -> Layout:
        split_key, agent_key, dir_key, door_key, key_key = jax.random.split(key, 5)
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        split = jax.random.randint(split_key, (), 2, size - 2)
        grid = core.vert_wall(grid, split, 0)
        agent_pos = core.sample_free_cell(agent_key, grid, size=(split, size))
        agent_dir = jax.random.randint(dir_key, (), 0, 4)
        door = jax.random.randint(door_key, (), 1, size - 2)
        grid = core.put(grid, split, door, core.cell("door", "yellow", "locked"))
        key_pos = core.sample_free_cell(key_key, grid, size=(split, size), exclude=agent_pos)
        grid = core.put(grid, key_pos[0], key_pos[1], core.cell("key", "yellow"))
        return _layout(grid, agent_pos, agent_dir, "use the key to open the door and then get to the goal")

    return generate


def lava_gap_env(size: int) -> Callable:
    """``LavaGapEnv``: a vertical line of lava at a random column with one gap at a random row; agent
    at (1, 1) facing right, goal bottom-right."""

    def generate(key: Array) -> Layout:
        x_key, y_key = jax.random.split(key)
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        gap_x = jax.random.randint(x_key, (), 2, size - 2)
        gap_y = jax.random.randint(y_key, (), 1, size - 1)
        grid = core.vert_wall(grid, gap_x, 1, size - 2, obj=core.cell("lava"))
        grid = core.put(grid, gap_x, gap_y, core.EMPTY_CELL)
        return _layout(grid, jnp.array([1, 1]), jnp.array(0), "avoid the lava and get to the green goal square")

    return generate


def four_rooms_env(size: int = 19) -> Callable:
    """``FourRoomsEnv``: four rooms joined by one random opening in each inner wall segment;
    agent and goal anywhere free (agent first, random direction)."""
    room = size // 2

    def generate(key: Array) -> Layout:
        keys = jax.random.split(key, 7)
        grid = _walled(size)
        grid = core.vert_wall(grid, room, 0, room)  # upper half of the inner vertical wall
        grid = core.put(grid, room, jax.random.randint(keys[0], (), 1, room), core.EMPTY_CELL)
        grid = core.horz_wall(grid, 0, room, room)  # left half of the inner horizontal wall
        grid = core.put(grid, jax.random.randint(keys[1], (), 1, room), room, core.EMPTY_CELL)
        grid = core.horz_wall(grid, room, room, room)  # right half
        grid = core.put(grid, jax.random.randint(keys[2], (), room + 1, 2 * room), room, core.EMPTY_CELL)
        grid = core.vert_wall(grid, room, room, room)  # lower half
        grid = core.put(grid, room, jax.random.randint(keys[3], (), room + 1, 2 * room), core.EMPTY_CELL)
        agent_pos = core.sample_free_cell(keys[4], grid)
        agent_dir = jax.random.randint(keys[5], (), 0, 4)
        goal = core.sample_free_cell(keys[6], grid, exclude=agent_pos)
        grid = core.put(grid, goal[0], goal[1], core.cell("goal"))
        return _layout(grid, agent_pos, agent_dir, "reach the goal")

    return generate


def _registry() -> Dict[str, Spec]:
    envs = {}
    for size in (5, 6, 8, 16):
        # The official EmptyEnv passes see_through_walls=True; DoorKey keeps the default (False).
        envs[f"MiniGrid-Empty-{size}x{size}-v0"] = Spec(size, size, 4 * size * size, empty_env(size, random_start=False),
                                                        see_through_walls=True)
        envs[f"MiniGrid-DoorKey-{size}x{size}-v0"] = Spec(size, size, 10 * size * size, door_key_env(size))
    for size in (5, 6, 7):
        envs[f"MiniGrid-LavaGapS{size}-v0"] = Spec(size, size, 4 * size * size, lava_gap_env(size))
    envs["MiniGrid-FourRooms-v0"] = Spec(19, 19, 100, four_rooms_env(19))
    for size in (5, 6):
        envs[f"MiniGrid-Empty-Random-{size}x{size}-v0"] = Spec(size, size, 4 * size * size,
                                                                empty_env(size, random_start=True), see_through_walls=True)
    return envs


REGISTRY = _registry()
ENV_IDS = tuple(sorted(REGISTRY))


class MiniGrid(NamedTuple):
    """Pure functions of one registered environment (jit and vmap them at the call site)."""

    env_id: str
    spec: Spec
    reset: Callable  # key -> (State, Observation)
    step: Callable  # (State, action []) -> (State, StepOutput)
    step_auto_reset: Callable  # (key, State, action []) -> (State, StepOutput): a finished episode restarts
    from_layout: Callable  # Layout -> (State, Observation): start from a given world (parity tests, editors)


def make(env_id: str, *, max_steps: int | None = None, see_through_walls: bool | None = None) -> MiniGrid:
    """The environment ``env_id`` (a ValueError names the closest known ids).

    ``max_steps`` and ``see_through_walls`` override the official values (as the official
    constructors' arguments do).
    """
    if env_id not in REGISTRY:
        close = difflib.get_close_matches(env_id, ENV_IDS, n=3, cutoff=0.5)
        raise ValueError(f"unknown Minigrid environment {env_id!r}; closest: {close or ENV_IDS[:3]}")
    spec = REGISTRY[env_id]
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        spec = spec._replace(max_steps=max_steps)
    if see_through_walls is not None:
        spec = spec._replace(see_through_walls=see_through_walls)

    def observe(state):
        return core.observe(state, view_size=spec.view_size, see_through_walls=spec.see_through_walls)

    def from_layout(layout: Layout) -> Tuple[core.State, core.Observation]:
        state = core.new_state(layout.grid, layout.agent_pos, layout.agent_dir, layout.mission,
                               box_contents=layout.box_contents)
        return state, observe(state)

    def reset(key: Array):
        return from_layout(spec.generate(key))

    def step(state: core.State, action: Array):
        state, reward, terminated, truncated = core.step_dynamics(state, jnp.asarray(action, jnp.int32),
                                                                  max_steps=spec.max_steps)
        return state, core.StepOutput(observation=observe(state), reward=reward, terminated=terminated,
                                      truncated=truncated)

    def step_auto_reset(key: Array, state: core.State, action: Array):
        """``step``; when the episode ends, the returned state (and observation) is a new episode's
        first, while reward/terminated/truncated are those of the finished step (gymnax style)."""
        state, out = step(state, action)
        fresh, fresh_obs = reset(key)
        done = out.terminated | out.truncated
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, state)
        obs = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh_obs, out.observation)
        return state, out._replace(observation=obs)

    return MiniGrid(env_id=env_id, spec=spec, reset=reset, step=step, step_auto_reset=step_auto_reset,
                    from_layout=from_layout)
