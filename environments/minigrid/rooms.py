"""Layout generators of the rooms families: the official ``RoomGrid`` (Unlock, UnlockPickup,
BlockedUnlockPickup, KeyCorridor), MultiRoom and LockedRoom, as pure functions of a key.

``RoomGrid`` is a ``num_rows × num_cols`` array of ``room_size`` rooms sharing walls, with
one candidate door cell drawn per wall between neighbours. Its helpers become functions over
a :class:`Rooms` pytree of fixed-size arrays: :func:`place_in_room` (an object anywhere free
in a room, not on or beside the agent's cell), :func:`place_agent_in_room` (a pose whose
front cell is empty or a wall), :func:`add_door`, :func:`remove_wall` and
:func:`connect_all`, which, like the official, adds doors at random until every room is
reachable, as a ``lax.while_loop`` of at most the official 5000 iterations.

MultiRoom's official generator grows a chain of rooms, each from an exit door of the
previous one (up to 8 tries per room) and restarts from scratch until a chain reaches the
wanted length; :func:`multi_room_env` runs the same process in two nested
``lax.while_loop`` (at most ``MAX_ATTEMPTS`` chains; the official needs about 5 on average
for 6 rooms, so the bound is never met in practice).
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core, missions
from environments.minigrid.core import Layout
from environments.minigrid.envs import Spec, _layout
from environments.minigrid.families import _scale

Array = chex.Array

NUM_COLORS = len(core.COLOR_NAMES)
MAX_CONNECT_ITERATIONS = 5000  # RoomGrid.connect_all's max_itrs
MAX_ATTEMPTS = 1000  # MultiRoom chains tried before giving up (the official tries forever)


class Rooms(NamedTuple):
    """A ``RoomGrid`` under construction (rooms indexed ``[j, i]``: row j, column i)."""

    grid: Array  # [W, H, 3] uint8
    right_y: Array  # [R, C] int32 row of the candidate door in each room's right wall
    bottom_x: Array  # [R, C] int32 column of the candidate door in each room's bottom wall
    open_right: Array  # [R, C] bool a door or an opening in the right wall (room.doors[0] truthy)
    open_bottom: Array  # [R, C] bool the same for the bottom wall
    locked: Array  # [R, C] bool room.locked
    agent_pos: Array  # [2] int32 the agent's cell so far (the middle room's centre until placed)


def room_grid(key: Array, *, room_size: int, num_rows: int, num_cols: int) -> Rooms:
    """``RoomGrid._gen_grid``: the walls of every room and a random door cell in every inner wall."""
    step = room_size - 1
    width, height = step * num_cols + 1, step * num_rows + 1
    grid = jnp.asarray(core.empty_grid(width, height))
    for j in range(num_rows):
        for i in range(num_cols):
            grid = core.wall_rect(grid, i * step, j * step, room_size, room_size)
    u = jax.random.uniform(key, (2, num_rows, num_cols))
    offsets = 1 + jnp.minimum(jnp.floor(u * (room_size - 2)).astype(jnp.int32), room_size - 3)  # U{1, …, size − 2}
    right_y = (jnp.arange(num_rows) * step)[:, None] + offsets[0]
    bottom_x = (jnp.arange(num_cols) * step)[None, :] + offsets[1]
    agent = jnp.array([(num_cols // 2) * step + room_size // 2, (num_rows // 2) * step + room_size // 2], jnp.int32)
    closed = jnp.zeros((num_rows, num_cols), bool)
    return Rooms(grid, right_y.astype(jnp.int32), bottom_x.astype(jnp.int32), closed, closed, closed, agent)


def _step(rooms: Rooms) -> int:
    return (rooms.grid.shape[0] - 1) // rooms.right_y.shape[1]


def door_cell(rooms: Rooms, i, j, k) -> Array:
    """``[2]`` the candidate door cell of wall ``k`` (0 right, 1 bottom, 2 left, 3 up) of room (i, j)."""
    step = _step(rooms)
    num_rows, num_cols = rooms.right_y.shape
    i, j, k = jnp.asarray(i), jnp.asarray(j), jnp.asarray(k)
    ri, rj = jnp.where(k == 2, i - 1, i), jnp.where(k == 3, j - 1, j)  # left/up walls belong to the neighbour
    ri, rj = jnp.clip(ri, 0, num_cols - 1), jnp.clip(rj, 0, num_rows - 1)
    vertical = (k == 0) | (k == 2)
    x = jnp.where(vertical, (ri + 1) * step, rooms.bottom_x[rj, ri])
    y = jnp.where(vertical, rooms.right_y[rj, ri], (rj + 1) * step)
    return jnp.stack([x, y]).astype(jnp.int32)


def has_neighbor(rooms: Rooms, i, j, k) -> Array:
    num_rows, num_cols = rooms.right_y.shape
    return jnp.stack([i < num_cols - 1, j < num_rows - 1, i > 0, j > 0])[k]


def _neighbor(i, j, k):
    return i + jnp.array([1, 0, -1, 0])[k], j + jnp.array([0, 1, 0, -1])[k]


def wall_open(rooms: Rooms, i, j, k) -> Array:
    """Whether wall ``k`` of room (i, j) already has a door or an opening."""
    num_rows, num_cols = rooms.right_y.shape
    ri, rj = jnp.where(k == 2, i - 1, i), jnp.where(k == 3, j - 1, j)
    ri, rj = jnp.clip(ri, 0, num_cols - 1), jnp.clip(rj, 0, num_rows - 1)
    return jnp.where((k == 0) | (k == 2), rooms.open_right[rj, ri], rooms.open_bottom[rj, ri])


def _mark_open(rooms: Rooms, i, j, k, flag=True) -> Rooms:
    num_rows, num_cols = rooms.right_y.shape
    ri, rj = jnp.where(k == 2, i - 1, i), jnp.where(k == 3, j - 1, j)
    ri, rj = jnp.clip(ri, 0, num_cols - 1), jnp.clip(rj, 0, num_rows - 1)
    vertical = (k == 0) | (k == 2)
    flag = jnp.asarray(flag)
    return rooms._replace(
        open_right=rooms.open_right.at[rj, ri].set(jnp.where(vertical & flag, True, rooms.open_right[rj, ri])),
        open_bottom=rooms.open_bottom.at[rj, ri].set(jnp.where(~vertical & flag, True, rooms.open_bottom[rj, ri])))


def add_door(rooms: Rooms, i, j, k, color, *, locked: bool) -> tuple:
    """``RoomGrid.add_door`` at wall ``k`` of room (i, j): ``(rooms, door cell [2])``; ``locked`` marks the room."""
    pos = door_cell(rooms, i, j, k)
    door = jnp.stack([jnp.int32(core.DOOR), jnp.asarray(color, jnp.int32),
                      jnp.int32(core.LOCKED if locked else core.CLOSED)])
    rooms = _mark_open(rooms, i, j, k)._replace(grid=core.put(rooms.grid, pos[0], pos[1], door))
    if locked:
        rooms = rooms._replace(locked=rooms.locked.at[j, i].set(True))
    return rooms, pos


def remove_wall(rooms: Rooms, i: int, j: int, k: int) -> Rooms:
    """``RoomGrid.remove_wall``: the inner cells of wall ``k`` of room (i, j) become empty (static indices)."""
    step = _step(rooms)
    x0, y0 = i * step, j * step
    grid = rooms.grid
    for t in range(1, step):
        x, y = {0: (x0 + step, y0 + t), 1: (x0 + t, y0 + step), 2: (x0, y0 + t), 3: (x0 + t, y0)}[k]
        grid = core.put(grid, x, y, core.EMPTY_CELL)
    return _mark_open(rooms, i, j, k)._replace(grid=grid)


def _room_rect(rooms: Rooms, i, j) -> Array:
    step = _step(rooms)
    return core.rect_mask(rooms.grid.shape[:2], (i * step, j * step), (step + 1, step + 1))


def place_in_room(u: Array, rooms: Rooms, i, j, obj: Array) -> tuple:
    """``RoomGrid.place_in_room``: ``obj`` on a free cell of room (i, j) at Manhattan distance ≥ 2
    from the agent's current cell (``reject_next_to``); ``(rooms, cell [2])``."""
    width, height = rooms.grid.shape[:2]
    xs, ys = jnp.arange(width)[:, None], jnp.arange(height)[None, :]
    far = jnp.abs(xs - rooms.agent_pos[0]) + jnp.abs(ys - rooms.agent_pos[1]) >= 2
    pos = core.sample_cell(u, _room_rect(rooms, i, j) & (rooms.grid[..., 0] == core.EMPTY) & far)
    return rooms._replace(grid=core.put(rooms.grid, pos[0], pos[1], obj)), pos


def place_agent_in_room(u: Array, rooms: Rooms, i, j) -> tuple:
    """``RoomGrid.place_agent``: ``(position [2], direction [])`` uniform over the free cells of room
    (i, j) and the four directions whose front cell is empty or a wall (the official redraws both
    until that holds)."""
    grid = rooms.grid
    width, height = grid.shape[:2]
    free = _room_rect(rooms, i, j) & (grid[..., 0] == core.EMPTY)
    padded = jnp.pad(grid[..., 0], 1, constant_values=core.WALL)  # never reached: rooms are walled
    fronts = []
    for d in range(4):
        dx, dy = core.DIR_TO_VEC[d]
        fronts.append(padded[1 + dx:1 + dx + width, 1 + dy:1 + dy + height])
    front = jnp.stack(fronts, axis=-1)  # [W, H, 4]
    ok = free[..., None] & ((front == core.EMPTY) | (front == core.WALL))
    x, y, d = core.sample_cell(u, ok)
    return jnp.stack([x, y]), d


def _reachable(rooms: Rooms, start_i, start_j) -> Array:
    """``[R, C]`` bool rooms reachable from (start_i, start_j) through doors and openings."""
    num_rows, num_cols = rooms.right_y.shape
    reach = jnp.zeros((num_rows, num_cols), bool).at[start_j, start_i].set(True)
    right, bottom = rooms.open_right, rooms.open_bottom
    for _ in range(num_rows * num_cols):
        spread = reach
        spread = spread | jnp.pad((reach & right)[:, :-1], ((0, 0), (1, 0)))  # to the right
        spread = spread | jnp.pad((reach[:, 1:] & right[:, :-1]), ((0, 0), (0, 1)))  # to the left
        spread = spread | jnp.pad((reach & bottom)[:-1, :], ((1, 0), (0, 0)))  # down
        spread = spread | jnp.pad((reach[1:, :] & bottom[:-1, :]), ((0, 1), (0, 0)))  # up
        reach = spread
    return reach


def connect_all(key: Array, rooms: Rooms) -> Rooms:
    """``RoomGrid.connect_all``: closed doors of random colours on random walls until every room is
    reachable from the agent's; walls of locked rooms are skipped, as are walls already open.

    The official draws (column, row, wall) uniformly, skips invalid draws and raises after
    5000 iterations; the same loop here stops there (the layout is then left as it is).
    """
    num_rows, num_cols = rooms.right_y.shape
    step = _step(rooms)
    start_i, start_j = rooms.agent_pos[0] // step, rooms.agent_pos[1] // step

    def cond(carry):
        rooms, key, itr = carry
        return (itr <= MAX_CONNECT_ITERATIONS) & ~jnp.all(_reachable(rooms, start_i, start_j))

    def body(carry):
        rooms, key, itr = carry
        rand = core.Uniforms(jax.random.fold_in(key, itr), 4)
        i, j, k = rand.randint(0, num_cols), rand.randint(0, num_rows), rand.randint(0, 4)
        ni, nj = _neighbor(i, j, k)
        valid = has_neighbor(rooms, i, j, k) & ~wall_open(rooms, i, j, k)
        neighbor_locked = rooms.locked[jnp.clip(nj, 0, num_rows - 1), jnp.clip(ni, 0, num_cols - 1)]
        valid = valid & ~rooms.locked[j, i] & ~neighbor_locked
        added, _ = add_door(rooms, i, j, k, rand.randint(0, NUM_COLORS), locked=False)
        rooms = jax.tree.map(lambda a, b: jnp.where(valid, a, b), added, rooms)
        return rooms, key, itr + 1

    return jax.lax.while_loop(cond, body, (rooms, key, jnp.int32(1)))[0]


def _obj(kind, color) -> Array:
    return jnp.stack([jnp.asarray(kind, jnp.int32), jnp.asarray(color, jnp.int32), jnp.int32(0)]).astype(jnp.uint8)


def unlock_env(*, pickup: bool, blocked: bool) -> Callable:
    """``UnlockEnv`` (both flags False), ``UnlockPickupEnv`` (``pickup``) and ``BlockedUnlockPickupEnv``
    (both): two 6 × 6 rooms side by side, a locked door of a random colour between them, its
    key in the left room with the agent; with ``pickup`` a box of a random colour in the right
    room is the target; with ``blocked`` a ball of a random colour stands in front of the door."""

    def generate(key: Array) -> Layout:
        key, grid_key = jax.random.split(key)
        rand = core.Uniforms(key, 6)
        rooms = room_grid(grid_key, room_size=6, num_rows=1, num_cols=2)
        box = _obj(core.BOX, rand.randint(0, NUM_COLORS))
        if pickup:  # placed while the agent still stands at the right room's centre
            rooms, _ = place_in_room(rand.uniform(), rooms, 1, 0, box)
        door_color = rand.randint(0, NUM_COLORS)
        rooms, door = add_door(rooms, 0, 0, 0, door_color, locked=True)
        if blocked:
            ball = _obj(core.BALL, rand.randint(0, NUM_COLORS))
            rooms = rooms._replace(grid=core.put(rooms.grid, door[0] - 1, door[1], ball))
        rooms, _ = place_in_room(rand.uniform(), rooms, 0, 0, _obj(core.KEY, door_color))
        agent_pos, agent_dir = place_agent_in_room(rand.uniform(), rooms, 0, 0)
        if pickup:
            mission = missions.fill("pick up the {color} box", color=missions.color_token(box[1]))
            task = core.new_task(target=box)
        else:
            mission, task = "open the door", None
        return _layout(rooms.grid, agent_pos, agent_dir, mission, task=task)

    return generate


def key_corridor_env(*, room_size: int, num_rows: int) -> Callable:
    """``KeyCorridorEnv``: three columns of rooms, the middle column a corridor (the walls between
    its rooms removed), a ball of a random colour behind a locked door in a random room of the
    right column, the key in a random room of the left column, the agent in the corridor's
    middle room, then doors added at random until every room is reachable (``connect_all``)."""

    def generate(key: Array) -> Layout:
        key, grid_key, connect_key = jax.random.split(key, 3)
        rand = core.Uniforms(key, 7)
        rooms = room_grid(grid_key, room_size=room_size, num_rows=num_rows, num_cols=3)
        for j in range(1, num_rows):
            rooms = remove_wall(rooms, 1, j, 3)
        row = rand.randint(0, num_rows)
        door_color = rand.randint(0, NUM_COLORS)
        rooms, _ = add_door(rooms, 2, row, 2, door_color, locked=True)
        ball = _obj(core.BALL, rand.randint(0, NUM_COLORS))
        rooms, _ = place_in_room(rand.uniform(), rooms, 2, row, ball)
        rooms, _ = place_in_room(rand.uniform(), rooms, 0, rand.randint(0, num_rows), _obj(core.KEY, door_color))
        agent_pos, agent_dir = place_agent_in_room(rand.uniform(), rooms, 1, num_rows // 2)
        rooms = connect_all(connect_key, rooms._replace(agent_pos=agent_pos))
        mission = missions.fill("pick up the {color} ball", color=missions.color_token(ball[1]))
        return _layout(rooms.grid, agent_pos, agent_dir, mission, task=core.new_task(target=ball))

    return generate


def locked_room_env(size: int = 19) -> Callable:
    """``LockedRoomEnv``: a corridor between two columns of three rooms with closed doors of six
    distinct random colours; one random room is locked and holds the goal, its key lies in
    another random room; the agent starts anywhere in the corridor."""
    left_wall, right_wall = size // 2 - 2, size // 2 + 2
    room_h = size // 3
    grid0 = core.empty_grid(size, size)
    grid0[[0, -1], :] = grid0[:, [0, -1]] = grid0[[left_wall, right_wall], :] = core.WALL_CELL
    for n in range(3):
        grid0[:left_wall, n * room_h] = grid0[right_wall:, n * room_h] = core.WALL_CELL
    # Rooms in the official order: left then right, top to bottom. Interior x range and top row.
    x_lo = np.array([1, right_wall + 1] * 3)
    x_hi = np.array([left_wall, size - 1] * 3)  # exclusive
    tops = np.repeat(np.arange(3) * room_h, 2)
    doors_x = np.array([left_wall, right_wall] * 3)

    def generate(key: Array) -> Layout:
        rand = core.Uniforms(key, 16)
        locked = rand.randint(0, 6)
        goal = jnp.stack([rand.randint(jnp.asarray(x_lo)[locked], jnp.asarray(x_hi)[locked]),
                          rand.randint(jnp.asarray(tops)[locked] + 1, jnp.asarray(tops)[locked] + room_h)])
        grid = core.put(jnp.asarray(grid0), goal[0], goal[1], core.cell("goal"))
        colors = rand.permutation(NUM_COLORS)
        for r in range(6):
            state = jnp.where(r == locked, core.LOCKED, core.CLOSED)
            grid = core.put(grid, int(doors_x[r]), int(tops[r]) + 3,
                            jnp.stack([jnp.int32(core.DOOR), colors[r], state]))
        key_room = (locked + rand.randint(1, 6)) % 6  # uniform over the other rooms
        key_pos = jnp.stack([rand.randint(jnp.asarray(x_lo)[key_room], jnp.asarray(x_hi)[key_room]),
                             rand.randint(jnp.asarray(tops)[key_room] + 1, jnp.asarray(tops)[key_room] + room_h)])
        grid = core.put(grid, key_pos[0], key_pos[1], _obj(core.KEY, colors[locked]))
        agent_pos = rand.free_cell(grid, top=(left_wall, 0), size=(right_wall - left_wall, size))
        agent_dir = rand.randint(0, 4)
        color = missions.color_token(colors[locked])
        mission = missions.fill("get the {c} key from the {k} room, unlock the {c} door and go to the goal",
                                c=color, k=missions.color_token(colors[key_room]))
        return _layout(grid, agent_pos, agent_dir, mission)

    return generate


def multi_room_env(num_rooms: int, max_room_size: int, size: int = 25) -> Callable:
    """``MultiRoomEnv`` (min = max rooms, as every registered id): a chain of ``num_rooms`` walled
    rooms of random sizes (4..max_room_size), each entered through a closed door of a random
    colour (never the previous door's colour) in the previous room's wall; the agent anywhere
    in the first room, the goal anywhere in the last.

    ``_placeRoom``: a room of random size is placed against the entry door (the first room's
    top-left corner at a random cell); it must lie inside the grid and not overlap any earlier
    room but its parent; the next room's exit wall (not the entry wall) and door cell are drawn
    up to 8 times until a room fits. Chains short of ``num_rooms`` are discarded.
    """
    n = num_rooms

    def attempt(key):
        key, loop_key = jax.random.split(key)
        rand = core.Uniforms(key, 4)
        entry = jnp.stack([rand.randint(0, size - 2), rand.randint(0, size - 2)])
        first = jnp.stack([rand.randint(4, max_room_size + 1), rand.randint(4, max_room_size + 1)])
        fits = (entry[0] + first[0] <= size) & (entry[1] + first[1] < size)
        tops = jnp.zeros((n, 2), jnp.int32).at[0].set(entry)
        sizes = jnp.zeros((n, 2), jnp.int32).at[0].set(first)
        doors = jnp.zeros((n, 2), jnp.int32).at[0].set(entry)
        placed = jnp.where(fits, 1, 0)

        def cond(carry):
            placed, tries = carry[0], carry[1]
            return (placed > 0) & (placed < n) & (tries < 8)

        def body(carry):
            placed, tries, entry_wall, tops, sizes, doors, key = carry
            key, sub = jax.random.split(key)
            rand = core.Uniforms(sub, 5)
            parent = placed - 1
            ptop, psize = tops[parent], sizes[parent]
            r = rand.randint(0, 3)  # the r-th of the three walls other than the entry wall
            exit_wall = jnp.where(r < entry_wall, r, r + 1)
            u = rand.uniform()
            along_y = ptop[1] + _scale(u, 1, psize[1] - 1)
            along_x = ptop[0] + _scale(u, 1, psize[0] - 1)
            exit_pos = jnp.stack([
                jnp.stack([ptop[0] + psize[0] - 1, along_y]), jnp.stack([along_x, ptop[1] + psize[1] - 1]),
                jnp.stack([ptop[0], along_y]), jnp.stack([along_x, ptop[1]])])[exit_wall]
            wall = (exit_wall + 2) % 4  # the new room's entry wall
            sx = rand.randint(4, max_room_size + 1)
            sy = rand.randint(4, max_room_size + 1)
            ex, ey = exit_pos[0], exit_pos[1]
            u = rand.uniform()
            slide_y = _scale(u, ey - sy + 2, ey)
            slide_x = _scale(u, ex - sx + 2, ex)
            top = jnp.stack([jnp.stack([ex - sx + 1, slide_y]), jnp.stack([slide_x, ey - sy + 1]),
                             jnp.stack([ex, slide_y]), jnp.stack([slide_x, ey])])[wall]
            tx, ty = top[0], top[1]
            ok = (tx >= 0) & (ty >= 0) & (tx + sx <= size) & (ty + sy < size)
            apart = ((tx + sx < tops[:, 0]) | (tops[:, 0] + sizes[:, 0] <= tx)
                     | (ty + sy < tops[:, 1]) | (tops[:, 1] + sizes[:, 1] <= ty))
            ok = ok & jnp.all(apart | (jnp.arange(n) >= parent))  # every earlier room but the parent
            index = jnp.where(ok, placed, n)  # out of range: dropped
            tops = tops.at[index].set(top, mode="drop")
            sizes = sizes.at[index].set(jnp.stack([sx, sy]), mode="drop")
            doors = doors.at[index].set(exit_pos, mode="drop")
            return (jnp.where(ok, placed + 1, placed), jnp.where(ok, 0, tries + 1), jnp.where(ok, wall, entry_wall),
                    tops, sizes, doors, key)

        carry = (placed, jnp.int32(0), jnp.int32(2), tops, sizes, doors, loop_key)
        placed, _, _, tops, sizes, doors, _ = jax.lax.while_loop(cond, body, carry)
        return placed, tops, sizes, doors

    def generate(key: Array) -> Layout:
        key, chain_key = jax.random.split(key)
        rand = core.Uniforms(key, n + 3)

        def cond(carry):
            return (carry[0][0] < n) & (carry[2] < MAX_ATTEMPTS)

        def body(carry):
            _, key, tries = carry
            key, sub = jax.random.split(key)
            return attempt(sub), key, tries + 1

        empty = (jnp.int32(0), jnp.zeros((n, 2), jnp.int32), jnp.zeros((n, 2), jnp.int32), jnp.zeros((n, 2), jnp.int32))
        (_, tops, sizes, doors), _, _ = jax.lax.while_loop(cond, body, (empty, chain_key, jnp.int32(0)))
        grid = jnp.asarray(core.empty_grid(size, size))
        xs, ys = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
        color = jnp.int32(-1)
        for r in range(n):
            (tx, ty), (sx, sy) = tops[r], sizes[r]
            inside = (xs >= tx) & (xs < tx + sx) & (ys >= ty) & (ys < ty + sy)
            border = inside & ((xs == tx) | (xs == tx + sx - 1) | (ys == ty) | (ys == ty + sy - 1))
            grid = jnp.where(border[..., None], jnp.asarray(core.WALL_CELL), grid)
            if r > 0:
                if r == 1:
                    color = rand.randint(0, NUM_COLORS)
                else:  # uniform over the colours but the previous door's
                    color = (color + rand.randint(1, NUM_COLORS)) % NUM_COLORS
                grid = core.put(grid, doors[r, 0], doors[r, 1], jnp.stack([jnp.int32(core.DOOR), color,
                                                                           jnp.int32(core.CLOSED)]))
        agent_pos = rand.free_cell(grid, top=tops[0], size=sizes[0])
        agent_dir = rand.randint(0, 4)
        goal = rand.free_cell(grid, top=tops[n - 1], size=sizes[n - 1], exclude=agent_pos)
        grid = core.put(grid, goal[0], goal[1], core.cell("goal"))
        return _layout(grid, agent_pos, agent_dir, "traverse the rooms to get to the goal")

    return generate


def registry() -> Dict[str, Spec]:
    envs = {}
    unlock = dict(width=11, height=6)
    envs["MiniGrid-Unlock-v0"] = Spec(**unlock, max_steps=8 * 36, generate=unlock_env(pickup=False, blocked=False),
                                      rule="unlock")
    envs["MiniGrid-UnlockPickup-v0"] = Spec(**unlock, max_steps=8 * 36, generate=unlock_env(pickup=True, blocked=False),
                                            rule="pickup")
    envs["MiniGrid-BlockedUnlockPickup-v0"] = Spec(**unlock, max_steps=16 * 36,
                                                   generate=unlock_env(pickup=True, blocked=True), rule="pickup")
    for room_size, num_rows in ((3, 1), (3, 2), (3, 3), (4, 3), (5, 3), (6, 3)):
        width, height = 3 * (room_size - 1) + 1, num_rows * (room_size - 1) + 1
        envs[f"MiniGrid-KeyCorridorS{room_size}R{num_rows}-v0"] = Spec(
            width, height, 30 * room_size ** 2, key_corridor_env(room_size=room_size, num_rows=num_rows), rule="pickup")
    envs["MiniGrid-LockedRoom-v0"] = Spec(19, 19, 10 * 19, locked_room_env(19))
    for name, rooms, max_size in (("N2-S4-v0", 2, 4), ("N4-S5-v0", 6, 5), ("N4-S5-v1", 4, 5), ("N6-v0", 6, 10)):
        # N4-S5-v0 has 6 rooms in the official registry (kept there for backwards compatibility).
        envs[f"MiniGrid-MultiRoom-{name}"] = Spec(25, 25, 20 * rooms, multi_room_env(rooms, max_size))
    return envs
