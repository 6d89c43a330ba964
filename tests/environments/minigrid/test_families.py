"""Every family beyond Empty/DoorKey/LavaGap/FourRooms against the official package, step for step.

The official environment generates the world from a seed; its grid, box contents, pose,
mission and the family's own state (target object or cell, Memory's two cells, the
obstacles) are copied into the JAX environment, the same random actions are replayed in
both, and observations, directions, positions, carried objects, grids, rewards (within
1e-6) and terminated/truncated must agree at every step until the official episode ends.

Dynamic-Obstacles moves its balls with numpy's generator, which JAX cannot replay: the
official balls' new cells are read after every official step and fed to
``rules.apply_obstacle_moves`` (the deterministic part: collision check, the move, the
agent's step); the move distribution is tested separately
(``test_obstacle_moves_are_uniform_over_free_neighbours``).

The default suite replays one seed of one environment per step rule (one compilation each);
``slow`` replays every registered id over ten seeds.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core, rules

gym = pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

# One id per step rule (the smallest) in the default suite, plus the lava crossings; the other families
# (SimpleCrossing, DistShift, BlockedUnlockPickup, GoToObject, LockedRoom, MultiRoom) share these rules and
# are replayed in the slow sweep (each compilation costs about 2 CPU-seconds).
FAMILY_IDS = ["MiniGrid-Unlock-v0", "MiniGrid-KeyCorridorS3R2-v0", "MiniGrid-LavaCrossingS9N2-v0",
              "MiniGrid-Dynamic-Obstacles-Random-5x5-v0", "MiniGrid-GoToDoor-5x5-v0", "MiniGrid-Fetch-5x5-N2-v0",
              "MiniGrid-PutNear-6x6-N2-v0", "MiniGrid-RedBlueDoors-6x6-v0", "MiniGrid-MemoryS7-v0"]
NEW_IDS = [i for i in minigrid.ENV_IDS if not any(f in i for f in ("-Empty-", "-DoorKey-", "-LavaGap", "FourRooms"))]


def _obj(kind: str, color: str) -> np.ndarray:
    return np.array([core.OBJECT_TO_IDX[kind], core.COLOR_TO_IDX[color], 0], np.uint8)


def official_task(env) -> minigrid.Task:
    """The family's own state, read from the official environment's attributes."""
    fields = {}
    if hasattr(env, "obstacles"):
        fields["obstacles"] = np.array([o.cur_pos for o in env.obstacles], np.int32)
        fields["rng"] = np.zeros(2, np.uint32)  # unused: the moves are injected
    if hasattr(env, "success_pos"):  # Memory
        fields["target_pos"], fields["other_pos"] = env.success_pos, env.failure_pos
    elif hasattr(env, "move_type"):  # PutNear
        fields["target_pos"], fields["target"] = env.target_pos, _obj(env.move_type, env.moveColor)
    elif hasattr(env, "target_pos"):  # GoToDoor, GoToObject
        fields["target_pos"] = env.target_pos
    elif hasattr(env, "targetColor"):  # Fetch
        fields["target"] = _obj(env.targetType, env.targetColor)
    elif hasattr(env, "obj"):  # KeyCorridor, UnlockPickup, BlockedUnlockPickup
        fields["target"] = _obj(env.obj.type, env.obj.color)
    return core.new_task(**fields)


def official_layout(env) -> minigrid.Layout:
    contents = np.tile(core.EMPTY_CELL, (env.width, env.height, 1))
    for i in range(env.width):
        for j in range(env.height):
            obj = env.grid.get(i, j)
            if obj is not None and obj.type == "box" and obj.contains is not None:
                contents[i, j] = obj.contains.encode()
    return minigrid.Layout(grid=jnp.asarray(env.grid.encode()), box_contents=jnp.asarray(contents),
                           agent_pos=jnp.asarray(env.agent_pos, jnp.int32),
                           agent_dir=jnp.asarray(env.agent_dir, jnp.int32),
                           mission=jnp.asarray(minigrid.tokenize(env.mission)), task=official_task(env))


@functools.lru_cache(maxsize=None)
def rollout_for(env_id):
    """The JAX environment and its jitted rollout, shared by the tests of one id (one compilation)."""
    jax_env = minigrid.make(env_id)
    return jax_env, make_rollout(jax_env)


def make_rollout(jax_env):
    """Jitted: layout, actions [T], obstacle cells [T, K, 2] -> first observation and every step's outputs."""
    spec = jax_env.spec

    def rollout(layout, actions, moves):
        state, obs = jax_env.from_layout(layout)

        def body(state, inputs):
            action, move = inputs
            if spec.rule != "dynamic_obstacles":
                state, out = jax_env.step(state, action)
                return state, (state, out)
            tr = rules.apply_obstacle_moves(state, action, move, max_steps=spec.max_steps)
            image = core.partial_view(tr.state, view_size=spec.view_size, see_through_walls=spec.see_through_walls)
            out = core.StepOutput(core.Observation(image, tr.state.agent_dir, tr.state.mission), tr.reward,
                                  tr.terminated, tr.truncated)
            return tr.state, (tr.state, out)

        return obs, jax.lax.scan(body, state, (actions, moves))[1]

    return jax.jit(rollout)


def replay(official_env, jax_env, actions, rollout):
    """Steps both until the official episode ends, asserting agreement; returns the official (reward, term, trunc)."""
    env = official_env.unwrapped
    layout = official_layout(env)
    first = env.gen_obs()
    num_obstacles = len(getattr(env, "obstacles", []))
    records, moves = [], np.zeros((len(actions), num_obstacles, 2), np.int32)
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, _ = official_env.step(int(action))
        if num_obstacles:
            moves[t] = [o.cur_pos for o in env.obstacles]
        carried = env.carrying.encode() if env.carrying is not None else core.EMPTY_CELL
        records.append((obs["image"], obs["direction"], np.asarray(env.agent_pos), carried, env.grid.encode(),
                        reward, terminated, truncated))
        if terminated or truncated:
            break
    obs0, (states, out) = rollout(layout, jnp.asarray(actions, jnp.int32), jnp.asarray(moves))
    np.testing.assert_array_equal(np.asarray(obs0.image), first["image"])
    states, out = jax.device_get((states, out))
    for t, (image, direction, pos, carried, grid, reward, terminated, truncated) in enumerate(records):
        where = f"{jax_env.env_id} step {t}, action {core.ACTIONS[int(actions[t])]}"
        np.testing.assert_array_equal(out.observation.image[t], image, err_msg=where)
        assert out.observation.direction[t] == direction, where
        np.testing.assert_array_equal(states.agent_pos[t], pos, err_msg=where)
        np.testing.assert_array_equal(states.carrying[t], carried, err_msg=where)
        np.testing.assert_array_equal(states.grid[t], grid, err_msg=where)
        assert abs(float(out.reward[t]) - reward) < 1e-6, (where, float(out.reward[t]), reward)
        assert (bool(out.terminated[t]), bool(out.truncated[t])) == (terminated, truncated), where
    return records[-1][5:]


def _actions(rng, env_id, length):
    if "Dynamic-Obstacles" in env_id:  # mostly the three allowed actions, a few of the others (they act as left)
        return rng.choice(7, size=length, p=[0.25, 0.25, 0.4, 0.025, 0.025, 0.025, 0.025])
    if "GoTo" in env_id or "Fetch" in env_id or "PutNear" in env_id:  # done/toggle/pickup/drop end these early
        return rng.choice(7, size=length, p=[0.25, 0.25, 0.38, 0.03, 0.03, 0.03, 0.03])
    return rng.choice(7, size=length, p=[0.15, 0.15, 0.4, 0.1, 0.05, 0.1, 0.05])


def _check(env_id, seeds, length=None):
    jax_env, rollout = rollout_for(env_id)
    official_env = gym.make(env_id)
    rng = np.random.default_rng(0)
    endings = []
    for seed in seeds:
        official_env.reset(seed=seed)
        endings.append(replay(official_env, jax_env, _actions(rng, env_id, length or jax_env.spec.max_steps + 1),
                              rollout))
    return endings


def _default_length(jax_env):
    return min(120, jax_env.spec.max_steps + 1)


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_one_environment_per_rule_matches_the_official_package(env_id):
    _check(env_id, seeds=[1], length=_default_length(rollout_for(env_id)[0]))


def _find(env, kind):
    return next((i, j) for i in range(env.width) for j in range(env.height)
                if env.grid.get(i, j) is not None and env.grid.get(i, j).type == kind)


def _unlock(env):
    """The key just left of the cell left of the door, the agent behind it facing the door."""
    from minigrid.core.world_object import Key
    (dx, dy), (kx, ky) = _find(env, "door"), _find(env, "key")
    env.grid.set(kx, ky, None)
    env.grid.set(dx - 1, dy, Key(env.grid.get(dx, dy).color))
    env.agent_pos, env.agent_dir = (dx - 2, dy), 0
    return [core.PICKUP, core.FORWARD, core.TOGGLE]  # the last toggle opens the door: success


def _corridor(env):
    """The locked door opened and the agent on it, facing the ball (pickup: success)."""
    (dx, dy) = next((i, j) for i in range(env.width) for j in range(env.height) if env.grid.get(i, j) is not None
                    and env.grid.get(i, j).type == "door" and env.grid.get(i, j).is_locked)
    door = env.grid.get(dx, dy)
    door.is_locked, door.is_open = False, True
    env.agent_pos, env.agent_dir = (dx, dy), 0
    return [core.LEFT, core.RIGHT, core.PICKUP]


def _put_near(env, near):
    """Only the two objects, the move object at (2, 2), the target at (4, 4); pick up and drop near or far."""
    move, target = env.grid.get(*env.move_pos), env.grid.get(*env.target_pos)
    for i in range(1, env.width - 1):
        for j in range(1, env.height - 1):
            env.grid.set(i, j, None)
    env.grid.set(2, 2, move)
    env.grid.set(4, 4, target)
    env.target_pos, env.agent_pos, env.agent_dir = (4, 4), (1, 2), 0
    # From (1, 2) facing right: pick up, step to (3, 2) then face down (drop at (3, 3), next to the target)
    # or face up (drop at (3, 1), two rows away).
    return [core.PICKUP, core.FORWARD, core.FORWARD, core.RIGHT if near else core.LEFT, core.DROP]


@pytest.mark.parametrize("env_id, setup, success", [
    ("MiniGrid-Unlock-v0", _unlock, True),
    ("MiniGrid-KeyCorridorS3R2-v0", _corridor, True),
    ("MiniGrid-PutNear-6x6-N2-v0", functools.partial(_put_near, near=True), True),
    ("MiniGrid-PutNear-6x6-N2-v0", functools.partial(_put_near, near=False), False),
])
def test_scripted_endings_match_the_official_package(env_id, setup, success):
    # Random actions rarely open Unlock's door, reach KeyCorridor's ball or drop next to PutNear's target:
    # the official world is edited so that a few actions do, then both replay them.
    jax_env, rollout = rollout_for(env_id)
    official_env = gym.make(env_id)
    official_env.reset(seed=3)
    actions = setup(official_env.unwrapped)
    padded = actions + [core.LEFT] * (_default_length(jax_env) - len(actions))  # the compiled rollout's length
    reward, terminated, _ = replay(official_env, jax_env, np.array(padded), rollout)
    assert terminated and (reward > 0) == success


@pytest.mark.slow
@pytest.mark.parametrize("env_id", NEW_IDS)
def test_every_registered_environment_matches_the_official_package(env_id):
    endings = _check(env_id, seeds=range(2, 12))
    assert any(terminated or truncated for _, terminated, truncated in endings)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["MiniGrid-GoToDoor-5x5-v0", "MiniGrid-Fetch-5x5-N2-v0",
                                    "MiniGrid-RedBlueDoors-6x6-v0", "MiniGrid-MemoryS7-v0"])
def test_success_and_failure_endings_both_occur(env_id):
    # Over many random episodes the family's own rule both rewards and ends episodes with 0 (Unlock has no
    # failing ending; a random policy almost never succeeds at PutNear).
    endings = _check(env_id, seeds=range(100, 160))
    assert any(r > 0 for r, _, _ in endings), endings
    assert any(t and r == 0 for r, t, _ in endings), endings


def test_obstacle_moves_are_uniform_over_free_neighbours():
    # A ball at (2, 2) of Dynamic-Obstacles-5x5, the agent at (1, 1), the goal at (3, 3): the ball's free 3 × 3
    # neighbours are the 6 other cells (not its own, the agent's or the goal's), each drawn with probability 1/6.
    env = minigrid.make("MiniGrid-Dynamic-Obstacles-5x5-v0")
    grid = core.wall_rect(jnp.asarray(core.empty_grid(5, 5)), 0, 0, 5, 5)
    grid = core.put(core.put(grid, 3, 3, core.cell("goal")), 2, 2, core.cell("ball", "blue"))
    task = core.new_task(obstacles=[[2, 2]], rng=jax.random.PRNGKey(0))
    layout = minigrid.Layout(grid, jnp.broadcast_to(jnp.asarray(core.EMPTY_CELL), grid.shape), jnp.array([1, 1]),
                             jnp.array(0), jnp.asarray(minigrid.tokenize("get to the green goal square")), task)
    state, _ = env.from_layout(layout)
    keys = jax.random.split(jax.random.PRNGKey(1), 6000)
    moves = jax.jit(jax.vmap(lambda k: rules.move_obstacles(state, k)))(keys)
    cells, counts = np.unique(np.asarray(moves)[:, 0], axis=0, return_counts=True)
    assert {tuple(c) for c in cells} == {(x, y) for x in (1, 2, 3) for y in (1, 2, 3)} - {(1, 1), (2, 2), (3, 3)}
    assert np.all(np.abs(counts - 1000) < 5 * np.sqrt(1000 * 5 / 6)), counts
