"""Minigrid's world and dynamics as pure JAX functions, with the official package's semantics.

Chevalier-Boisvert et al. 2023, "Minigrid & Miniworld: Modular & Customizable
Reinforcement Learning Environments for Goal-Oriented Tasks", NeurIPS Datasets and
Benchmarks, arXiv 2306.13831. The reference for every rule here is the official
``minigrid`` package (3.x): same object/colour/state indices, the same 7 actions, the same
egocentric 7×7 view (rotation, off-grid cells as walls, the visibility flood, the carried
object in the agent's cell), the same reward 1 − 0.9·t/T on success and the same
termination and truncation (a success on the last allowed step is both).

The world is a pytree (:class:`State`): the grid as a ``[W, H, 3]`` uint8 array of
(object, colour, state) indices indexed ``[x, y]`` like the official ``Grid.encode()``, an
array of box contents, the agent's pose, what it carries, and the step counter. Cells the
official grid holds as ``None`` are (empty, 0, 0); "carrying nothing" is (empty, 0, 0) too.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = chex.Array

OBJECT_TO_IDX = {"unseen": 0, "empty": 1, "wall": 2, "floor": 3, "door": 4, "key": 5, "ball": 6, "box": 7,
                 "goal": 8, "lava": 9, "agent": 10}
COLOR_TO_IDX = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}
STATE_TO_IDX = {"open": 0, "closed": 1, "locked": 2}
COLOR_NAMES = tuple(COLOR_TO_IDX)
ACTIONS = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
DIR_TO_VEC = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.int32)  # 0 right, 1 down, 2 left, 3 up

UNSEEN, EMPTY, WALL, FLOOR, DOOR, KEY, BALL, BOX, GOAL, LAVA, AGENT = range(11)
OPEN, CLOSED, LOCKED = range(3)
EMPTY_CELL = np.array([EMPTY, 0, 0], np.uint8)
WALL_CELL = np.array([WALL, COLOR_TO_IDX["grey"], 0], np.uint8)


def cell(kind: str, color: str = "grey", state: str | int = 0) -> np.ndarray:
    """``[3]`` uint8 encoding of one object, e.g. ``cell("door", "yellow", "locked")``.

    Default colours follow the official objects: wall grey, goal green, lava red, floor blue.
    """
    defaults = {"wall": "grey", "goal": "green", "lava": "red", "floor": "blue"}
    color = defaults.get(kind, color)
    state = STATE_TO_IDX[state] if isinstance(state, str) else state
    if kind == "empty":
        return EMPTY_CELL.copy()
    return np.array([OBJECT_TO_IDX[kind], COLOR_TO_IDX[color], state], np.uint8)


class Task(NamedTuple):
    """Environment-specific state that a family's success rule reads (fields a family does not use stay zero).

    The official environments keep these as attributes set in ``_gen_grid`` (``target_pos``,
    ``obj``, ``success_pos``, ``obstacles``, ...); here they travel in the state pytree.
    """

    target_pos: Array  # [2] int32 GoToDoor/GoToObject/PutNear target cell; Memory: the success cell
    other_pos: Array  # [2] int32 Memory: the failure cell
    target: Array  # [3] uint8 the object to pick up (KeyCorridor, *UnlockPickup, Fetch) or to move (PutNear)
    obstacles: Array  # [K, 2] int32 Dynamic-Obstacles ball positions (K = 0 elsewhere)
    rng: Array  # [2] uint32 PRNG key of the stochastic dynamics (the obstacles' moves); unused elsewhere


def new_task(*, target_pos=(0, 0), other_pos=(0, 0), target=None, obstacles=None, num_obstacles: int = 0,
             rng=None) -> Task:
    """A :class:`Task` with the given fields, zeros elsewhere."""
    return Task(target_pos=jnp.asarray(target_pos, jnp.int32), other_pos=jnp.asarray(other_pos, jnp.int32),
                target=jnp.zeros(3, jnp.uint8) if target is None else jnp.asarray(target, jnp.uint8),
                obstacles=(jnp.zeros((num_obstacles, 2), jnp.int32) if obstacles is None
                           else jnp.asarray(obstacles, jnp.int32).reshape(-1, 2)),
                rng=jnp.zeros(2, jnp.uint32) if rng is None else jnp.asarray(rng, jnp.uint32))


class Layout(NamedTuple):
    """A freshly generated world (the official ``_gen_grid`` result)."""

    grid: Array  # [W, H, 3] uint8
    box_contents: Array  # [W, H, 3] uint8
    agent_pos: Array  # [2] int32
    agent_dir: Array  # [] int32
    mission: Array  # [L] int32
    task: Task | None = None  # the family's success-rule state; None = zeros (families without one)


class State(NamedTuple):
    """One Minigrid episode in progress."""

    grid: Array  # [W, H, 3] uint8 (object, colour, state) per cell, indexed [x, y]
    box_contents: Array  # [W, H, 3] uint8 what the box at (x, y) holds; (empty, 0, 0) = nothing
    agent_pos: Array  # [2] int32 (x, y)
    agent_dir: Array  # [] int32: 0 right, 1 down, 2 left, 3 up
    carrying: Array  # [3] uint8 the carried object; (empty, 0, 0) = nothing
    carrying_contents: Array  # [3] uint8 the carried box's contents
    step_count: Array  # [] int32 steps taken in this episode
    mission: Array  # [L] int32 token ids of the mission string (environments.minigrid.missions)
    task: Task  # environment-specific state of the success rule (targets, obstacles)


class Observation(NamedTuple):
    """The official ``gen_obs()`` dictionary as arrays."""

    image: Array  # [V, V, 3] uint8 egocentric view, indexed [x, y] as the official image
    direction: Array  # [] int32 agent direction
    mission: Array  # [L] int32 mission token ids


class StepOutput(NamedTuple):
    """What ``step`` returns besides the new state (gymnasium's 5-tuple, minus info)."""

    observation: Observation
    reward: Array  # [] float32 1 − 0.9·t/T on reaching the goal, else 0
    terminated: Array  # [] bool goal or lava reached
    truncated: Array  # [] bool step_count reached max_steps (together with terminated on a last-step success)


def empty_grid(width: int, height: int) -> np.ndarray:
    """``[W, H, 3]`` uint8 grid of empty cells (numpy, for building layouts outside ``jit``)."""
    return np.tile(EMPTY_CELL, (width, height, 1))


# --------------------------------------------------------------------------- world generation (traceable)


def wall_rect(grid: Array, x: int, y: int, w: int, h: int) -> Array:
    """Walls on the border of the rectangle with top-left (x, y), size w × h (``Grid.wall_rect``)."""
    grid = grid.at[x:x + w, y].set(WALL_CELL).at[x:x + w, y + h - 1].set(WALL_CELL)
    return grid.at[x, y:y + h].set(WALL_CELL).at[x + w - 1, y:y + h].set(WALL_CELL)


def vert_wall(grid: Array, x, y=0, length: int | None = None, obj=WALL_CELL) -> Array:
    """A vertical line of ``obj`` (walls) at column ``x`` from row ``y``, both may be traced (``Grid.vert_wall``)."""
    height = grid.shape[1]
    length = height - y if length is None else length
    rows = jnp.arange(height)
    inside = (rows >= y) & (rows < y + length)
    column = jnp.where(inside[:, None], jnp.asarray(obj, grid.dtype), grid[x])
    return grid.at[x].set(column.astype(grid.dtype))


def horz_wall(grid: Array, x, y, length: int | None = None, obj=WALL_CELL) -> Array:
    """A horizontal line of ``obj`` (walls) at row ``y`` from column ``x``, both may be traced (``Grid.horz_wall``)."""
    width = grid.shape[0]
    length = width - x if length is None else length
    cols = jnp.arange(width)
    inside = (cols >= x) & (cols < x + length)
    row = jnp.where(inside[:, None], jnp.asarray(obj, grid.dtype), grid[:, y])
    return grid.at[:, y].set(row.astype(grid.dtype))


def put(grid: Array, x, y, obj) -> Array:
    """The grid with ``obj`` (``[3]``) at (x, y) (``Grid.set``)."""
    return grid.at[x, y].set(jnp.asarray(obj, grid.dtype))


def sample_cell(u: Array, mask: Array) -> Array:
    """Index (``[mask.ndim]`` int32) of a uniformly random True entry of ``mask``, row-major.

    ``u`` (``[]``) is a uniform draw in [0, 1); the r-th True entry for r = ⌊u·count⌋ is
    the distribution of the official rejection samplers (uniform proposals, rejected until
    one passes) in one step. An all-False mask gives index 0 (the official sampler would
    loop or raise there).
    """
    flat = mask.reshape(-1)
    count = jnp.sum(flat)
    r = jnp.floor(u * count).astype(jnp.int32)
    index = jnp.argmax(jnp.cumsum(flat) > r)
    return jnp.stack(jnp.unravel_index(index, mask.shape)).astype(jnp.int32)


class Uniforms:
    """A layout's random numbers: one ``jax.random.uniform`` draw, consumed in order while tracing.

    One draw of ``count`` values compiles far faster than one ``randint``/``split`` per
    choice (each threefry call is compiled separately), and makes every choice a
    function of one uniform: ``randint`` is ⌊low + u·(high − low)⌋, ``cell`` the r-th free
    cell (:func:`sample_cell`), ``permutation`` the argsort of fresh uniforms.
    """

    def __init__(self, key: Array, count: int = 64):
        self._u = jax.random.uniform(key, (count,))
        self._next = 0

    def uniform(self) -> Array:
        if self._next >= self._u.shape[0]:
            raise ValueError(f"Uniforms: all {self._u.shape[0]} draws used; ask for more")
        self._next += 1
        return self._u[self._next - 1]

    def randint(self, low, high) -> Array:
        """``[]`` int32 uniform in {low, …, high − 1} (bounds may be traced)."""
        span = jnp.asarray(high) - jnp.asarray(low)
        return (low + jnp.minimum(jnp.floor(self.uniform() * span).astype(jnp.int32), span - 1)).astype(jnp.int32)

    def cell(self, mask: Array) -> Array:
        return sample_cell(self.uniform(), mask)

    def free_cell(self, grid: Array, **kwargs) -> Array:
        return sample_free_cell(self.uniform(), grid, **kwargs)

    def permutation(self, n: int) -> Array:
        """``[n]`` int32 a uniformly random permutation of 0..n−1."""
        return jnp.argsort(jnp.stack([self.uniform() for _ in range(n)])).astype(jnp.int32)


def rect_mask(shape, top, size) -> Array:
    """``[W, H]`` bool: cells of the rectangle ``top``, ``size`` (both may be traced), clipped as ``place_obj`` clips."""
    width, height = shape
    xs, ys = jnp.arange(width)[:, None], jnp.arange(height)[None, :]
    x0, y0 = jnp.maximum(top[0], 0), jnp.maximum(top[1], 0)
    return (xs >= x0) & (xs < jnp.minimum(x0 + size[0], width)) & (ys >= y0) & (ys < jnp.minimum(y0 + size[1], height))


def sample_free_cell(u: Array, grid: Array, *, top=(0, 0), size=None, exclude=None) -> Array:
    """``[2]`` a uniformly random empty cell in the rectangle ``top``, ``size`` (``place_obj``); ``u`` uniform in [0, 1).

    The official generator samples positions uniformly in the rectangle and rejects occupied
    cells and the agent's cell: the accepted position is uniform over the free cells, which
    is what this draws directly. ``exclude`` (``[2]``) is a further cell to avoid (the agent).
    """
    width, height = grid.shape[:2]
    size = (width, height) if size is None else size
    free = rect_mask((width, height), top, size) & (grid[..., 0] == EMPTY)
    if exclude is not None:
        xs, ys = jnp.arange(width)[:, None], jnp.arange(height)[None, :]
        free = free & ~((xs == exclude[0]) & (ys == exclude[1]))
    return sample_cell(u, free)


def new_state(grid, agent_pos, agent_dir, mission, *, box_contents=None, carrying=None,
              carrying_contents=None, task: Task | None = None) -> State:
    """A fresh :class:`State` (step 0) from a layout; missing pieces are empty."""
    grid = jnp.asarray(grid, jnp.uint8)
    empty = jnp.asarray(EMPTY_CELL)
    return State(
        grid=grid,
        box_contents=jnp.broadcast_to(empty, grid.shape) if box_contents is None else jnp.asarray(box_contents, jnp.uint8),
        agent_pos=jnp.asarray(agent_pos, jnp.int32),
        agent_dir=jnp.asarray(agent_dir, jnp.int32),
        carrying=empty if carrying is None else jnp.asarray(carrying, jnp.uint8),
        carrying_contents=empty if carrying_contents is None else jnp.asarray(carrying_contents, jnp.uint8),
        step_count=jnp.zeros((), jnp.int32),
        mission=jnp.asarray(mission, jnp.int32),
        task=new_task() if task is None else task,
    )


# --------------------------------------------------------------------------- dynamics


def _is(cells: Array, kind: int) -> Array:
    return cells[..., 0] == kind


def can_overlap(cells: Array) -> Array:
    """Empty, floor, goal, lava and open doors can be walked onto (``WorldObj.can_overlap``)."""
    kind = cells[..., 0]
    open_door = (kind == DOOR) & (cells[..., 2] == OPEN)
    return (kind == EMPTY) | (kind == FLOOR) | (kind == GOAL) | (kind == LAVA) | open_door


def see_behind(cells: Array) -> Array:
    """Everything but walls and closed or locked doors lets light through (``WorldObj.see_behind``)."""
    kind = cells[..., 0]
    return (kind != WALL) & ~((kind == DOOR) & (cells[..., 2] != OPEN))


def front_pos(state: State) -> Array:
    """``[2]`` the cell the agent faces."""
    return state.agent_pos + jnp.asarray(DIR_TO_VEC)[state.agent_dir]


def step_dynamics(state: State, action: Array, *, max_steps: int):
    """``(state, reward, terminated, truncated)`` after ``action`` (``MiniGridEnv.step`` without the observation)."""
    chex.assert_rank(action, 0)
    step_count = state.step_count + 1
    width, height = state.grid.shape[:2]
    fwd = jnp.clip(front_pos(state), 0, jnp.array([width - 1, height - 1]))
    fwd_cell = state.grid[fwd[0], fwd[1]]
    fwd_contents = state.box_contents[fwd[0], fwd[1]]
    kind = fwd_cell[0]
    empty = jnp.asarray(EMPTY_CELL)
    carrying_nothing = state.carrying[0] == EMPTY

    agent_dir = jnp.where(action == LEFT, (state.agent_dir + 3) % 4,
                          jnp.where(action == RIGHT, (state.agent_dir + 1) % 4, state.agent_dir))
    moves = (action == FORWARD) & can_overlap(fwd_cell)
    agent_pos = jnp.where(moves, fwd, state.agent_pos)
    reached_goal = (action == FORWARD) & (kind == GOAL)
    terminated = reached_goal | ((action == FORWARD) & (kind == LAVA))
    reward = jnp.where(reached_goal, 1.0 - 0.9 * (step_count / max_steps), 0.0).astype(jnp.float32)

    picks = (action == PICKUP) & ((kind == KEY) | (kind == BALL) | (kind == BOX)) & carrying_nothing
    drops = (action == DROP) & (kind == EMPTY) & ~carrying_nothing
    toggles = action == TOGGLE
    # Doors: locked opens with a key of its colour; closed ↔ open.
    door_state = fwd_cell[2]
    has_key = (state.carrying[0] == KEY) & (state.carrying[1] == fwd_cell[1])
    new_door_state = jnp.where(door_state == LOCKED, jnp.where(has_key, OPEN, LOCKED),
                               jnp.where(door_state == OPEN, CLOSED, OPEN)).astype(jnp.uint8)
    toggled_door = fwd_cell.at[2].set(new_door_state)
    opens_box = toggles & (kind == BOX)

    new_fwd = jnp.where(picks, empty, fwd_cell)
    new_fwd = jnp.where(drops, state.carrying, new_fwd)
    new_fwd = jnp.where(toggles & (kind == DOOR), toggled_door, new_fwd)
    new_fwd = jnp.where(opens_box, fwd_contents, new_fwd)
    new_contents = jnp.where(picks | opens_box, empty, fwd_contents)
    new_contents = jnp.where(drops, state.carrying_contents, new_contents)

    state = state._replace(
        grid=state.grid.at[fwd[0], fwd[1]].set(new_fwd),
        box_contents=state.box_contents.at[fwd[0], fwd[1]].set(new_contents),
        agent_pos=agent_pos, agent_dir=agent_dir,
        carrying=jnp.where(picks, fwd_cell, jnp.where(drops, empty, state.carrying)),
        carrying_contents=jnp.where(picks, fwd_contents, jnp.where(drops, empty, state.carrying_contents)),
        step_count=step_count,
    )
    return state, reward, terminated, step_count >= max_steps


# --------------------------------------------------------------------------- observations


def view_coords(agent_pos: Array, agent_dir: Array, view_size: int) -> Array:
    """``[V, V, 2]`` int32 the world (x, y) of each cell (vx, vy) of the rotated view.

    The inverse of ``MiniGridEnv.get_view_coords``: the agent stands at (V//2, V − 1) looking
    up, so view cell (vx, vy) lies V − 1 − vy cells ahead of it along its direction d and
    vx − V//2 cells to its right along r = (−d_y, d_x). This equals slicing the
    ``get_view_exts`` square and rotating it left ``agent_dir + 1`` times, as ``gen_obs_grid``
    does (``get_view_exts``, ``Grid.slice``, ``rotate_left``), without building either.
    """
    d = jnp.asarray(DIR_TO_VEC)[agent_dir]
    r = jnp.stack([-d[1], d[0]])
    vx = jnp.arange(view_size)[:, None, None]
    vy = jnp.arange(view_size)[None, :, None]
    return (agent_pos + d * (view_size - 1 - vy) + r * (vx - view_size // 2)).astype(jnp.int32)


def view_cells(grid: Array, coords: Array) -> Array:
    """``[V, V, 3]`` the grid's cells at ``coords`` (``[V, V, 2]``), walls off the grid (``Grid.slice``)."""
    width, height = grid.shape[:2]
    x, y = coords[..., 0], coords[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    cells = grid[jnp.clip(x, 0, width - 1), jnp.clip(y, 0, height - 1)]
    return jnp.where(inside[..., None], cells, jnp.asarray(WALL_CELL))


@functools.lru_cache(maxsize=None)
def _row_sweep_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, above)``, each ``[2^V · 2^V]`` int32 indexed ``lit · 2^V + clear``: one row of ``Grid.process_vis``.

    For a row whose lit cells are the bits of ``lit`` and whose transparent cells are the
    bits of ``clear`` (bit i = column i), ``row`` is the row's lit cells after the official
    right-going then left-going sweep and ``above`` the cells it lights in the row above.
    Built once per view size by the official loops, run on every entry at once.
    """
    bits = 1 << np.arange(size)
    index = np.arange(1 << (2 * size))  # every (lit, clear) pair at once
    mask = ((index >> size)[:, None] & bits) != 0  # [E, V]
    transparent = (index[:, None] & bits) != 0
    above = np.zeros_like(mask)
    for i in range(size - 1):  # right-going sweep
        go = mask[:, i] & transparent[:, i]
        mask[:, i + 1] |= go
        above[:, i + 1] |= go
        above[:, i] |= go
    for i in reversed(range(1, size)):  # left-going sweep
        go = mask[:, i] & transparent[:, i]
        mask[:, i - 1] |= go
        above[:, i - 1] |= go
        above[:, i] |= go
    row_table, above_table = (mask @ bits).astype(np.int32), (above @ bits).astype(np.int32)
    return row_table, above_table


def visibility(view: Array) -> Array:
    """``[V, V]`` bool: which cells of the rotated view the agent sees (``Grid.process_vis``).

    The agent stands at (V//2, V − 1). Rows are processed from the agent's row upwards; in
    each row light spreads right, then left, from every lit cell that lets light through
    (:func:`see_behind`), reaching its neighbour in the row and the cells directly and
    diagonally above. A row's outcome depends only on which of its V cells are lit and
    which are transparent, so each row is one lookup in a table of the official loops'
    results (2^(2V) entries: 16,384 for V = 7) with the row encoded as V-bit integers.
    """
    size = view.shape[0]
    if size > 9:
        raise ValueError(f"visibility supports view sizes up to 9 (a 2^(2V)-entry table), got {size}")
    row_table, above_table = (jnp.asarray(t) for t in _row_sweep_tables(size))
    column_bits = jnp.left_shift(jnp.int32(1), jnp.arange(size, dtype=jnp.int32))  # [V] bit of column i
    clear = jnp.sum(jnp.where(see_behind(view), column_bits[:, None], 0), axis=0)  # [V] per row: transparent columns
    lit, rows = jnp.int32(1 << (size // 2)), [None] * size  # the agent's cell
    for j in reversed(range(size)):  # the agent's row first
        index = (lit << size) | clear[j]
        rows[j], lit = row_table[index], above_table[index]
    return (jnp.stack(rows)[None, :] & column_bits[:, None]) != 0


def partial_view(state: State, *, view_size: int = 7, see_through_walls: bool = False) -> Array:
    """``[V, V, 3]`` uint8 the egocentric observation image (``MiniGridEnv.gen_obs``).

    The V × V square ahead of the agent (cells off the grid are walls), rotated so that the
    agent looks up from (V//2, V − 1), occluded cells (0, 0, 0) unless ``see_through_walls``,
    and the agent's own cell showing what it carries.
    """
    view = view_cells(state.grid, view_coords(state.agent_pos, state.agent_dir, view_size))
    mask = jnp.ones((view_size, view_size), bool) if see_through_walls else visibility(view)
    view = view.at[view_size // 2, view_size - 1].set(state.carrying)
    return jnp.where(mask[..., None], view, jnp.zeros((), jnp.uint8))


def full_view(state: State) -> Array:
    """``[W, H, 3]`` uint8 the whole grid with the agent as (agent, red, direction) (``FullyObsWrapper``)."""
    agent = jnp.stack([jnp.uint8(AGENT), jnp.uint8(COLOR_TO_IDX["red"]), state.agent_dir.astype(jnp.uint8)])
    return state.grid.at[state.agent_pos[0], state.agent_pos[1]].set(agent)


def observe(state: State, *, view_size: int = 7, see_through_walls: bool = False) -> Observation:
    return Observation(image=partial_view(state, view_size=view_size, see_through_walls=see_through_walls),
                       direction=state.agent_dir, mission=state.mission)
