"""The fast paths: the table-driven visibility flood and the batched auto-reset with a layout pool.

The visibility flood is checked against the official ``Grid.process_vis`` itself on random
views; the batched auto-reset against ``vmap(step_auto_reset)``: the same transitions for
environments that go on, fresh first states (from the generator's distribution) for those
that finished, and the fall-back when more finish than the pool holds.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from environments import minigrid
from environments.minigrid import core
from environments.minigrid.envs import batch_step_auto_reset

official = pytest.importorskip("minigrid")
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.world_object import Ball, Door, Key, Wall  # noqa: E402


def _official_grid(view: np.ndarray) -> Grid:
    size = view.shape[0]
    grid = Grid(size, size)
    for i in range(size):
        for j in range(size):
            kind, _, state = view[i, j]
            if kind == core.WALL:
                grid.set(i, j, Wall())
            elif kind == core.DOOR:
                grid.set(i, j, Door("yellow", is_open=state == core.OPEN, is_locked=state == core.LOCKED))
            elif kind == core.KEY:
                grid.set(i, j, Key("red"))
            elif kind == core.BALL:
                grid.set(i, j, Ball("blue"))
    return grid


@pytest.mark.parametrize("size", [3, 5, 7])
def test_visibility_equals_official_process_vis(size):
    rng = np.random.default_rng(size)
    kinds = np.array([core.EMPTY, core.WALL, core.DOOR, core.KEY, core.BALL])
    views = np.zeros((300, size, size, 3), np.uint8)
    views[..., 0] = rng.choice(kinds, p=[0.45, 0.3, 0.1, 0.1, 0.05], size=(300, size, size))
    views[..., 2] = rng.integers(0, 3, size=(300, size, size))  # door open / closed / locked
    masks = np.asarray(jax.jit(jax.vmap(core.visibility))(jnp.asarray(views)))
    for view, mask in zip(views, masks):
        expected = _official_grid(view).process_vis(agent_pos=(size // 2, size - 1))
        np.testing.assert_array_equal(mask, expected)


def test_row_tables_light_a_clear_row_and_stop_at_walls():
    row, above = core._row_sweep_tables(7)
    index = lambda lit, clear: (lit << 7) | clear  # noqa: E731
    assert row[index(0b0001000, 0b1111111)] == 0b1111111 and above[index(0b0001000, 0b1111111)] == 0b1111111
    # Opaque cells 1 and 5: light from cell 3 reaches them but not beyond; above lights 2..4 plus 1 and 5 diagonally.
    assert row[index(0b0001000, 0b1011101)] == 0b0111110
    assert above[index(0b0001000, 0b1011101)] == 0b0111110
    assert row[index(0, 0b1111111)] == 0 and above[index(0, 0b1111111)] == 0  # nothing lit, nothing lights


def _rollout(env, step_fn, num_envs, steps, seed=0):
    def run(key):
        state, _ = jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def body(carry, _):
            state, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            action = jax.random.randint(action_key, (num_envs,), 0, 7)
            new_state, out = step_fn(step_key, state, action)
            plain_state, plain_out = jax.vmap(env.step)(state, action)
            return (new_state, key), (out, plain_state, plain_out, new_state)

        return jax.lax.scan(body, (state, key), None, length=steps)[1]

    return jax.device_get(jax.jit(run)(jax.random.PRNGKey(seed)))


@pytest.mark.parametrize("pool_size", [None, 1])
def test_batch_auto_reset_continues_like_step_and_restarts_finished_episodes(pool_size):
    env = minigrid.make("MiniGrid-Empty-5x5-v0", max_steps=12)  # frequent time-outs, some synchronised
    num_envs, steps = 32, 40
    out, plain_state, plain_out, new_state = _rollout(
        env, lambda k, s, a: batch_step_auto_reset(env, k, s, a, pool_size=pool_size), num_envs, steps)
    done = out.terminated | out.truncated
    assert done.any() and (~done).any()
    np.testing.assert_array_equal(out.reward, plain_out.reward)
    np.testing.assert_array_equal(out.terminated, plain_out.terminated)
    np.testing.assert_array_equal(out.truncated, plain_out.truncated)
    go_on = ~done
    np.testing.assert_array_equal(new_state.grid[go_on], plain_state.grid[go_on])
    np.testing.assert_array_equal(new_state.agent_pos[go_on], plain_state.agent_pos[go_on])
    np.testing.assert_array_equal(new_state.step_count[go_on], plain_state.step_count[go_on])
    # Finished episodes restart from the generator's first state, and the observation is of that state.
    assert np.all(new_state.step_count[done] == 0)
    assert np.all(new_state.agent_pos[done] == np.array([1, 1])) and np.all(new_state.agent_dir[done] == 0)
    first_image = np.asarray(env.reset(jax.random.PRNGKey(0))[1].image)
    assert np.all(out.observation.image[done] == first_image)
    observed = jax.vmap(jax.vmap(env.observe))(jax.tree.map(jnp.asarray, new_state))
    np.testing.assert_array_equal(out.observation.image, np.asarray(observed.image))


@pytest.mark.parametrize("pool_size", [64, 8])
def test_batch_auto_reset_draws_layouts_like_reset(pool_size):
    """DoorKey restarts have the generator's distribution, from the pool (64: every step) or all at once (8).

    With 3 steps per episode all 64 environments time out together, so a pool of 8 is always
    too small (the all-at-once path) and a pool of 64 always large enough.
    """
    env = minigrid.make("MiniGrid-DoorKey-5x5-v0", max_steps=3)
    num_envs, steps = 64, 60
    out, _, _, new_state = _rollout(env, lambda k, s, a: batch_step_auto_reset(env, k, s, a, pool_size=pool_size),
                                    num_envs, steps, seed=1)
    done = out.terminated | out.truncated
    restarted = new_state.agent_pos[done]
    assert len(restarted) > 1000
    fresh, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(2), len(restarted)))
    # DoorKey-5x5: the wall is at column 2, the agent in column 1, rows 1..3, facing any of 4 directions.
    for values, reference in ((restarted[:, 1], np.asarray(fresh.agent_pos[:, 1])),
                              (new_state.agent_dir[done], np.asarray(fresh.agent_dir))):
        counts = np.bincount(values, minlength=4)[:4] / len(values)
        expected = np.bincount(reference, minlength=4)[:4] / len(reference)
        np.testing.assert_allclose(counts, expected, atol=0.05)
    # The environments restarting in one step get different layouts (the pool hands out distinct ones).
    for t in range(steps):
        finished = np.nonzero(done[t])[0]
        if len(finished) > 1:
            keys = {(tuple(new_state.agent_pos[t, n]), int(new_state.agent_dir[t, n]),
                     new_state.grid[t, n].tobytes()) for n in finished}
            assert len(keys) > 1


def test_batch_auto_reset_rejects_a_bad_pool_size():
    env = minigrid.make("MiniGrid-Empty-5x5-v0")
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 4))
    with pytest.raises(ValueError, match="pool_size"):
        batch_step_auto_reset(env, jax.random.PRNGKey(1), state, jnp.zeros(4, jnp.int32), pool_size=5)
