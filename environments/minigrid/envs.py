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
from typing import Callable, Dict, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp

from environments.minigrid import core, missions, rules

Array = chex.Array

VOCABULARY, MISSION_LENGTH, tokenize, detokenize = (missions.VOCABULARY, missions.MISSION_LENGTH, missions.tokenize,
                                                    missions.detokenize)
Layout = core.Layout


class Spec(NamedTuple):
    """A registered environment: its size, time limit and layout generator."""

    width: int
    height: int
    max_steps: int
    generate: Callable  # key -> Layout
    see_through_walls: bool = False
    view_size: int = 7
    rule: str = "goal"  # the family's step rule (environments.minigrid.rules)
    num_obstacles: int = 0  # Dynamic-Obstacles: balls that move every step


def _layout(grid, agent_pos, agent_dir, mission, box_contents=None, task=None) -> Layout:
    """A :class:`Layout`; ``mission`` is a string or ``[L]`` token ids."""
    grid = jnp.asarray(grid, jnp.uint8)
    contents = jnp.broadcast_to(jnp.asarray(core.EMPTY_CELL), grid.shape) if box_contents is None else box_contents
    tokens = jnp.asarray(tokenize(mission)) if isinstance(mission, str) else jnp.asarray(mission, jnp.int32)
    return Layout(grid=grid, box_contents=contents, agent_pos=jnp.asarray(agent_pos, jnp.int32),
                  agent_dir=jnp.asarray(agent_dir, jnp.int32), mission=tokens, task=task)


def _walled(size: int, height: int | None = None) -> Array:
    height = size if height is None else height
    return core.wall_rect(jnp.asarray(core.empty_grid(size, height)), 0, 0, size, height)


def empty_env(size: int, *, random_start: bool) -> Callable:
    """``EmptyEnv``: walls around, the goal in the bottom-right corner, agent at (1, 1) facing right
    (``-Random-``: anywhere free, any direction)."""

    def generate(key: Array) -> Layout:
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        if random_start:
            rand = core.Uniforms(key, 2)
            pos = rand.free_cell(grid)
            direction = rand.randint(0, 4)
        else:
            pos, direction = jnp.array([1, 1]), jnp.array(0)
        return _layout(grid, pos, direction, "get to the green goal square")

    return generate


def door_key_env(size: int) -> Callable:
    """``DoorKeyEnv``: a wall at a random column splits the room; a locked yellow door in it; the
    agent and a yellow key on the left, the goal bottom-right."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 5)
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        split = rand.randint(2, size - 2)
        grid = core.vert_wall(grid, split, 0)
        agent_pos = rand.free_cell(grid, size=(split, size))
        agent_dir = rand.randint(0, 4)
        door = rand.randint(1, size - 2)
        grid = core.put(grid, split, door, core.cell("door", "yellow", "locked"))
        key_pos = rand.free_cell(grid, size=(split, size), exclude=agent_pos)
        grid = core.put(grid, key_pos[0], key_pos[1], core.cell("key", "yellow"))
        return _layout(grid, agent_pos, agent_dir, "use the key to open the door and then get to the goal")

    return generate


def lava_gap_env(size: int) -> Callable:
    """``LavaGapEnv``: a vertical line of lava at a random column with one gap at a random row; agent
    at (1, 1) facing right, goal bottom-right."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 2)
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        gap_x = rand.randint(2, size - 2)
        gap_y = rand.randint(1, size - 1)
        grid = core.vert_wall(grid, gap_x, 1, size - 2, obj=core.cell("lava"))
        grid = core.put(grid, gap_x, gap_y, core.EMPTY_CELL)
        return _layout(grid, jnp.array([1, 1]), jnp.array(0), "avoid the lava and get to the green goal square")

    return generate


def four_rooms_env(size: int = 19) -> Callable:
    """``FourRoomsEnv``: four rooms joined by one random opening in each inner wall segment;
    agent and goal anywhere free (agent first, random direction)."""
    room = size // 2

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 7)
        grid = _walled(size)
        grid = core.vert_wall(grid, room, 0, room)  # upper half of the inner vertical wall
        grid = core.put(grid, room, rand.randint(1, room), core.EMPTY_CELL)
        grid = core.horz_wall(grid, 0, room, room)  # left half of the inner horizontal wall
        grid = core.put(grid, rand.randint(1, room), room, core.EMPTY_CELL)
        grid = core.horz_wall(grid, room, room, room)  # right half
        grid = core.put(grid, rand.randint(room + 1, 2 * room), room, core.EMPTY_CELL)
        grid = core.vert_wall(grid, room, room, room)  # lower half
        grid = core.put(grid, room, rand.randint(room + 1, 2 * room), core.EMPTY_CELL)
        agent_pos = rand.free_cell(grid)
        agent_dir = rand.randint(0, 4)
        goal = rand.free_cell(grid, exclude=agent_pos)
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
    from environments.minigrid import families, rooms
    envs.update(families.registry())
    envs.update(rooms.registry())
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
    observe: Callable  # State -> Observation


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
        task = layout.task
        if task is None:
            if spec.num_obstacles:
                raise ValueError(f"{env_id} needs the layout's task (obstacle positions and a PRNG key)")
            task = core.new_task()
        state = core.new_state(layout.grid, layout.agent_pos, layout.agent_dir, layout.mission,
                               box_contents=layout.box_contents, task=task)
        return state, observe(state)

    def reset(key: Array):
        return from_layout(spec.generate(key))

    def step(state: core.State, action: Array):
        out = rules.step(spec.rule, state, jnp.asarray(action, jnp.int32), max_steps=spec.max_steps)
        return out.state, core.StepOutput(observation=observe(out.state), reward=out.reward,
                                          terminated=out.terminated, truncated=out.truncated)

    def step_auto_reset(key: Array, state: core.State, action: Array):
        """``step``; when the episode ends, the returned state (and observation) is a new episode's
        first, while reward/terminated/truncated are those of the finished step (gymnax style)."""
        state, out = step(state, action)  # its observation is dropped unused (jit removes it)
        state = select(out.terminated | out.truncated, reset(key)[0], state)
        return state, out._replace(observation=observe(state))

    return MiniGrid(env_id=env_id, spec=spec, reset=reset, step=step, step_auto_reset=step_auto_reset,
                    from_layout=from_layout, observe=observe)


def select(done: Array, fresh, state):
    """``fresh`` where ``done`` else ``state`` (pytrees of one environment, or of a batch with ``done`` ``[N]``)."""
    return jax.tree.map(lambda a, b: jnp.where(jnp.reshape(done, done.shape + (1,) * (a.ndim - done.ndim)), a, b),
                        fresh, state)


def batch_step_auto_reset(env: MiniGrid, key: Array, state: core.State, action: Array, *,
                          pool_size: int | None = None) -> Tuple[core.State, core.StepOutput]:
    """``vmap(env.step_auto_reset)`` over a batch (leading axis N), generating fewer layouts.

    ``vmap(step_auto_reset)`` generates N fresh layouts every step and keeps the few whose
    episode ended. Here only ``pool_size`` layouts (default N // 16) are generated, from
    ``key``, and the k-th environment to finish this step takes the k-th; in a step where
    more than ``pool_size`` finish (synchronised time-outs), all N are generated instead
    (``lax.cond`` at the batch level, so the common step pays for the pool only). Every
    finished episode still restarts from a fresh, independently drawn layout: the
    distribution is the official one; only which random numbers are used differs.
    """
    num_envs = action.shape[0]
    pool_size = max(1, num_envs // 16) if pool_size is None else pool_size
    if not 1 <= pool_size <= num_envs:
        raise ValueError(f"pool_size must be in [1, {num_envs}], got {pool_size}")
    state, out = jax.vmap(env.step)(state, action)  # observations are made once, at the end
    done = out.terminated | out.truncated
    fresh_states = lambda n: jax.vmap(env.reset)(jax.random.split(key, n))[0]  # noqa: E731

    def from_pool(_):
        rank = jnp.minimum(jnp.cumsum(done) - 1, pool_size - 1)  # the k-th finished environment takes layout k
        return jax.tree.map(lambda a: a[rank], fresh_states(pool_size))

    fresh = jax.lax.cond(jnp.sum(done) <= pool_size, from_pool, lambda _: fresh_states(num_envs), None)
    state = select(done, fresh, state)
    return state, out._replace(observation=jax.vmap(env.observe)(state))
