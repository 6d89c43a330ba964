"""Tests of core/replay.py: n-step returns, validity, circular overwrite, uniformity, stacks."""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import replay
from core.types import StepType, TimeStep, Transition

FIRST, MID, LAST = int(StepType.FIRST), int(StepType.MID), int(StepType.LAST)

_add = jax.jit(replay.add)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def scripted_stream(num_steps, episode_lengths, truncated):
    """dm-env streams [T, B]: env b runs episodes of `episode_lengths[b]` transitions.

    An episode of L transitions is FIRST, L-1 MIDs, LAST; the next step is a FIRST.
    Observations are (t, b) as float32, so every sample can be decoded to its slot.
    """
    num_envs = len(episode_lengths)
    step_type = np.zeros((num_steps, num_envs), np.int8)
    reward = np.zeros((num_steps, num_envs), np.float32)
    discount = np.ones((num_steps, num_envs), np.float32)
    for b, length in enumerate(episode_lengths):
        for t in range(num_steps):
            phase = t % (length + 1)
            step_type[t, b] = FIRST if phase == 0 else (LAST if phase == length else MID)
            reward[t, b] = 0.0 if phase == 0 else 1.0 + (t % 7) + 0.5 * b
            if phase == length and not truncated[b]:
                discount[t, b] = 0.0
    t_grid, b_grid = np.meshgrid(np.arange(num_steps), np.arange(num_envs), indexing="ij")
    observation = np.stack([t_grid, b_grid], axis=-1).astype(np.float32)
    action = ((3 * t_grid + b_grid) % 5).astype(np.int32)
    return dict(step_type=step_type, reward=reward, discount=discount,
                observation=observation, action=action)


def fill(state, stream):
    for t in range(stream["step_type"].shape[0]):
        timestep = TimeStep(
            step_type=jnp.asarray(stream["step_type"][t]),
            reward=jnp.asarray(stream["reward"][t]),
            discount=jnp.asarray(stream["discount"][t]),
            observation=jnp.asarray(stream["observation"][t]),
        )
        state = _add(state, timestep, jnp.asarray(stream["action"][t]))
    return state


def reference_n_step(stream, t, b, n_step, gamma):
    """Direct loop over absolute time: (reward, discount, next t)."""
    ret, acc, m = 0.0, 1.0, n_step
    for k in range(1, n_step + 1):
        ret += gamma ** (k - 1) * acc * stream["reward"][t + k, b]
        acc *= stream["discount"][t + k, b]
        if stream["step_type"][t + k, b] == LAST:
            m = k
            break
    return ret, gamma**m * acc, t + m


def expected_valid(stream, num_rows, *, n_step, frame_stack=1):
    """{(t, b)} valid by absolute time: stack not overwritten, n rows after it, not LAST."""
    num_steps, num_envs = stream["step_type"].shape
    lowest = max(0, num_steps - num_rows) + frame_stack - 1
    return {
        (t, b)
        for t in range(lowest, num_steps - n_step)
        for b in range(num_envs)
        if stream["step_type"][t, b] != LAST
    }


def decode(transition):
    return transition.observation[:, 0].astype(int), transition.observation[:, 1].astype(int)


def feature_buffer(num_rows, num_envs):
    return replay.init(capacity=num_rows * num_envs, num_envs=num_envs, observation_shape=(2,),
                       observation_dtype=jnp.float32)


# ----------------------------------------------------------------------------------------
# n-step returns, hand-computed
# ----------------------------------------------------------------------------------------

#             t:  0      1    2    3     4      5    6     7
HAND_STEPS = [FIRST, MID, MID, LAST, FIRST, MID, MID, MID]
HAND_REWARDS = [0.0, 1.0, 2.0, 4.0, 0.0, 8.0, 16.0, 32.0]


def hand_buffer(last_discount):
    discount = [1.0, 1.0, 1.0, last_discount, 1.0, 1.0, 1.0, 1.0]
    stream = dict(
        step_type=np.array(HAND_STEPS, np.int8)[:, None],
        reward=np.array(HAND_REWARDS, np.float32)[:, None],
        discount=np.array(discount, np.float32)[:, None],
        observation=np.stack([np.arange(8), np.zeros(8)], -1).astype(np.float32)[:, None],
        action=np.arange(10, 18, dtype=np.int32)[:, None],
    )
    return fill(feature_buffer(8, 1), stream)


def gather_rows(state, rows, *, n_step, gamma):
    rows = jnp.asarray(rows, jnp.int32)
    return replay.gather(state, replay.Indices(row=rows, env=jnp.zeros_like(rows)),
                         n_step=n_step, gamma=gamma)


def test_three_step_return_across_termination_has_zero_discount():
    state = hand_buffer(last_discount=0.0)
    out = gather_rows(state, [0, 1, 2, 4], n_step=3, gamma=0.5)
    # t=0: 1 + .5·2 + .25·4 = 3 (m=3, LAST); t=1: 2 + .5·4 = 4 (m=2); t=2: 4 (m=1);
    # t=4: 8 + .5·16 + .25·32 = 24 (m=3, no episode end, discount γ³ = .125).
    np.testing.assert_allclose(out.reward, [3.0, 4.0, 4.0, 24.0])
    np.testing.assert_allclose(out.discount, [0.0, 0.0, 0.0, 0.125])
    np.testing.assert_array_equal(out.next_observation[:, 0], [3, 3, 3, 7])
    np.testing.assert_array_equal(out.next_action, [13, 13, 13, 17])
    np.testing.assert_array_equal(out.action, [10, 11, 12, 14])


def test_three_step_return_across_truncation_bootstraps_from_last_with_gamma_m():
    state = hand_buffer(last_discount=1.0)
    out = gather_rows(state, [0, 1, 2, 4], n_step=3, gamma=0.5)
    np.testing.assert_allclose(out.reward, [3.0, 4.0, 4.0, 24.0])
    # m = 3, 2, 1 steps to the LAST observation: γ^m with d = 1 at truncation.
    np.testing.assert_allclose(out.discount, [0.125, 0.25, 0.5, 0.125])
    np.testing.assert_array_equal(out.next_observation[:, 0], [3, 3, 3, 7])


def test_hand_buffer_valid_slots_exclude_last_and_newest_n_rows():
    state = hand_buffer(last_discount=0.0)
    mask = np.asarray(replay.valid_mask(state, n_step=3))[:, 0]
    np.testing.assert_array_equal(mask, [1, 1, 1, 0, 1, 0, 0, 0])


def test_n1_equals_td0():
    stream = scripted_stream(20, episode_lengths=[2, 3, 5], truncated=[False, True, False])
    state = fill(feature_buffer(20, 3), stream)
    rows, envs = np.nonzero(np.asarray(replay.valid_mask(state, n_step=1)))
    gamma = 0.9
    indices = replay.Indices(jnp.asarray(rows, jnp.int32), jnp.asarray(envs, jnp.int32))
    out = replay.gather(state, indices, n_step=1, gamma=gamma)
    t, b = rows, envs  # no wrap: physical row == t
    np.testing.assert_allclose(out.reward, stream["reward"][t + 1, b])
    np.testing.assert_allclose(out.discount, gamma * stream["discount"][t + 1, b], rtol=1e-6)
    np.testing.assert_array_equal(out.observation, stream["observation"][t, b])
    np.testing.assert_array_equal(out.next_observation, stream["observation"][t + 1, b])
    np.testing.assert_array_equal(out.action, stream["action"][t, b])
    np.testing.assert_array_equal(out.next_action, stream["action"][t + 1, b])


def test_gamma_may_be_traced():
    state = hand_buffer(last_discount=1.0)
    rows = jnp.asarray([0, 4], jnp.int32)
    f = jax.jit(lambda g: replay.gather(state, replay.Indices(rows, jnp.zeros_like(rows)),
                                        n_step=3, gamma=g))
    np.testing.assert_allclose(f(jnp.float32(0.5)).reward, [3.0, 24.0])
    np.testing.assert_allclose(f(jnp.float32(1.0)).reward, [7.0, 56.0])


# ----------------------------------------------------------------------------------------
# validity, circular overwrite, shapes, jit
# ----------------------------------------------------------------------------------------


def test_never_samples_last_slots_or_incomplete_windows():
    stream = scripted_stream(30, episode_lengths=[1, 2, 4], truncated=[True, False, True])
    state = fill(feature_buffer(12, 3), stream)
    allowed = expected_valid(stream, 12, n_step=3)
    keys = jax.random.split(jax.random.key(1), 16)
    draw = jax.jit(jax.vmap(
        lambda k: replay.sample(state, k, batch_size=256, n_step=3, gamma=0.9)[0]))
    t, b = decode(jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), draw(keys)))
    drawn = set(zip(t.tolist(), b.tolist()))
    assert drawn <= allowed
    assert all(stream["step_type"][tt, bb] != LAST for tt, bb in drawn)


def test_circular_overwrite_drops_oldest_rows_and_indices_stay_correct():
    num_rows, num_steps, n_step, gamma = 5, 13, 2, 0.9
    stream = scripted_stream(num_steps, episode_lengths=[3, 4], truncated=[False, True])
    state = fill(feature_buffer(num_rows, 2), stream)
    # Physical row r holds the newest t with t % 5 == r: t = 8..12.
    kept_t = np.asarray(state.observation[..., 0]).astype(int)
    np.testing.assert_array_equal(np.sort(kept_t[:, 0]), np.arange(8, 13))
    np.testing.assert_array_equal(kept_t[np.arange(8, 13) % num_rows, 0], np.arange(8, 13))
    assert int(state.cursor) == num_steps % num_rows and int(state.num_rows) == num_rows
    mask = np.asarray(replay.valid_mask(state, n_step=n_step))
    got = {(int(kept_t[r, b]), b) for r, b in zip(*np.nonzero(mask))}
    assert got == expected_valid(stream, num_rows, n_step=n_step)
    out, idx = jax.jit(functools.partial(replay.sample, batch_size=128, n_step=n_step))(
        state, jax.random.key(0), gamma=gamma)
    t, b = decode(out)
    np.testing.assert_array_equal(idx.row, t % num_rows)
    np.testing.assert_array_equal(idx.env, b)
    for i in range(len(t)):
        ret, disc, t_next = reference_n_step(stream, t[i], b[i], n_step, gamma)
        np.testing.assert_allclose(out.reward[i], ret, rtol=1e-6)
        np.testing.assert_allclose(out.discount[i], disc, rtol=1e-6)
        assert int(out.next_observation[i, 0]) == t_next


def test_init_and_sample_shapes_and_dtypes():
    state = replay.init(capacity=40, num_envs=4, observation_shape=(4, 6, 6),
                        observation_dtype=jnp.uint8, frame_stack=4)
    chex.assert_shape(state.observation, (10, 4, 6, 6))
    chex.assert_type(state.observation, jnp.uint8)
    chex.assert_shape([state.action, state.reward, state.discount, state.step_type], (10, 4))
    chex.assert_type([state.action, state.reward, state.discount, state.step_type],
                     [jnp.int32, jnp.float32, jnp.float32, jnp.int8])
    assert not bool(replay.can_sample(state, n_step=3)) and int(replay.size(state)) == 0
    for t in range(7):
        step_type = jnp.full((4,), FIRST if t == 0 else MID, jnp.int8)
        frames = jnp.full((4, 4, 6, 6), t, jnp.uint8)
        timestep = TimeStep(step_type, jnp.ones(4), jnp.ones(4), frames)
        state = _add(state, timestep, jnp.arange(4))
        # rows >= n + F = 7 are needed before the first valid slot (age 3 .. num_rows - 4).
        assert bool(replay.can_sample(state, n_step=3)) == (t == 6)
    assert int(replay.size(state)) == 28
    out, idx = replay.sample(state, jax.random.key(0), batch_size=5, n_step=3, gamma=0.99)
    chex.assert_shape([out.observation, out.next_observation], (5, 4, 6, 6))
    chex.assert_type([out.observation, out.next_observation], jnp.uint8)
    chex.assert_shape(
        [out.action, out.reward, out.discount, out.next_action, idx.row, idx.env], (5,))
    chex.assert_type([out.action, out.reward, out.discount, out.next_action, idx.row, idx.env],
                     [jnp.int32, jnp.float32, jnp.float32, jnp.int32, jnp.int32, jnp.int32])
    assert isinstance(out, Transition)


def test_can_sample_iff_a_valid_slot_exists():
    stream = scripted_stream(16, episode_lengths=[1, 2], truncated=[False, True])
    state = feature_buffer(5, 2)
    can = jax.jit(functools.partial(replay.can_sample, n_step=2))
    for t in range(16):
        state = fill(state, {k: v[t:t + 1] for k, v in stream.items()})
        assert bool(can(state)) == bool(replay.valid_mask(state, n_step=2).any()), t


def test_bad_configuration_fails_with_a_message():
    with pytest.raises(ValueError, match="stacked shape"):
        replay.init(capacity=8, num_envs=1, observation_shape=(84, 84), observation_dtype=jnp.uint8,
                    frame_stack=4)
    state = feature_buffer(4, 1)
    with pytest.raises(ValueError, match="rows >= n_step"):
        replay.sample(state, jax.random.key(0), batch_size=2, n_step=4, gamma=0.9)


class ReplayVariantsTest(chex.TestCase):
    """`add` and `sample` agree with and without jit, and with a numpy reference."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_add_and_sample_agree_with_and_without_jit(self):
        stream = scripted_stream(11, episode_lengths=[2, 3], truncated=[True, False])
        add = self.variant(replay.add)
        state = feature_buffer(8, 2)
        for t in range(11):
            timestep = TimeStep(*(jnp.asarray(stream[f][t]) for f in
                                  ("step_type", "reward", "discount", "observation")))
            state = add(state, timestep, jnp.asarray(stream["action"][t]))
        reference = fill(feature_buffer(8, 2), stream)
        chex.assert_trees_all_equal(state, reference)
        sample = self.variant(functools.partial(replay.sample, batch_size=64, n_step=2))
        out, idx = sample(state, jax.random.key(3), gamma=jnp.float32(0.8))
        jit_out, jit_idx = jax.jit(functools.partial(replay.sample, batch_size=64, n_step=2))(
            reference, jax.random.key(3), gamma=jnp.float32(0.8))
        chex.assert_trees_all_equal(idx, jit_idx)
        chex.assert_trees_all_close(out, jit_out, rtol=1e-6)
        t, b = decode(out)
        for i in range(64):
            ret, disc, t_next = reference_n_step(stream, t[i], b[i], 2, 0.8)
            np.testing.assert_allclose([out.reward[i], out.discount[i]], [ret, disc], rtol=1e-6)
            assert int(out.next_observation[i, 0]) == t_next


# ----------------------------------------------------------------------------------------
# uniformity
# ----------------------------------------------------------------------------------------


def chi_square_counts(flat, valid_flat, num_slots):
    counts = np.bincount(flat, minlength=num_slots)
    assert counts[~valid_flat].sum() == 0, "an invalid slot was sampled"
    observed = counts[valid_flat]
    expected = observed.sum() / valid_flat.sum()
    return ((observed - expected) ** 2 / expected).sum(), valid_flat.sum() - 1


@pytest.mark.parametrize("num_candidates", [8, 1])
def test_sampling_is_uniform_over_valid_slots(monkeypatch, num_candidates):
    # Many LAST slots (episodes of 1-3 transitions) so the rejection path rejects often;
    # with one candidate the exact fallback serves about a third of the draws.
    monkeypatch.setattr(replay, "_NUM_CANDIDATES", num_candidates)
    stream = scripted_stream(23, episode_lengths=[1, 2, 3], truncated=[True, False, True])
    state = fill(feature_buffer(10, 3), stream)
    valid_flat = np.asarray(replay.valid_mask(state, n_step=2)).reshape(-1)
    keys = jax.random.split(jax.random.key(7), 64)
    draw = jax.jit(jax.vmap(lambda k: replay.flat_index(
        state, replay.sample_indices(state, k, batch_size=512, n_step=2))))
    flat = np.asarray(draw(keys)).reshape(-1)
    stat, dof = chi_square_counts(flat, valid_flat, valid_flat.size)
    # E = dof, sd = sqrt(2 dof); 6 sd is generous and deterministic for the fixed key.
    assert stat < dof + 6 * np.sqrt(2 * dof), (stat, dof)


def test_exact_fallback_is_uniform():
    stream = scripted_stream(23, episode_lengths=[1, 2, 3], truncated=[True, False, True])
    state = fill(feature_buffer(10, 3), stream)
    valid_flat = np.asarray(replay.valid_mask(state, n_step=2)).reshape(-1)
    flat = np.asarray(jax.jit(functools.partial(replay._sample_exact, batch_size=32768, n_step=2))(
        state, jax.random.key(11)))
    stat, dof = chi_square_counts(flat, valid_flat, valid_flat.size)
    assert stat < dof + 6 * np.sqrt(2 * dof), (stat, dof)


# ----------------------------------------------------------------------------------------
# frame stacks
# ----------------------------------------------------------------------------------------


def envpool_like_stacks(step_type, frames, frame_stack):
    """What envpool emits: copies of the reset frame at FIRST, then shift-and-append."""
    num_steps, num_envs = step_type.shape
    stacks = np.zeros((num_steps, num_envs, frame_stack, *frames.shape[2:]), frames.dtype)
    for b in range(num_envs):
        for t in range(num_steps):
            if step_type[t, b] == FIRST:
                stacks[t, b] = frames[t, b]
            else:
                stacks[t, b] = np.concatenate([stacks[t - 1, b, 1:], frames[t, b][None]])
    return stacks


def test_frame_stack_rebuild_repeats_first_frame_like_envpool():
    frame_stack, num_rows, num_steps = 4, 9, 31
    stream = scripted_stream(num_steps, episode_lengths=[2, 5, 9], truncated=[False] * 3)
    t_grid = np.arange(num_steps)[:, None, None, None]
    b_grid = np.arange(3)[None, :, None, None]
    frames = np.broadcast_to(4 * t_grid + b_grid, (num_steps, 3, 2, 2)).astype(np.uint8)
    stacks = envpool_like_stacks(stream["step_type"], frames, frame_stack)
    state = replay.init(capacity=3 * num_rows, num_envs=3, observation_shape=(frame_stack, 2, 2),
                        observation_dtype=jnp.uint8, frame_stack=frame_stack)
    for t in range(num_steps):
        timestep = TimeStep(jnp.asarray(stream["step_type"][t]), jnp.asarray(stream["reward"][t]),
                            jnp.asarray(stream["discount"][t]), jnp.asarray(stacks[t]))
        state = _add(state, timestep, jnp.asarray(stream["action"][t]))
    # Every slot whose F-1 predecessors are still stored: ages 0 .. num_rows - F.
    ages = np.arange(num_rows - frame_stack + 1)
    rows = (num_steps - 1 - ages) % num_rows
    row_grid, env_grid = np.meshgrid(rows, np.arange(3), indexing="ij")
    rebuilt = replay.stacked_observation(state, jnp.asarray(row_grid.ravel(), jnp.int32),
                                         jnp.asarray(env_grid.ravel(), jnp.int32))
    t_of_row = (num_steps - 1 - ages)[:, None].repeat(3, 1).ravel()
    np.testing.assert_array_equal(rebuilt, stacks[t_of_row, env_grid.ravel()])


@pytest.mark.envpool
def test_rebuilt_stacks_equal_envpool_pong_stacks():
    envpool = pytest.importorskip("envpool")
    # Two single-env pools with different time limits: desynchronised episode boundaries
    # in a batch of 2 streams (and discount 0 at envpool's truncation, stored as given).
    limits = (45, 70)
    envs = [envpool.make("Pong-v5", env_type="dm", num_envs=1, seed=s, episodic_life=True,
                         max_episode_steps=lim) for s, lim in enumerate(limits)]
    num_steps, num_rows, frame_stack, n_step = 300, 128, 4, 3
    state = replay.init(capacity=2 * num_rows, num_envs=2, observation_shape=(4, 84, 84),
                        observation_dtype=jnp.uint8, frame_stack=frame_stack)
    rng = np.random.default_rng(0)
    emitted, step_types = [], []
    timesteps = [env.reset() for env in envs]
    for t in range(num_steps):
        action = rng.integers(0, 6, size=2).astype(np.int32)
        observation = np.concatenate([ts.observation.obs for ts in timesteps])
        step_type = np.concatenate([ts.step_type for ts in timesteps]).astype(np.int8)
        timestep = TimeStep(
            step_type=jnp.asarray(step_type),
            reward=jnp.asarray(np.concatenate([ts.reward for ts in timesteps]), jnp.float32),
            discount=jnp.asarray(np.concatenate([ts.discount for ts in timesteps]), jnp.float32),
            observation=jnp.asarray(observation),
        )
        state = _add(state, timestep, jnp.asarray(action))
        emitted.append(observation)
        step_types.append(step_type)
        timesteps = [env.step(action[b:b + 1], np.zeros(1, np.int32)) for b, env in enumerate(envs)]
    emitted, step_types = np.stack(emitted), np.stack(step_types)
    # Episode boundaries did occur, at different times in the two streams, and were stored.
    assert (step_types == FIRST).sum(0).min() >= 3
    assert not np.array_equal(step_types[:, 0], step_types[:, 1])
    # Every stored slot whose stack can be rebuilt (ages 0 .. R - F), LAST slots included.
    ages = np.arange(num_rows - frame_stack + 1)
    t_of_age = num_steps - 1 - ages
    row_grid, env_grid = np.meshgrid(t_of_age % num_rows, np.arange(2), indexing="ij")
    rebuild = jax.jit(replay.stacked_observation)
    rebuilt = rebuild(state, jnp.asarray(row_grid.ravel(), jnp.int32),
                      jnp.asarray(env_grid.ravel(), jnp.int32))
    t_grid = np.repeat(t_of_age[:, None], 2, 1).ravel()
    np.testing.assert_array_equal(np.asarray(rebuilt), emitted[t_grid, env_grid.ravel()])
    # And through `gather` for every valid starting slot: s_t and s_{t+m} as emitted.
    mask = np.asarray(replay.valid_mask(state, n_step=n_step))
    rows, env = np.nonzero(mask)
    out = jax.jit(functools.partial(replay.gather, n_step=n_step, gamma=0.99))(
        state, replay.Indices(jnp.asarray(rows, jnp.int32), jnp.asarray(env, jnp.int32)))
    t = num_steps - 1 - (num_steps - 1 - rows) % num_rows
    m = np.ones_like(t) * n_step
    for i in range(len(t)):
        for k in range(1, n_step + 1):
            if step_types[t[i] + k, env[i]] == LAST:
                m[i] = k
                break
    assert len(t) > 200
    np.testing.assert_array_equal(np.asarray(out.observation), emitted[t, env])
    np.testing.assert_array_equal(np.asarray(out.next_observation), emitted[t + m, env])


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------


def test_atari_bytes_per_transition_from_shapes():
    # 1M transitions of 84x84 uint8 frames, stacks of 4 rebuilt at sample time; measured
    # on abstract shapes (jax.eval_shape), nothing is allocated.
    abstract = jax.eval_shape(lambda: replay.init(
        capacity=1_000_000, num_envs=8, observation_shape=(4, 84, 84),
        observation_dtype=jnp.uint8, frame_stack=4))
    measured = replay.bytes_per_transition(abstract)
    # frame 7056 + action 4 + reward 4 + discount 4 + step_type 1, plus 8 bytes of counters.
    assert measured == pytest.approx(84 * 84 + 4 + 4 + 4 + 1 + 8 / 1_000_000, abs=1e-9)
    print(f"replay bytes per Atari transition: {measured:.6f} "
          f"({measured * 1e6 / 2**30:.2f} GiB per 1M)")
