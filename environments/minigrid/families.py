"""Layout generators of the single-room families: Crossing, DistShift, Dynamic-Obstacles,
GoToDoor, GoToObject, Fetch, PutNear, RedBlueDoors and Memory.

Each ``*_env`` returns ``key -> Layout`` drawing a fresh layout with the official
``_gen_grid``'s distribution (same walls and regions; the official rejection samplers'
accepted distributions drawn directly, see :func:`core.sample_cell`). ``registry()`` gives
their ids with the official time limits, see-through-walls settings and step rules
(:mod:`environments.minigrid.rules`).
"""
from __future__ import annotations

from typing import Callable, Dict

import chex
import jax
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core, missions
from environments.minigrid.core import Layout
from environments.minigrid.envs import Spec, _layout, _walled

Array = chex.Array

PICKABLE = np.array([core.KEY, core.BALL, core.BOX], np.int32)  # the official ["key", "ball", "box"]


def crossing_env(size: int, num_crossings: int, *, obstacle: str) -> Callable:
    """``CrossingEnv``: ``num_crossings`` rivers of lava (or walls) chosen at random among the
    even rows and columns, one opening per river on a random monotone path from the agent
    (1, 1) to the goal (size − 2, size − 2).

    The official shuffles the candidate rivers and keeps the first N (a uniform N-subset),
    shuffles the path's moves (a uniform interleaving of its horizontal and vertical moves)
    and draws each opening uniformly along the stretch of river bounding the current room.
    """
    candidates = np.arange(2, size - 2, 2)  # rows and columns a river may occupy
    count = len(candidates)
    obstacle_cell = core.cell(obstacle)
    mission = ("avoid the lava and get to the green goal square" if obstacle == "lava"
               else "find the opening and get to the green goal square")

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 2 * count + 2 * num_crossings)
        chosen = rand.permutation(2 * count)[:num_crossings]  # 0..count−1 vertical, rest horizontal
        is_v = jnp.zeros(count, bool).at[jnp.where(chosen < count, chosen, 2 * count)].set(True, mode="drop")
        is_h = jnp.zeros(count, bool).at[jnp.where(chosen >= count, chosen - count, 2 * count)].set(True, mode="drop")
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        inner = (jnp.arange(size) >= 1) & (jnp.arange(size) <= size - 2)
        river_col = jnp.zeros(size, bool).at[candidates].set(is_v)
        river_row = jnp.zeros(size, bool).at[candidates].set(is_h)
        river = (river_col[:, None] & inner[None, :]) | (river_row[None, :] & inner[:, None])
        grid = jnp.where(river[..., None], jnp.asarray(obstacle_cell), grid)
        # Room boundaries: 0, the chosen rivers in order, size − 1 (unchosen slots sort to the end).
        limits_v = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.sort(jnp.where(is_v, candidates, size - 1)),
                                    jnp.full(1, size - 1)])
        limits_h = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.sort(jnp.where(is_h, candidates, size - 1)),
                                    jnp.full(1, size - 1)])
        num_v = jnp.sum(is_v)
        order = rand.permutation(num_crossings)  # step k crosses a vertical river iff order[k] < num_v
        room_i, room_j = jnp.int32(0), jnp.int32(0)
        for k in range(num_crossings):
            across_v = order[k] < num_v
            x_v = limits_v[room_i + 1]
            u = rand.uniform()
            y_v = _scale(u, limits_h[room_j] + 1, limits_h[room_j + 1])
            x_h = _scale(u, limits_v[room_i] + 1, limits_v[room_i + 1])
            y_h = limits_h[room_j + 1]
            x, y = jnp.where(across_v, x_v, x_h), jnp.where(across_v, y_v, y_h)
            grid = core.put(grid, x, y, core.EMPTY_CELL)
            room_i, room_j = room_i + across_v, room_j + ~across_v
        return _layout(grid, jnp.array([1, 1]), jnp.array(0), mission)

    return generate


def dist_shift_env(strip2_row: int, width: int = 9, height: int = 7) -> Callable:
    """``DistShiftEnv``: two strips of lava (row 1 and ``strip2_row``, columns 3..width−4), the
    goal top-right, the agent at (1, 1) facing right. Deterministic."""

    def generate(key: Array) -> Layout:
        del key
        grid = core.put(_walled(width, height), width - 2, 1, core.cell("goal"))
        for x in range(3, width - 3):
            grid = core.put(core.put(grid, x, 1, core.cell("lava")), x, strip2_row, core.cell("lava"))
        return _layout(grid, jnp.array([1, 1]), jnp.array(0), "get to the green goal square")

    return generate


def dynamic_obstacles_env(size: int, num_obstacles: int, *, random_start: bool) -> Callable:
    """``DynamicObstaclesEnv``: the goal bottom-right, the agent at (1, 1) facing right (``-Random-``:
    anywhere free, any direction), then ``num_obstacles`` blue balls anywhere free; the balls'
    positions and a PRNG key for their moves go into the task."""

    def generate(key: Array) -> Layout:
        key, rng = jax.random.split(key)
        rand = core.Uniforms(key, 2 + num_obstacles)
        grid = core.put(_walled(size), size - 2, size - 2, core.cell("goal"))
        if random_start:
            agent_pos = rand.free_cell(grid)
            agent_dir = rand.randint(0, 4)
        else:
            agent_pos, agent_dir = jnp.array([1, 1]), jnp.array(0)
        balls = []
        for _ in range(num_obstacles):
            pos = rand.free_cell(grid, exclude=agent_pos)
            grid = core.put(grid, pos[0], pos[1], core.cell("ball", "blue"))
            balls.append(pos)
        task = core.new_task(obstacles=jnp.stack(balls), rng=_raw_key(rng))
        return _layout(grid, agent_pos, agent_dir, "get to the green goal square", task=task)

    return generate


def _raw_key(key: Array) -> Array:
    """``[2]`` uint32 key data (the state stores raw keys, whichever kind ``reset`` was given)."""
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _distinct_objects(rand: core.Uniforms, count: int, kinds: np.ndarray) -> Array:
    """``[count, 2]`` (kind, colour) pairs, distinct, uniform (the official redraws repeats)."""
    pairs = rand.permutation(len(kinds) * len(core.COLOR_NAMES))[:count]
    return jnp.stack([jnp.asarray(kinds)[pairs // len(core.COLOR_NAMES)], pairs % len(core.COLOR_NAMES)], axis=-1)


def _object_cell(kind: Array, color: Array) -> Array:
    return jnp.stack([kind, color, jnp.zeros_like(kind)]).astype(jnp.uint8)


def go_to_door_env(size: int) -> Callable:
    """``GoToDoorEnv``: a walled room of random size (5..size each way) in the top-left corner,
    four closed doors of distinct random colours, one per wall at a random position (never
    next to a corner), the agent anywhere inside; the target is one of the doors at random."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 16)
        width = rand.randint(5, size + 1)
        height = rand.randint(5, size + 1)
        grid = jnp.asarray(core.empty_grid(size, size))
        xs, ys = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
        inside = (xs < width) & (ys < height)
        border = inside & ((xs == 0) | (ys == 0) | (xs == width - 1) | (ys == height - 1))
        grid = jnp.where(border[..., None], jnp.asarray(core.WALL_CELL), grid)
        doors = jnp.stack([jnp.stack([rand.randint(2, width - 2), jnp.int32(0)]),
                           jnp.stack([rand.randint(2, width - 2), height - 1]),
                           jnp.stack([jnp.int32(0), rand.randint(2, height - 2)]),
                           jnp.stack([width - 1, rand.randint(2, height - 2)])])
        colors = rand.permutation(len(core.COLOR_NAMES))[:4]
        for k in range(4):
            grid = core.put(grid, doors[k, 0], doors[k, 1],
                            jnp.stack([jnp.int32(core.DOOR), colors[k], jnp.int32(core.CLOSED)]))
        agent_pos = rand.free_cell(grid, size=(width, height))
        agent_dir = rand.randint(0, 4)
        target = rand.randint(0, 4)
        mission = missions.fill("go to the {color} door", color=missions.color_token(colors[target]))
        return _layout(grid, agent_pos, agent_dir, mission, task=core.new_task(target_pos=doors[target]))

    return generate


def go_to_object_env(size: int, num_objects: int) -> Callable:
    """``GoToObjectEnv``: ``num_objects`` distinct (kind, colour) keys, balls and boxes anywhere
    free, then the agent; the target is one of them at random."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 24 + num_objects)
        objects = _distinct_objects(rand, num_objects, PICKABLE)
        grid = _walled(size)
        positions = []
        for k in range(num_objects):
            pos = rand.free_cell(grid)
            grid = core.put(grid, pos[0], pos[1], _object_cell(objects[k, 0], objects[k, 1]))
            positions.append(pos)
        agent_pos = rand.free_cell(grid)
        agent_dir = rand.randint(0, 4)
        target = rand.randint(0, num_objects)
        kind, color = objects[target, 0], objects[target, 1]
        mission = missions.fill("go to the {color} {kind}", color=missions.color_token(color),
                                kind=missions.object_token(kind))
        return _layout(grid, agent_pos, agent_dir, mission,
                       task=core.new_task(target_pos=jnp.stack(positions)[target], target=_object_cell(kind, color)))

    return generate


FETCH_SYNTAX = ("get a", "go get a", "fetch a", "go fetch a", "you must fetch a")


def fetch_env(size: int, num_objects: int) -> Callable:
    """``FetchEnv``: ``num_objects`` keys and balls of random colours (repeats allowed) anywhere
    free, then the agent; the target is one of them at random, the mission one of five phrasings."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 4 + 3 * num_objects)
        kinds = jnp.asarray(PICKABLE[:2])[jnp.stack([rand.randint(0, 2) for _ in range(num_objects)])]
        colors = jnp.stack([rand.randint(0, len(core.COLOR_NAMES)) for _ in range(num_objects)])
        grid = _walled(size)
        for k in range(num_objects):
            pos = rand.free_cell(grid)
            grid = core.put(grid, pos[0], pos[1], _object_cell(kinds[k], colors[k]))
        agent_pos = rand.free_cell(grid)
        agent_dir = rand.randint(0, 4)
        target = rand.randint(0, num_objects)
        slots = dict(color=missions.color_token(colors[target]), kind=missions.object_token(kinds[target]))
        phrasings = jnp.stack([missions.fill(f"{s} {{color}} {{kind}}", **slots) for s in FETCH_SYNTAX])
        mission = phrasings[rand.randint(0, len(FETCH_SYNTAX))]
        return _layout(grid, agent_pos, agent_dir, mission,
                       task=core.new_task(target=_object_cell(kinds[target], colors[target])))

    return generate


def put_near_env(size: int, num_objects: int) -> Callable:
    """``PutNearEnv``: ``num_objects`` distinct keys, balls and boxes, each placed free and not
    within one cell (8-neighbourhood) of an earlier one, then the agent; one object to move
    and another as the target, both at random."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 22 + num_objects)
        objects = _distinct_objects(rand, num_objects, PICKABLE)
        grid = _walled(size)
        xs, ys = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
        far = jnp.ones((size, size), bool)
        positions = []
        for k in range(num_objects):
            pos = rand.cell(far & (grid[..., 0] == core.EMPTY))
            grid = core.put(grid, pos[0], pos[1], _object_cell(objects[k, 0], objects[k, 1]))
            far = far & ~((jnp.abs(xs - pos[0]) <= 1) & (jnp.abs(ys - pos[1]) <= 1))
            positions.append(pos)
        positions = jnp.stack(positions)
        agent_pos = rand.free_cell(grid)
        agent_dir = rand.randint(0, 4)
        move = rand.randint(0, num_objects)
        target = (move + rand.randint(1, num_objects)) % num_objects  # uniform over the others
        mission = missions.fill("put the {mc} {mk} near the {tc} {tk}",
                                mc=missions.color_token(objects[move, 1]), mk=missions.object_token(objects[move, 0]),
                                tc=missions.color_token(objects[target, 1]),
                                tk=missions.object_token(objects[target, 0]))
        task = core.new_task(target_pos=positions[target], target=_object_cell(objects[move, 0], objects[move, 1]))
        return _layout(grid, agent_pos, agent_dir, mission, task=task)

    return generate


def red_blue_doors_env(size: int) -> Callable:
    """``RedBlueDoorEnv``: a size × size room in the middle of a 2·size × size grid, the agent
    anywhere inside, a closed red door at a random row of its left wall and a closed blue one
    on its right wall."""

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 4)
        left = size // 2
        grid = core.wall_rect(_walled(2 * size, size), left, 0, size, size)
        agent_pos = rand.free_cell(grid, top=(left, 0), size=(size, size))
        agent_dir = rand.randint(0, 4)
        grid = core.put(grid, left, rand.randint(1, size - 1), core.cell("door", "red", "closed"))
        grid = core.put(grid, left + size - 1, rand.randint(1, size - 1),
                        core.cell("door", "blue", "closed"))
        return _layout(grid, agent_pos, agent_dir, "open the red door then the blue door")

    return generate


def memory_env(size: int, *, random_length: bool) -> Callable:
    """``MemoryEnv``: a small room holding a green key or ball, a hallway to a T junction with a
    green key and a green ball at its two ends (in random order); the agent starts in the
    hallway row at a random column, facing right. Success: the cell beside the object
    matching the first room's."""
    mid = size // 2
    upper, lower = mid - 2, mid + 2

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 4)
        end = rand.randint(4, size - 2) if random_length else jnp.int32(size - 3)
        grid = _walled(size)
        xs, ys = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
        walls = ((xs >= 1) & (xs <= 4) & ((ys == upper) | (ys == lower)))
        walls |= (xs == 4) & ((ys == upper + 1) | (ys == lower - 1))
        walls |= (xs >= 5) & (xs < end) & ((ys == upper + 1) | (ys == lower - 1))
        walls |= ((xs == end) & (ys != mid)) | (xs == end + 2)
        grid = jnp.where(walls[..., None], jnp.asarray(core.WALL_CELL), grid)
        agent_pos = jnp.stack([rand.randint(1, end + 1), jnp.int32(mid)])
        green = core.COLOR_TO_IDX["green"]
        kinds = jnp.array([core.KEY, core.BALL], jnp.int32)
        start_kind = kinds[rand.randint(0, 2)]
        swap = rand.randint(0, 2)  # 0: [ball, key], 1: [key, ball]
        top_kind = jnp.where(swap == 0, core.BALL, core.KEY)
        bottom_kind = jnp.where(swap == 0, core.KEY, core.BALL)
        grid = core.put(grid, 1, mid - 1, _object_cell(start_kind, jnp.int32(green)))
        grid = core.put(grid, end + 1, mid - 2, _object_cell(top_kind, jnp.int32(green)))
        grid = core.put(grid, end + 1, mid + 2, _object_cell(bottom_kind, jnp.int32(green)))
        top_cell, bottom_cell = jnp.stack([end + 1, jnp.int32(mid - 1)]), jnp.stack([end + 1, jnp.int32(mid + 1)])
        match_top = start_kind == top_kind
        task = core.new_task(target_pos=jnp.where(match_top, top_cell, bottom_cell),
                             other_pos=jnp.where(match_top, bottom_cell, top_cell))
        return _layout(grid, agent_pos, jnp.array(0), "go to the matching object at the end of the hallway", task=task)

    return generate


def _scale(u: Array, low, high) -> Array:
    """``[]`` int32 ⌊low + u·(high − low)⌋: a uniform integer in {low, …, high − 1} from u in [0, 1)."""
    span = high - low
    return (low + jnp.minimum(jnp.floor(u * span).astype(jnp.int32), span - 1)).astype(jnp.int32)


def registry() -> Dict[str, Spec]:
    envs = {}
    for size, n in ((9, 1), (9, 2), (9, 3), (11, 5)):
        envs[f"MiniGrid-LavaCrossingS{size}N{n}-v0"] = Spec(size, size, 4 * size * size,
                                                            crossing_env(size, n, obstacle="lava"))
        envs[f"MiniGrid-SimpleCrossingS{size}N{n}-v0"] = Spec(size, size, 4 * size * size,
                                                              crossing_env(size, n, obstacle="wall"))
    for name, row in (("1", 2), ("2", 5)):
        envs[f"MiniGrid-DistShift{name}-v0"] = Spec(9, 7, 4 * 9 * 7, dist_shift_env(row), see_through_walls=True)
    for size, n in ((5, 2), (6, 3), (8, 4), (16, 8)):
        for random_start in ((False, True) if size in (5, 6) else (False,)):
            name = f"MiniGrid-Dynamic-Obstacles-{'Random-' if random_start else ''}{size}x{size}-v0"
            envs[name] = Spec(size, size, 4 * size * size, dynamic_obstacles_env(size, n, random_start=random_start),
                              see_through_walls=True, rule="dynamic_obstacles", num_obstacles=n)
    for size in (5, 6, 8):
        envs[f"MiniGrid-GoToDoor-{size}x{size}-v0"] = Spec(size, size, 4 * size * size, go_to_door_env(size),
                                                           see_through_walls=True, rule="goto")
    for size, n in ((6, 2), (8, 2)):
        envs[f"MiniGrid-GoToObject-{size}x{size}-N{n}-v0"] = Spec(size, size, 5 * size * size,
                                                                  go_to_object_env(size, n), see_through_walls=True,
                                                                  rule="goto")
    for size, n in ((5, 2), (6, 2), (8, 3)):
        envs[f"MiniGrid-Fetch-{size}x{size}-N{n}-v0"] = Spec(size, size, 5 * size * size, fetch_env(size, n),
                                                             see_through_walls=True, rule="fetch")
    for size, n in ((6, 2), (8, 3)):
        envs[f"MiniGrid-PutNear-{size}x{size}-N{n}-v0"] = Spec(size, size, 5 * size, put_near_env(size, n),
                                                               see_through_walls=True, rule="put_near")
    for size in (6, 8):
        envs[f"MiniGrid-RedBlueDoors-{size}x{size}-v0"] = Spec(2 * size, size, 20 * size * size,
                                                               red_blue_doors_env(size), rule="red_blue")
    for size in (7, 9, 11, 13):
        envs[f"MiniGrid-MemoryS{size}-v0"] = Spec(size, size, 5 * size * size, memory_env(size, random_length=False),
                                                  rule="memory")
    for size in (13, 17):
        envs[f"MiniGrid-MemoryS{size}Random-v0"] = Spec(size, size, 5 * size * size,
                                                        memory_env(size, random_length=True), rule="memory")
    return envs
