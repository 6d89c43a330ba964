"""The families' own step rules: what ends an episode and what is rewarded beyond the goal and lava.

Each rule wraps :func:`core.step_dynamics` as the official environment's ``step`` wraps
``MiniGridEnv.step``, and returns :class:`Transition`. The rule is chosen statically by the
environment's spec (``Spec.rule``); every rule is pure JAX over the state, the
family-specific pieces (targets, obstacles) living in ``State.task``.

| rule | official | success (reward 1 − 0.9·t/T, terminated) | ends with reward 0 |
|---|---|---|---|
* ``goal`` (most families): the goal; lava ends with reward 0.
* ``unlock`` (Unlock): ``toggle`` leaving the door open.
* ``pickup`` (UnlockPickup, BlockedUnlockPickup, KeyCorridor): ``pickup`` with the target in hand.
* ``goto`` (GoToDoor, GoToObject): ``done`` on a cell next to the target (4-neighbourhood); ``done``
  elsewhere and ``toggle`` end the episode with reward 0.
* ``fetch`` (Fetch): holding an object of the target's kind and colour; holding any other ends
  with reward 0.
* ``put_near`` (PutNear): a drop that lands within one cell (8-neighbourhood) of the target;
  picking up another object, or any drop while carrying, ends with reward 0.
* ``red_blue`` (RedBlueDoors): the blue door opened while the red one is open; the blue door
  opened first, or the red one opened while the blue one is open, ends with reward 0.
* ``memory`` (Memory): reaching the cell beside the matching object (``pickup`` acts as
  ``toggle``); the other object's cell ends with reward 0.
* ``dynamic_obstacles`` (Dynamic-Obstacles): the goal; ``forward`` facing anything but the
  goal or an empty cell (checked before the balls move) gives reward −1 and ends the episode;
  actions ≥ 3 act as ``left``.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from environments.minigrid import core

Array = chex.Array

RULES = ("goal", "unlock", "pickup", "goto", "fetch", "put_near", "red_blue", "memory", "dynamic_obstacles")


class Transition(NamedTuple):
    state: core.State
    reward: Array  # [] float32
    terminated: Array  # [] bool
    truncated: Array  # [] bool


def success_reward(step_count: Array, max_steps: int) -> Array:
    """``[]`` float32 1 − 0.9·t/T (``MiniGridEnv._reward``)."""
    return (1.0 - 0.9 * (step_count / max_steps)).astype(jnp.float32)


def _door_open(grid: Array, color: int) -> Array:
    """Whether a door of ``color`` in the grid is open (the families with one door per colour)."""
    return jnp.any((grid[..., 0] == core.DOOR) & (grid[..., 1] == color) & (grid[..., 2] == core.OPEN))


def _same_object(a: Array, b: Array) -> Array:
    return (a[0] == b[0]) & (a[1] == b[1])


def move_obstacles(state: core.State, key: Array) -> Array:
    """``[K, 2]`` int32 where each obstacle goes: uniform over the free cells of its 3 × 3 neighbourhood.

    ``DynamicObstaclesEnv.step`` moves the balls one after another with
    ``place_obj(top=pos − 1, size=(3, 3), max_tries=100)``: a cell that is empty (after the
    earlier balls moved) and not the agent's; a ball with no such cell stays. The official
    rejection sampler gives up after 100 proposals, so with one free cell of nine it stays
    with probability (8/9)^101 ≈ 7e-6; here it always moves when it can.
    """
    grid = state.grid
    width, height = grid.shape[:2]
    xs, ys = jnp.arange(width)[:, None], jnp.arange(height)[None, :]
    targets = []
    draws = jax.random.uniform(key, (state.task.obstacles.shape[0],))
    for k in range(state.task.obstacles.shape[0]):
        old = state.task.obstacles[k]
        free = core.rect_mask((width, height), old - 1, (3, 3)) & (grid[..., 0] == core.EMPTY)
        free = free & ~((xs == state.agent_pos[0]) & (ys == state.agent_pos[1]))
        new = jnp.where(jnp.any(free), core.sample_cell(draws[k], free), old)
        grid = _move_ball(grid, old, new)
        targets.append(new)
    return jnp.stack(targets) if targets else state.task.obstacles


def _move_ball(grid: Array, old: Array, new: Array) -> Array:
    ball = grid[old[0], old[1]]
    return grid.at[old[0], old[1]].set(jnp.asarray(core.EMPTY_CELL)).at[new[0], new[1]].set(ball)


def apply_obstacle_moves(state: core.State, action: Array, targets: Array, *, max_steps: int) -> Transition:
    """The Dynamic-Obstacles step with the obstacles' new cells given (``[K, 2]``, from :func:`move_obstacles`).

    Split out so that tests can feed the official package's random moves.
    """
    action = jnp.where(action >= 3, core.LEFT, action)
    fwd = core.front_pos(state)
    front = state.grid[fwd[0], fwd[1]]
    not_clear = (front[0] != core.EMPTY) & (front[0] != core.GOAL)  # checked before the obstacles move
    grid = state.grid
    for k in range(targets.shape[0]):
        grid = _move_ball(grid, state.task.obstacles[k], targets[k])
    state = state._replace(grid=grid, task=state.task._replace(obstacles=targets))
    state, reward, terminated, truncated = core.step_dynamics(state, action, max_steps=max_steps)
    collided = (action == core.FORWARD) & not_clear
    return Transition(state, jnp.where(collided, jnp.float32(-1.0), reward), terminated | collided, truncated)


def step(rule: str, state: core.State, action: Array, *, max_steps: int) -> Transition:
    """One step of the family ``rule`` (static) from ``state`` with ``action`` (``[]`` int32)."""
    if rule == "dynamic_obstacles":
        rng, key = jax.random.split(state.task.rng)
        state = state._replace(task=state.task._replace(rng=rng))
        return apply_obstacle_moves(state, action, move_obstacles(state, key), max_steps=max_steps)
    if rule == "memory":
        action = jnp.where(action == core.PICKUP, core.TOGGLE, action)
    before = state
    state, reward, terminated, truncated = core.step_dynamics(state, action, max_steps=max_steps)
    win = success_reward(state.step_count, max_steps)
    zero = jnp.float32(0.0)
    task = state.task
    if rule == "goal":
        pass
    elif rule == "unlock":
        door_open = (state.grid[..., 0] == core.DOOR) & (state.grid[..., 2] == core.OPEN)  # Unlock's one door
        success = (action == core.TOGGLE) & jnp.any(door_open)
        reward, terminated = jnp.where(success, win, reward), terminated | success
    elif rule == "pickup":
        success = (action == core.PICKUP) & _same_object(state.carrying, task.target)
        reward, terminated = jnp.where(success, win, reward), terminated | success
    elif rule == "goto":
        delta = jnp.abs(state.agent_pos - task.target_pos)
        beside = jnp.sum(delta) == 1
        done = action == core.DONE
        reward = jnp.where(done & beside, win, reward)
        terminated = terminated | done | (action == core.TOGGLE)
    elif rule == "fetch":
        holding = state.carrying[0] != core.EMPTY
        right = _same_object(state.carrying, task.target)
        reward = jnp.where(holding, jnp.where(right, win, zero), reward)
        terminated = terminated | holding
    elif rule == "put_near":
        wrong_pickup = ((action == core.PICKUP) & (state.carrying[0] != core.EMPTY)
                        & ~_same_object(state.carrying, task.target))
        was_carrying = before.carrying[0] != core.EMPTY
        drop = (action == core.DROP) & was_carrying
        fwd = core.front_pos(state)
        landed = before.grid[fwd[0], fwd[1], 0] == core.EMPTY  # the drop put the object there
        near = jnp.all(jnp.abs(fwd - task.target_pos) <= 1)
        reward = jnp.where(drop & landed & near, win, reward)
        terminated = terminated | wrong_pickup | drop
    elif rule == "red_blue":
        red, blue = core.COLOR_TO_IDX["red"], core.COLOR_TO_IDX["blue"]
        red_before, blue_before = _door_open(before.grid, red), _door_open(before.grid, blue)
        red_after, blue_after = _door_open(state.grid, red), _door_open(state.grid, blue)
        reward = jnp.where(blue_after, jnp.where(red_before, win, zero), reward)
        terminated = terminated | blue_after | (red_after & blue_before)
        reward = jnp.where(~blue_after & red_after & blue_before, zero, reward)
    elif rule == "memory":
        success = jnp.all(state.agent_pos == task.target_pos)
        failure = jnp.all(state.agent_pos == task.other_pos)
        reward = jnp.where(success, win, reward)
        reward = jnp.where(failure, zero, reward)
        terminated = terminated | success | failure
    else:
        raise ValueError(f"unknown rule {rule!r}; known: {RULES}")
    return Transition(state, reward, terminated, truncated)
