"""Layout generators: invariants over many seeds, distributions, the API's contract."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core

N = 400


def _layouts(env_id):
    env = minigrid.make(env_id)
    states, obs = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), N))
    return env, jax.device_get(states), jax.device_get(obs)


def test_door_key_invariants_and_distribution():
    size = 8
    _, states, obs = _layouts(f"MiniGrid-DoorKey-{size}x{size}-v0")
    assert minigrid.detokenize(states.mission[0]) == "use the key to open the door and then get to the goal"
    kinds = states.grid[..., 0]  # [N, W, H]
    assert obs.image.shape == (N, 7, 7, 3) and obs.image.dtype == np.uint8
    splits, doors = [], []
    for n in range(N):
        k = kinds[n]
        assert k[size - 2, size - 2] == core.GOAL and (k == core.GOAL).sum() == 1
        (door_x,), (door_y,) = np.nonzero(k == core.DOOR)
        assert tuple(states.grid[n, door_x, door_y]) == tuple(core.cell("door", "yellow", "locked"))
        # The split column is wall except the door; key and agent lie strictly left of it.
        assert (k[door_x, :] == core.WALL).sum() == size - 1
        (key_x,), (key_y,) = np.nonzero(k == core.KEY)
        assert key_x < door_x and states.agent_pos[n][0] < door_x
        assert tuple(states.agent_pos[n]) != (key_x, key_y) and k[tuple(states.agent_pos[n])] == core.EMPTY
        splits.append(door_x)
        doors.append(door_y)
    # Official: split ~ U{2, ..., size − 3}, door row ~ U{1, ..., size − 3}; every value seen, none favoured.
    for values, support in ((splits, range(2, size - 2)), (doors, range(1, size - 2))):
        counts = np.array([values.count(v) for v in support])
        assert set(values) == set(support)
        expected = N / len(support)
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


def test_empty_random_start_covers_every_free_cell_and_direction():
    _, states, _ = _layouts("MiniGrid-Empty-Random-6x6-v0")
    cells = {tuple(p) for p in states.agent_pos}
    free = {(x, y) for x in range(1, 5) for y in range(1, 5)} - {(4, 4)}  # not the goal
    assert cells == free
    assert set(states.agent_dir.tolist()) == {0, 1, 2, 3}


def test_reset_is_deterministic_per_key_and_differs_across_keys():
    env = minigrid.make("MiniGrid-DoorKey-6x6-v0")
    reset = jax.jit(env.reset)
    a, b, c = (reset(jax.random.PRNGKey(k))[0] for k in (1, 1, 2))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not np.array_equal(a.grid, c.grid) or not np.array_equal(a.agent_pos, c.agent_pos)


def test_auto_reset_starts_a_new_episode_after_the_goal():
    env = minigrid.make("MiniGrid-Empty-5x5-v0")
    state, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step_auto_reset)
    for t, action in enumerate([core.FORWARD, core.FORWARD, core.RIGHT, core.FORWARD, core.FORWARD]):
        state, out = step(jax.random.PRNGKey(t), state, action)
    assert bool(out.terminated) and float(out.reward) == pytest.approx(1 - 0.9 * 5 / 100)
    assert int(state.step_count) == 0 and tuple(state.agent_pos) == (1, 1)  # the new episode's first state


def test_missions_and_bad_ids():
    mission = "use the key to open the door and then get to the goal"
    tokens = minigrid.tokenize(mission)
    assert tokens.shape == (minigrid.envs.MISSION_LENGTH,) and tokens.dtype == np.int32 and minigrid.detokenize(tokens) == mission
    with pytest.raises(ValueError, match="closest"):
        minigrid.make("MiniGrid-DoorKey-7x7-v0")
    with pytest.raises(ValueError, match="unknown words"):
        minigrid.tokenize("fetch the teapot")


def test_four_rooms_and_lava_gap_layouts():
    _, states, _ = _layouts("MiniGrid-FourRooms-v0")
    kinds = states.grid[..., 0]
    inner = np.concatenate([kinds[:, 9, 1:18], kinds[:, 1:18, 9]], axis=1)  # the two inner walls
    # Four openings, one per inner wall segment (the goal may stand in one); one goal, never under the agent.
    assert np.all((inner != core.WALL).sum(axis=1) == 4)
    assert np.all((kinds == core.GOAL).sum(axis=(1, 2)) == 1)
    assert all(kinds[n][tuple(states.agent_pos[n])] == core.EMPTY for n in range(N))
    _, states, _ = _layouts("MiniGrid-LavaGapS7-v0")
    kinds = states.grid[..., 0]
    for n in range(N):
        (column,) = np.unique(np.nonzero(kinds[n] == core.LAVA)[0])
        assert 2 <= column <= 4 and (kinds[n, column, 1:6] == core.LAVA).sum() == 4  # one gap in the line
