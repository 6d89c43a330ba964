"""RGB images of Minigrid worlds, pixel for pixel as the official renderer draws them.

The official renderer draws each cell as a tile: grid lines on its top and left edges, the
object's shapes (rectangles, circles, line segments), the agent's triangle, a lighter tint
on cells the agent sees, everything at 3× resolution and averaged down. A tile depends only
on the cell's (object, colour, state), the agent's direction if it stands there, and the
tint, so :func:`tile_atlas` draws every combination once (numpy, cached per tile size) with
the same shapes and the same floating-point steps, and the JAX functions only gather tiles:

* :func:`render_grid`: any grid of encoded cells (``Grid.render``);
* :func:`rgb_partial_view`: the agent's view from its encoded observation image
  (``RGBImgPartialObsWrapper``: ``get_frame(agent_pov=True)``, tile size 8);
* :func:`rgb_full_view`: the whole world with the cells the agent sees tinted
  (``RGBImgObsWrapper``: ``get_frame(highlight=True)``, tile size 8).
"""
from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core

Array = chex.Array

SUBDIVISIONS = 3  # tiles are drawn at 3× and averaged down
RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "purple": (112, 39, 195),
       "yellow": (255, 255, 0), "grey": (100, 100, 100)}
NO_AGENT = 4  # index of "no agent here" in the atlas' direction axis


# --------------------------------------------------------------------------- shapes (numpy, over pixel centres)


def _rect(xmin, xmax, ymin, ymax):
    return lambda x, y: (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)


def _circle(cx, cy, r):
    return lambda x, y: (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r


def _segment(x0, y0, x1, y1, r):
    """Pixels within ``r`` of the segment; endpoints and direction in float32 as the official's."""
    p0 = np.array([x0, y0], np.float32)
    d = np.array([x1, y1], np.float32) - p0
    length = np.sqrt(d[0] * d[0] + d[1] * d[1], dtype=np.float32)
    d = d / length
    box = (min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r)

    def inside(x, y):
        qx, qy = x - p0[0], y - p0[1]
        a = np.clip(qx * d[0] + qy * d[1], 0, length)
        ex, ey = x - (p0[0] + a * d[0]), y - (p0[1] + a * d[1])
        near = np.sqrt(ex * ex + ey * ey) <= r
        return near & (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])

    return inside


def _triangle(a, b, c):
    """Barycentric inside test with float32 vertices (u, v ≥ 0, u + v < 1)."""
    a, b, c = (np.array(p, np.float32) for p in (a, b, c))
    v0, v1 = c - a, b - a
    d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
    inv = np.float32(1) / (d00 * d11 - d01 * d01)

    def inside(x, y):
        px, py = x - a[0], y - a[1]
        d02 = v0[0] * px + v0[1] * py
        d12 = v1[0] * px + v1[1] * py
        u = (d11 * d02 - d01 * d12) * inv
        v = (d00 * d12 - d01 * d02) * inv
        return (u >= 0) & (v >= 0) & (u + v < 1)

    return inside


def _rotated(shape, cx, cy, theta):
    cos, sin = math.cos(-theta), math.sin(-theta)

    def inside(x, y):
        x, y = x - cx, y - cy
        return shape(cx + x * cos - y * sin, cy + y * cos + x * sin)

    return inside


def _fill(img, shape, color):
    size = img.shape[0]
    centres = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(centres, centres)  # [row y, column x]
    img[shape(x, y)] = np.asarray(color)  # float colours truncate to uint8 like the official's assignment


def _draw_object(img, kind: int, color: int, state: int):
    c = np.array(RGB[core.COLOR_NAMES[color]])
    black = (0, 0, 0)
    if kind in (core.GOAL, core.WALL):
        _fill(img, _rect(0, 1, 0, 1), c)
    elif kind == core.FLOOR:
        _fill(img, _rect(0.031, 1, 0.031, 1), c / 2)
    elif kind == core.LAVA:
        _fill(img, _rect(0, 1, 0, 1), (255, 128, 0))
        for i in range(3):
            low, high = 0.3 + 0.2 * i, 0.4 + 0.2 * i
            for x0, y0, x1, y1 in ((0.1, low, 0.3, high), (0.3, high, 0.5, low), (0.5, low, 0.7, high),
                                   (0.7, high, 0.9, low)):
                _fill(img, _segment(x0, y0, x1, y1, 0.03), black)
    elif kind == core.DOOR:
        if state == core.OPEN:
            _fill(img, _rect(0.88, 1.00, 0.00, 1.00), c)
            _fill(img, _rect(0.92, 0.96, 0.04, 0.96), black)
        elif state == core.LOCKED:
            _fill(img, _rect(0, 1, 0, 1), c)
            _fill(img, _rect(0.06, 0.94, 0.06, 0.94), 0.45 * c)
            _fill(img, _rect(0.52, 0.75, 0.50, 0.56), c)  # key slot
        else:
            _fill(img, _rect(0, 1, 0, 1), c)
            _fill(img, _rect(0.04, 0.96, 0.04, 0.96), black)
            _fill(img, _rect(0.08, 0.92, 0.08, 0.92), c)
            _fill(img, _rect(0.12, 0.88, 0.12, 0.88), black)
            _fill(img, _circle(0.75, 0.50, 0.08), c)  # handle
    elif kind == core.KEY:
        _fill(img, _rect(0.50, 0.63, 0.31, 0.88), c)  # shaft
        _fill(img, _rect(0.38, 0.50, 0.59, 0.66), c)  # teeth
        _fill(img, _rect(0.38, 0.50, 0.81, 0.88), c)
        _fill(img, _circle(0.56, 0.28, 0.190), c)  # ring
        _fill(img, _circle(0.56, 0.28, 0.064), black)
    elif kind == core.BALL:
        _fill(img, _circle(0.5, 0.5, 0.31), c)
    elif kind == core.BOX:
        _fill(img, _rect(0.12, 0.88, 0.12, 0.88), c)
        _fill(img, _rect(0.18, 0.82, 0.18, 0.82), black)
        _fill(img, _rect(0.16, 0.84, 0.47, 0.53), c)  # lid


def draw_tile(kind: int, color: int, state: int, agent_dir: int | None, highlight: bool, tile_size: int) -> np.ndarray:
    """``[T, T, 3]`` uint8 one tile (``Grid.render_tile``), numpy."""
    img = np.zeros((tile_size * SUBDIVISIONS, tile_size * SUBDIVISIONS, 3), np.uint8)
    _fill(img, _rect(0, 0.031, 0, 1), (100, 100, 100))  # grid lines: left and top edges
    _fill(img, _rect(0, 1, 0, 0.031), (100, 100, 100))
    _draw_object(img, kind, color, state)
    if agent_dir is not None:
        arrow = _triangle((0.12, 0.19), (0.87, 0.50), (0.12, 0.81))
        _fill(img, _rotated(arrow, 0.5, 0.5, 0.5 * math.pi * agent_dir), (255, 0, 0))
    if highlight:  # 30% of the way to white, truncated
        img[:] = np.clip(img + 0.30 * (np.uint8(255) - img), 0, 255).astype(np.uint8)
    blocks = img.reshape(tile_size, SUBDIVISIONS, tile_size, SUBDIVISIONS, 3)
    return blocks.mean(axis=3).mean(axis=1).astype(np.uint8)  # float mean, truncated when stored as uint8


@functools.lru_cache(maxsize=4)
def tile_atlas(tile_size: int) -> np.ndarray:
    """``[11, 6, 3, 5, 2, T, T, 3]`` uint8 every tile by (object, colour, state, agent direction or 4 = none, tint)."""
    atlas = np.zeros((len(core.OBJECT_TO_IDX), len(core.COLOR_NAMES), 3, 5, 2, tile_size, tile_size, 3), np.uint8)
    for kind in range(len(core.OBJECT_TO_IDX)):
        drawn = kind not in (core.UNSEEN, core.EMPTY, core.AGENT)  # the others draw as an empty cell
        for color in range(len(core.COLOR_NAMES)):
            for state in range(3):
                if (not drawn and (color or state)) or (kind != core.DOOR and state):
                    atlas[kind, color, state] = atlas[kind, color if drawn else 0, 0]  # looks the same
                    continue
                for direction in range(5):
                    for tint in range(2):
                        atlas[kind, color, state, direction, tint] = draw_tile(
                            kind if drawn else core.EMPTY, color, state, None if direction == NO_AGENT else direction,
                            bool(tint), tile_size)
    return atlas


# --------------------------------------------------------------------------- JAX


def render_grid(cells: Array, highlight: Array, *, agent_pos=None, agent_dir=None, tile_size: int = 8) -> Array:
    """``[H·T, W·T, 3]`` uint8 the image of ``cells`` (``[W, H, 3]`` encoded, indexed [x, y]) (``Grid.render``).

    ``highlight`` (``[W, H]`` bool) tints cells; the agent's triangle is drawn at ``agent_pos``
    facing ``agent_dir`` (both ``None``: no agent).
    """
    width, height = cells.shape[:2]
    atlas = jnp.asarray(tile_atlas(tile_size))
    kind = cells[..., 0].astype(jnp.int32)
    color = jnp.clip(cells[..., 1].astype(jnp.int32), 0, len(core.COLOR_NAMES) - 1)
    state = jnp.clip(cells[..., 2].astype(jnp.int32), 0, 2)
    direction = jnp.full((width, height), NO_AGENT, jnp.int32)
    if agent_pos is not None:
        direction = direction.at[agent_pos[0], agent_pos[1]].set(jnp.asarray(agent_dir, jnp.int32))
    tiles = atlas[kind, color, state, direction, highlight.astype(jnp.int32)]  # [W, H, T, T, 3]
    return tiles.transpose(1, 2, 0, 3, 4).reshape(height * tile_size, width * tile_size, 3)


def rgb_partial_view(image: Array, *, tile_size: int = 8) -> Array:
    """``[V·T, V·T, 3]`` uint8 the agent's view as ``RGBImgPartialObsWrapper`` draws it.

    From the encoded observation ``image`` (``[V, V, 3]``): cells the agent does not see are
    encoded (0, 0, 0) and drawn as plain floor without tint; the agent looks up from (V//2, V − 1).
    """
    view = image.shape[0]
    return render_grid(image, image[..., 0] != core.UNSEEN, agent_pos=(view // 2, view - 1), agent_dir=3,
                       tile_size=tile_size)


def seen_cells(state: core.State, *, view_size: int = 7, see_through_walls: bool = False) -> Array:
    """``[W, H]`` bool the world cells the agent sees (what ``get_full_render`` highlights)."""
    width, height = state.grid.shape[:2]
    coords = core.view_coords(state.agent_pos, state.agent_dir, view_size)  # world (x, y) of each view cell
    if see_through_walls:
        mask = jnp.ones((view_size, view_size), bool)
    else:
        mask = core.visibility(core.view_cells(state.grid, coords))
    x, y = coords[..., 0], coords[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    x = jnp.where(mask & inside, x, width)  # out of range: dropped
    return jnp.zeros((width, height), bool).at[x, y].set(True, mode="drop")


def rgb_full_view(state: core.State, *, view_size: int = 7, see_through_walls: bool = False,
                  tile_size: int = 8) -> Array:
    """``[H·T, W·T, 3]`` uint8 the whole world as ``RGBImgObsWrapper`` draws it (seen cells tinted)."""
    return render_grid(state.grid, seen_cells(state, view_size=view_size, see_through_walls=see_through_walls),
                       agent_pos=state.agent_pos, agent_dir=state.agent_dir, tile_size=tile_size)
