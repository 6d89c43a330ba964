"""Generators of the families beyond Empty/DoorKey/LavaGap/FourRooms: invariants over many keys and
distributions against the official generator.

Invariants (every new id in ``slow``, KeyCorridorS3R3 in the default suite): the agent on a free
cell; the goal (or target) reachable from the agent when doors can be opened (every locked
door's key reachable before the door); the families' object counts; mission tokens naming
the target's colour and kind. Distributions: the official generator is run on a few hundred
seeds and a two-sample chi-square test compares the two histograms (UnlockPickup's box cell
and agent pose in the default suite; KeyCorridor's door count, LavaCrossing's openings and
GoToDoor's room sizes in ``slow``).
"""
from collections import Counter, deque

import jax
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core, missions

NEW_IDS = [i for i in minigrid.ENV_IDS if not any(f in i for f in ("-Empty-", "-DoorKey-", "-LavaGap", "FourRooms"))]
# Doors: every locked one's key is checked reachable; keys, balls and boxes can be picked up and moved away.
PASSABLE = {core.EMPTY, core.GOAL, core.FLOOR, core.DOOR, core.KEY, core.BALL, core.BOX}


def _layouts(env_id, n, seed=0):
    env = minigrid.make(env_id)
    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(seed), n))
    return jax.device_get(states)


def _reach(grid, start, locked_ok):
    """Cells reachable from ``start`` through passable cells (locked doors only if ``locked_ok``)."""
    width, height = grid.shape[:2]
    seen, todo = {tuple(start)}, deque([tuple(start)])
    while todo:
        x, y = todo.popleft()
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nx, ny = x + dx, y + dy
            if 0 <= nx < width and 0 <= ny < height and (nx, ny) not in seen:
                kind, state = grid[nx, ny, 0], grid[nx, ny, 2]
                if kind in PASSABLE and (kind != core.DOOR or state != core.LOCKED or locked_ok):
                    seen.add((nx, ny))
                    todo.append((nx, ny))
    return seen


def _adjacent(cells, target):
    return any(abs(x - target[0]) + abs(y - target[1]) <= 1 for x, y in cells)


def check_invariants(env_id, states):
    spec = minigrid.make(env_id).spec
    for n in range(len(states.step_count)):
        grid, pos = states.grid[n], tuple(states.agent_pos[n])
        kinds = grid[..., 0]
        where = f"{env_id} layout {n}"
        assert kinds[pos] == core.EMPTY and 0 <= states.agent_dir[n] < 4, where
        mission = missions.detokenize(states.mission[n])
        reach_closed = _reach(grid, pos, locked_ok=False)
        reach = _reach(grid, pos, locked_ok=True)
        # Every locked door's key lies where the agent can get without passing that door.
        for x, y in zip(*np.nonzero((kinds == core.DOOR) & (grid[..., 2] == core.LOCKED))):
            keys = list(zip(*np.nonzero((kinds == core.KEY) & (grid[..., 1] == grid[x, y, 1]))))
            assert any(_adjacent(reach_closed, k) for k in keys), (where, "key behind its door")
        goals = list(zip(*np.nonzero(kinds == core.GOAL)))
        if spec.rule in ("goal", "dynamic_obstacles"):
            assert len(goals) == 1 and goals[0] in reach, (where, "goal unreachable")
        task = jax.tree.map(lambda a: a[n], states.task)
        if spec.rule in ("pickup", "fetch", "put_near"):
            kind, color = int(task.target[0]), int(task.target[1])
            cells = list(zip(*np.nonzero((kinds == kind) & (grid[..., 1] == color))))
            assert cells and any(_adjacent(reach, c) for c in cells), (where, "target missing or unreachable")
            words = mission.split()
            assert core.COLOR_NAMES[color] in words and list(core.OBJECT_TO_IDX)[kind] in words, (where, mission)
        if spec.rule == "goto":
            target = tuple(task.target_pos)
            cell = grid[target]
            assert cell[0] in (core.DOOR, core.KEY, core.BALL, core.BOX), where
            assert mission.split()[3] == core.COLOR_NAMES[cell[1]], (where, mission)
            assert mission.split()[4] == list(core.OBJECT_TO_IDX)[cell[0]], (where, mission)
        if spec.rule == "memory":
            assert tuple(task.target_pos) in reach and tuple(task.other_pos) in reach, where
            start = grid[1, spec.height // 2 - 1]
            near = grid[task.target_pos[0], task.target_pos[1] + (-1 if task.target_pos[1] < spec.height // 2 else 1)]
            assert start[0] == near[0] and start[1] == near[1] == core.COLOR_TO_IDX["green"], where
        if spec.rule == "red_blue":
            doors = sorted(map(tuple, grid[kinds == core.DOOR].tolist()))
            assert doors == [(core.DOOR, 0, core.CLOSED), (core.DOOR, 2, core.CLOSED)], where
        if "KeyCorridor" in env_id:  # every room reachable once doors open: the ball and the key
            assert (kinds == core.BALL).sum() == 1 and (kinds == core.KEY).sum() == 1, where
        if "PutNear" in env_id:
            objects = list(zip(*np.nonzero(np.isin(kinds, [core.KEY, core.BALL, core.BOX]))))
            assert len(objects) == int(env_id.split("-N")[1][0]), where
            assert all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 1 for a in objects for b in objects if a != b), where
        if "LockedRoom" in env_id:
            words = mission.split()
            locked = grid[(kinds == core.DOOR) & (grid[..., 2] == core.LOCKED)]
            assert len(locked) == 1 and words[2] == words[10] == core.COLOR_NAMES[locked[0, 1]], (where, mission)
            assert len(set(grid[kinds == core.DOOR][:, 1].tolist())) == 6, where
        if "MultiRoom" in env_id:
            rooms = 2 if "N2" in env_id else 4 if "v1" in env_id else 6
            assert (kinds == core.DOOR).sum() == rooms - 1, where


def test_invariants_over_keys():
    # The most involved generator (RoomGrid with connect_all's loop); every id in the slow sweep below.
    check_invariants("MiniGrid-KeyCorridorS3R3-v0", _layouts("MiniGrid-KeyCorridorS3R3-v0", 100))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", NEW_IDS)
def test_invariants_over_many_keys_every_environment(env_id):
    check_invariants(env_id, _layouts(env_id, 300, seed=1))


def _official(env_id, seeds):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("minigrid")
    env = gym.make(env_id)
    for seed in seeds:
        env.reset(seed=seed)
        yield env.unwrapped


def assert_same_distribution(ours, official):
    """Two-sample chi-square over the union of seen values; p > 0.001 (values seen < 5 times pooled)."""
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = Counter(ours), Counter(official)
    values = sorted(set(a) | set(b))
    assert set(a) == set(b), (sorted(set(a) ^ set(b)), "supports differ")
    table = np.array([[a[v] for v in values], [b[v] for v in values]])
    p = scipy_stats.chi2_contingency(table).pvalue
    assert p > 1e-3, (p, table)


def test_unlock_pickup_box_and_agent_match_the_official_distribution():
    # The box avoids the right room's centre and its 4 neighbours (the official agent stands there while the
    # box is placed); the agent never faces an object or a door.
    states = _layouts("MiniGrid-UnlockPickup-v0", 1500)
    boxes = [tuple(np.argwhere(g[..., 0] == core.BOX)[0]) for g in states.grid]
    poses = list(zip(map(tuple, states.agent_pos.tolist()), states.agent_dir.tolist()))
    off_boxes, off_poses = [], []
    for env in _official("MiniGrid-UnlockPickup-v0", range(600)):
        off_boxes.append(tuple(np.argwhere(env.grid.encode()[..., 0] == core.BOX)[0]))
        off_poses.append((tuple(int(v) for v in env.agent_pos), int(env.agent_dir)))
    assert not {(8, 3), (7, 3), (9, 3), (8, 2), (8, 4)} & set(boxes)
    assert_same_distribution(boxes, off_boxes)
    for part in (lambda p: p[0][0], lambda p: p[0][1], lambda p: p[1]):  # agent column, row, direction
        assert_same_distribution([part(p) for p in poses], [part(p) for p in off_poses])


@pytest.mark.slow
def test_key_corridor_crossing_and_go_to_door_match_the_official_distributions():
    states = _layouts("MiniGrid-KeyCorridorS3R3-v0", 1500)
    ours = [int((g[..., 0] == core.DOOR).sum()) for g in states.grid]
    theirs = [int((e.grid.encode()[..., 0] == core.DOOR).sum()) for e in _official("MiniGrid-KeyCorridorS3R3-v0",
                                                                                    range(600))]
    assert_same_distribution(ours, theirs)  # connect_all's random process: how many doors it adds
    states = _layouts("MiniGrid-LavaCrossingS9N2-v0", 1500)
    ours = [int((g[..., 0] == core.LAVA).sum()) for g in states.grid]
    theirs = [int((e.grid.encode()[..., 0] == core.LAVA).sum()) for e in _official("MiniGrid-LavaCrossingS9N2-v0",
                                                                                    range(600))]
    assert_same_distribution(ours, theirs)  # 2 parallel or 2 crossing rivers
    states = _layouts("MiniGrid-GoToDoor-8x8-v0", 1500)
    ours = [(int((g[:, 0, 0] != core.EMPTY).sum()), int((g[0, :, 0] != core.EMPTY).sum())) for g in states.grid]
    theirs = [(int((e.grid.encode()[:, 0, 0] != core.EMPTY).sum()), int((e.grid.encode()[0, :, 0] != core.EMPTY).sum()))
              for e in _official("MiniGrid-GoToDoor-8x8-v0", range(600))]
    assert_same_distribution(ours, theirs)  # the room's width and height
