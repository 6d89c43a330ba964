"""JAX environments: jit over a batch, delayed auto-reset, truncation vs termination."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from core.types import StepType

FIRST, MID, LAST = StepType.FIRST, StepType.MID, StepType.LAST


def make_rollout(env, *, num_envs, num_steps):
    """A jitted ``run(key)``: random actions for ``num_steps``; time-major steps and states."""

    @jax.jit
    def run(key):
        key_reset, key_run = jax.random.split(key)
        state, first = env.reset(key_reset, num_envs)

        def body(state, key_t):
            key_action, key_step = jax.random.split(key_t)
            actions = jax.random.randint(key_action, (num_envs,), 0, env.spec.num_actions)
            state, ts = env.step(key_step, state, actions)
            return state, (ts, state)

        _, (timesteps, states) = jax.lax.scan(body, state, jax.random.split(key_run, num_steps))
        timesteps = jax.tree.map(lambda f, t: jnp.concatenate([f[None], t]), first, timesteps)
        return timesteps, states

    return run


@pytest.fixture(scope="module")
def breakout():
    env = environments.make_jax("MinAtar/Breakout")
    return env, make_rollout(env, num_envs=64, num_steps=300)


@pytest.fixture(scope="module")
def breakout_run(breakout):
    env, run = breakout
    return env, run(jax.random.key(0))


def test_jit_scan_64_envs_random_actions_shapes_and_dtypes(breakout_run):
    env, (ts, _) = breakout_run
    assert env.spec.observation_shape == (10, 10, 4) and env.spec.num_actions == 3
    assert env.spec.observation_dtype == np.float32
    assert ts.step_type.shape == (301, 64) and ts.step_type.dtype == jnp.int8
    assert ts.reward.dtype == jnp.float32 and ts.discount.dtype == jnp.float32
    assert ts.observation.shape == (301, 64, 10, 10, 4) and ts.observation.dtype == jnp.float32
    assert set(np.unique(ts.observation)) <= {0.0, 1.0}


def test_episode_structure_is_dm_env(breakout_run):
    _, (ts, states) = breakout_run
    step_type, reward, discount = map(np.asarray, (ts.step_type, ts.reward, ts.discount))
    assert (step_type[0] == FIRST).all()
    assert (step_type == LAST).sum() > 64  # random Breakout dies within ~tens of steps
    # FIRST exactly after LAST, with reward 0 and discount 1.
    np.testing.assert_array_equal(step_type[1:] == FIRST, step_type[:-1] == LAST)
    assert (reward[step_type == FIRST] == 0).all() and (discount[step_type == FIRST] == 1).all()
    # Before the 1000-step limit every LAST is a termination: discount 0, and only there.
    np.testing.assert_array_equal(discount == 0, step_type == LAST)
    terminal = np.asarray(states.env_state.terminal)  # [T, B], aligned with ts[1:]
    np.testing.assert_array_equal(terminal[step_type[1:] == LAST], True)


def test_delayed_auto_reset_ignores_action(breakout_run):
    env, _ = breakout_run
    state, ts = env.reset(jax.random.key(1), 8)
    step = jax.jit(env.step)
    for t in range(200):  # until some environment is LAST
        state, ts = step(jax.random.key(t), state, jnp.zeros(8, jnp.int32))
        if (ts.step_type == LAST).any():
            break
    last = np.asarray(ts.step_type == LAST)
    assert last.any() and np.asarray(state.needs_reset)[last].all()
    key = jax.random.key(1234)
    state_a, ts_a = step(key, state, jnp.zeros(8, jnp.int32))
    state_b, ts_b = step(key, state, jnp.full((8,), 2, jnp.int32))
    assert (np.asarray(ts_a.step_type)[last] == FIRST).all()
    assert (np.asarray(ts_a.reward)[last] == 0).all()
    assert (np.asarray(ts_a.discount)[last] == 1).all()
    assert not np.asarray(state_a.needs_reset)[last].any()
    same = lambda a, b: np.testing.assert_array_equal(np.asarray(a)[last], np.asarray(b)[last])
    jax.tree.map(same, (state_a, ts_a), (state_b, ts_b))
    # The LAST observation is the final frame, not already the next episode's reset.
    assert (np.asarray(state.env_state.time)[last] > 0).all()
    assert (np.asarray(state_a.env_state.time)[last] == 0).all()


def test_time_limit_truncation_gives_discount_one():
    env = environments.make_jax("Breakout-MinAtar", max_steps_in_episode=4)
    assert env.params.max_steps_in_episode == 4
    ts, states = make_rollout(env, num_envs=64, num_steps=10)(jax.random.key(2))
    step_type, discount = np.asarray(ts.step_type), np.asarray(ts.discount)
    terminal = np.asarray(states.env_state.terminal)
    # No ball reaches the bottom within 4 steps: every episode is cut by the time limit.
    assert not terminal.any()
    np.testing.assert_array_equal(step_type[:, 0], [FIRST, MID, MID, MID, LAST,
                                                    FIRST, MID, MID, MID, LAST, FIRST])
    assert (step_type == step_type[:, :1]).all()
    np.testing.assert_array_equal(discount, 1.0)


class CartPoleVariants(chex.TestCase):
    """``chex.variants`` with and without ``jit`` on the JAX CartPole."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_truncation_and_termination_discounts(self):
        env = environments.make_jax("gymnax/CartPole-v1", max_steps_in_episode=3)
        step = self.variant(env.step)
        state, ts = env.reset(jax.random.key(0), 2)
        # env 0 balances (alternating pushes), env 1 is pushed one way only.
        step_types, discounts = [], []
        for t in range(3):
            state, ts = step(jax.random.key(t), state, jnp.array([t % 2, 1]))
            step_types.append(np.asarray(ts.step_type))
            discounts.append(np.asarray(ts.discount))
        np.testing.assert_array_equal(np.stack(step_types)[:, 0], [MID, MID, LAST])
        assert discounts[-1][0] == 1.0  # time limit
        state, ts = step(jax.random.key(9), state, jnp.array([0, 1]))
        assert ts.step_type[0] == FIRST and ts.reward[0] == 0.0

        long_env = environments.make_jax("gymnax/CartPole-v1")
        step = self.variant(long_env.step)
        state, ts = long_env.reset(jax.random.key(0), 1)
        for t in range(30):  # pushing right always drops the pole before 30 steps
            state, ts = step(jax.random.key(t), state, jnp.array([1]))
            if ts.step_type[0] == LAST:
                break
        assert ts.step_type[0] == LAST and ts.discount[0] == 0.0


def test_determinism_per_key(breakout, breakout_run):
    _, run = breakout
    _, a = breakout_run  # key 0
    jax.tree.map(np.testing.assert_array_equal, a, run(jax.random.key(0)))
    assert not np.array_equal(a[0].observation, run(jax.random.key(1))[0].observation)


@pytest.mark.parametrize("env_id, shape, num_actions", [
    ("MinAtar/Asterix", (10, 10, 4), 5),
    ("Freeway-MinAtar", (10, 10, 7), 3),
    ("MinAtar/Seaquest", (10, 10, 10), 6),
    ("SpaceInvaders-MinAtar", (10, 10, 6), 4),
    ("gymnax/CartPole-v1", (4,), 2),
])
def test_every_jax_env_steps_under_jit(env_id, shape, num_actions):
    env = environments.make_jax(env_id)
    assert env.spec.observation_shape == shape and env.spec.num_actions == num_actions
    # The reset state is a valid scan carry: same shapes, dtypes and weak types as a step's.
    reset_state = jax.eval_shape(lambda key: env.reset(key, 4)[0], jax.random.key(0))
    stepped = jax.eval_shape(env.step, jax.random.key(0), reset_state, jnp.zeros(4, jnp.int32))[0]
    same = lambda a, b: (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)  # noqa: E731
    assert all(jax.tree.leaves(jax.tree.map(same, reset_state, stepped)))

    @jax.jit
    def reset_and_step(key):
        state, first = env.reset(key, 4)
        return first, env.step(key, state, jnp.zeros(4, jnp.int32))[1]

    first, ts = reset_and_step(jax.random.key(0))
    assert first.observation.shape == (4, *shape) and ts.observation.dtype == jnp.float32
    assert (first.step_type == FIRST).all() and (ts.step_type == MID).all()


def test_unknown_parameter_override_raises():
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        environments.make_jax("Breakout-MinAtar", max_steps=5)
