"""envpool host environments: dm-env semantics, Atari protocols, async order, XLA."""
import envpool
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import environments
from core.types import StepType

pytestmark = pytest.mark.envpool

FIRST, MID, LAST = StepType.FIRST, StepType.MID, StepType.LAST


def balance(observation):
    """A CartPole policy that keeps the pole up for 500 steps (push towards the lean)."""
    return (observation[:, 2] + 0.5 * observation[:, 3] > 0).astype(np.int32)


# ------------------------------------------------------------------------ CartPole
def test_cartpole_shapes_and_dtypes():
    with environments.make("CartPole-v1", num_envs=3) as env:
        assert env.spec.env_id == "CartPole-v1"
        assert env.spec.observation_shape == (4,)
        assert env.spec.observation_dtype == np.float32
        assert env.spec.num_actions == 2
        for ts in (env.reset(), env.step(np.zeros(3, np.int32))):
            assert ts.step_type.dtype == np.int8 and ts.step_type.shape == (3,)
            assert ts.reward.dtype == np.float32 and ts.reward.shape == (3,)
            assert ts.discount.dtype == np.float32 and ts.discount.shape == (3,)
            assert ts.observation.dtype == np.float32 and ts.observation.shape == (3, 4)
        np.testing.assert_array_equal(env.info["env_id"], [0, 1, 2])


def test_cartpole_termination_first_mid_last_first_and_discount_zero():
    with environments.make("CartPole-v1", num_envs=1, seed=3) as env:
        step_types, rewards, discounts = [], [], []
        ts = env.reset()
        step_types.append(int(ts.step_type[0]))
        while True:  # always push left: the pole falls within a dozen steps
            ts = env.step(np.zeros(1, np.int32))
            step_types.append(int(ts.step_type[0]))
            rewards.append(float(ts.reward[0]))
            discounts.append(float(ts.discount[0]))
            if ts.step_type[0] == LAST:
                assert not env.info["truncated"][0]
                break
        ts = env.step(np.ones(1, np.int32))  # auto-reset: action ignored
        assert step_types[0] == FIRST and step_types[-1] == LAST
        assert set(step_types[1:-1]) == {MID}
        assert 5 < len(step_types) < 30
        assert discounts[-1] == 0.0 and set(discounts[:-1]) == {1.0}
        assert set(rewards) == {1.0}
        assert ts.step_type[0] == FIRST and ts.reward[0] == 0.0 and ts.discount[0] == 1.0
        assert env.info["elapsed_step"][0] == 0


def test_cartpole_truncation_at_500_steps_has_discount_one():
    with environments.make("CartPole-v1", num_envs=1, seed=0) as env:
        assert env.config["max_episode_steps"] == 500
        ts = env.reset()
        for t in range(1, 501):
            ts = env.step(balance(ts.observation))
            if t < 500:
                assert ts.step_type[0] == MID, f"the pole fell at step {t}"
        assert ts.step_type[0] == LAST and ts.discount[0] == 1.0 and ts.reward[0] == 1.0
        assert env.info["truncated"][0] and env.info["elapsed_step"][0] == 500
        ts = env.step(balance(ts.observation))
        assert ts.step_type[0] == FIRST and ts.reward[0] == 0.0 and ts.discount[0] == 1.0


def test_raw_envpool_dm_discount_is_zero_on_truncation():
    """Why the wrapper corrects the discount: envpool's dm API gives 0 at the time limit."""
    pool = envpool.make("CartPole-v1", env_type="dm", num_envs=1, seed=0, max_episode_steps=5)
    pool.reset()
    for _ in range(5):
        ts = pool.step(np.ones(1, np.int32))
    assert ts.step_type[0] == LAST and ts.discount[0] == 0.0
    pool.close()


def test_short_time_limit_override_truncates_with_discount_one():
    with environments.make("CartPole-v1", num_envs=2, max_episode_steps=7) as env:
        ts = env.reset()
        for _ in range(7):
            ts = env.step(balance(ts.observation))
        np.testing.assert_array_equal(ts.step_type, [LAST, LAST])
        np.testing.assert_array_equal(ts.discount, [1.0, 1.0])


# --------------------------------------------------------------------------- Atari
def test_pong_atari100k_protocol_is_applied():
    with environments.make("Pong-v5", num_envs=2, protocol="atari100k") as env:
        config = env.raw_spec.config
        assert config.repeat_action_probability == 0.0
        assert config.full_action_space is False
        assert config.episodic_life is True
        assert config.noop_max == 30
        assert config.frame_skip == 4 and config.stack_num == 4
        assert config.max_episode_steps == 27_000
        assert config.reward_clip is False and config.use_fire_reset is False
        assert env.spec.observation_shape == (4, 84, 84)
        assert env.spec.observation_dtype == np.uint8 and env.spec.num_actions == 6
        ts = env.reset()
        assert ts.observation.dtype == np.uint8 and ts.observation.shape == (2, 4, 84, 84)
        # A real reset fills the stack with copies of the first frame (not zeros).
        for frame in range(3):
            np.testing.assert_array_equal(ts.observation[:, frame], ts.observation[:, 3])
        assert ts.observation.any()
        assert set(env.info) >= {"env_id", "lives", "terminated", "reward", "truncated"}


def test_protocol_variants_and_overrides():
    with environments.make("Pong-v5", protocol="atari100k", evaluation=True,
                           max_episode_steps=100) as env:
        assert env.config["episodic_life"] is False
        assert env.config["max_episode_steps"] == 100  # the override wins
    with environments.make("Pong-v5", protocol="atari200m") as env:
        assert env.config["repeat_action_probability"] == pytest.approx(0.25)
        assert env.config["noop_max"] == 1 and env.config["episodic_life"] is False


def test_bad_make_arguments_raise_before_envpool():
    with pytest.raises(ValueError, match="noop_max"):
        environments.make("Pong-v5", noop_max=0)  # envpool itself segfaults
    with pytest.raises(ValueError, match="Atari"):
        environments.make("CartPole-v1", protocol="atari100k")
    with pytest.raises(ValueError, match="max_episode_steps"):
        environments.make("CartPole-v1", max_episode_step=10)
    with pytest.raises(ValueError, match="protocol"):
        environments.make("Pong-v5", evaluation=True)
    with pytest.raises(ValueError, match="batch_size"):
        environments.make("CartPole-v1", num_envs=2, batch_size=3)


def test_breakout_episodic_life_loss_is_last_with_discount_zero():
    with environments.make("Breakout-v5", protocol="atari100k", seed=1) as env:
        ts = env.reset()
        lives = int(env.info["lives"][0])
        rng = np.random.default_rng(0)
        for _ in range(1000):
            ts = env.step(rng.integers(0, 4, 1))
            if ts.step_type[0] == LAST:
                break
        assert ts.step_type[0] == LAST and ts.discount[0] == 0.0
        assert env.info["lives"][0] == lives - 1 and env.info["terminated"][0] == 0
        elapsed = int(env.info["elapsed_step"][0])
        ts = env.step(np.zeros(1))
        assert ts.step_type[0] == FIRST and ts.reward[0] == 0.0
        assert env.info["elapsed_step"][0] == elapsed  # the game goes on


# ----------------------------------------------------------------- order and async
def test_async_send_recv_cycle():
    with environments.make("CartPole-v1", num_envs=4, batch_size=2, seed=1) as env:
        assert env.is_async
        env.async_reset()
        seen = []
        for _ in range(20):
            ts, env_ids = env.recv()
            assert env_ids.shape == (2,) and ts.observation.shape == (2, 4)
            assert ts.step_type.dtype == np.int8
            seen.extend(env_ids.tolist())
            env.send(np.zeros(2, np.int32), env_ids)
        assert set(seen) == {0, 1, 2, 3}
        with pytest.raises(RuntimeError, match="not waiting for an action"):
            env.send(np.zeros(2, np.int32), env_ids)  # already in flight
        with pytest.raises(RuntimeError, match="sync mode"):
            env.step(np.zeros(4, np.int32))
        with pytest.raises(RuntimeError, match="sync mode"):
            env.reset()


def test_recv_twice_without_send_raises():
    with environments.make("CartPole-v1", num_envs=4, batch_size=2) as env:
        env.async_reset()
        _, first = env.recv()
        _, second = env.recv()  # the other two reset environments
        assert sorted([*first, *second]) == [0, 1, 2, 3]
        with pytest.raises(RuntimeError, match="block forever"):
            env.recv()
        env.send(np.zeros(2, np.int32), first)
        env.recv()
        with pytest.raises(RuntimeError, match="block forever"):
            env.recv()
    with environments.make("CartPole-v1", num_envs=2) as env:
        env.reset()
        with pytest.raises(RuntimeError, match="block forever"):
            env.recv()


def test_step_before_reset_and_after_close_raise():
    env = environments.make("CartPole-v1", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.int32))
    with pytest.raises(RuntimeError, match="reset"):
        env.send(np.zeros(2, np.int32))
    env.reset()
    with pytest.raises(ValueError, match="leading dimension"):
        env.step(np.zeros(3, np.int32))
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_xla_jitted_rollout_on_cartpole():
    num_envs, num_steps = 4, 50
    env = environments.make("CartPole-v1", num_envs=num_envs, seed=0)
    xla = env.xla()
    env.async_reset()
    out = jax.jit(xla.recv)(xla.handle)
    np.testing.assert_array_equal(out.timestep.step_type, [FIRST] * num_envs)

    @jax.jit
    def rollout(out, key):
        def body(out, key_t):
            actions = jax.random.randint(key_t, (num_envs,), 0, 2)
            out = xla.step(out.handle, actions, out.env_id)
            return out, out.timestep
        return jax.lax.scan(body, out, jax.random.split(key, num_steps))

    out, timesteps = rollout(out, jax.random.key(0))
    assert timesteps.step_type.shape == (num_steps, num_envs)
    assert timesteps.step_type.dtype == jnp.int8
    assert timesteps.observation.shape == (num_steps, num_envs, 4)
    step_type = np.asarray(timesteps.step_type)
    assert (step_type == LAST).any()  # random actions drop the pole within 50 steps
    # After LAST comes FIRST with reward 0; termination has discount 0.
    after_last = np.argwhere(step_type[:-1] == LAST)
    assert (step_type[after_last[:, 0] + 1, after_last[:, 1]] == FIRST).all()
    assert (np.asarray(timesteps.reward)[step_type == FIRST] == 0).all()
    assert (np.asarray(timesteps.discount)[step_type == LAST] == 0).all()

    def body(i, out):
        return xla.step(out.handle, jnp.zeros(num_envs, jnp.int32), out.env_id)

    out = jax.jit(lambda out: jax.lax.fori_loop(0, 5, body, out))(out)
    assert out.timestep.step_type.shape == (num_envs,)
    with pytest.raises(RuntimeError, match="xla"):
        env.step(np.zeros(num_envs, np.int32))
    env.close()
