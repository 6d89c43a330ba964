"""Tests of core/prioritized.py: sum tree, proportional sampling, IS weights, validity."""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import prioritized, replay
from core.types import StepType, TimeStep

FIRST, MID, LAST = int(StepType.FIRST), int(StepType.MID), int(StepType.LAST)

_add = jax.jit(prioritized.add)


def scripted_stream(num_steps, episode_lengths, truncated):
    """dm-env streams [T, B] (see tests/core/test_replay.py); observations are (t, b)."""
    num_envs = len(episode_lengths)
    step_type = np.zeros((num_steps, num_envs), np.int8)
    reward = np.zeros((num_steps, num_envs), np.float32)
    discount = np.ones((num_steps, num_envs), np.float32)
    for b, length in enumerate(episode_lengths):
        for t in range(num_steps):
            phase = t % (length + 1)
            step_type[t, b] = FIRST if phase == 0 else (LAST if phase == length else MID)
            reward[t, b] = 0.0 if phase == 0 else float(t)
            discount[t, b] = 0.0 if phase == length and not truncated[b] else 1.0
    t_grid, b_grid = np.meshgrid(np.arange(num_steps), np.arange(num_envs), indexing="ij")
    observation = np.stack([t_grid, b_grid], -1).astype(np.float32)
    return step_type, reward, discount, observation


def add_steps(state, stream, steps, add=_add):
    step_type, reward, discount, observation = stream
    for t in steps:
        timestep = TimeStep(jnp.asarray(step_type[t]), jnp.asarray(reward[t]),
                            jnp.asarray(discount[t]), jnp.asarray(observation[t]))
        state = add(state, timestep, jnp.full((step_type.shape[1],), t, jnp.int32))
    return state


def buffer(num_rows, num_envs, *, max_n_step, frame_stack=1):
    shape = (2,) if frame_stack == 1 else (frame_stack, 2)
    return prioritized.init(capacity=num_rows * num_envs, num_envs=num_envs,
                            observation_shape=shape, observation_dtype=jnp.float32,
                            frame_stack=frame_stack, max_n_step=max_n_step)


def assert_tree_consistent(state):
    tree = np.asarray(state.sum_tree, np.float64)
    half = tree.size // 2
    np.testing.assert_allclose(tree[1:half], tree[2:2 * half:2] + tree[3:2 * half:2], rtol=1e-5)


def all_indices(state):
    rows, envs = state.replay.step_type.shape
    return replay.unflatten_index(state.replay, jnp.arange(rows * envs, dtype=jnp.int32))


def draw_flat(state, key, *, num_batches, batch_size, n_step):
    keys = jax.random.split(key, num_batches)
    f = jax.jit(jax.vmap(lambda k: replay.flat_index(state.replay, prioritized.sample(
        state, k, batch_size=batch_size, n_step=n_step, gamma=0.9, beta=0.5).indices)))
    return np.asarray(f(keys)).reshape(-1)


# ----------------------------------------------------------------------------------------
# sum tree
# ----------------------------------------------------------------------------------------


def test_sum_tree_hand_computed_prefix_search():
    tree = jnp.zeros((16,), jnp.float32)  # 8 leaves
    tree = prioritized.sum_tree_update(
        tree, jnp.array([0, 2, 3, 6]), jnp.array([1.0, 3.0, 0.5, 2.0]))
    assert float(tree[1]) == 6.5
    # cumulative: leaf0 [0,1), leaf2 [1,4), leaf3 [4,4.5), leaf6 [4.5,6.5)
    targets = jnp.array([0.0, 0.999, 1.0, 3.999, 4.0, 4.49, 4.5, 6.49, 6.5, 7.0])
    np.testing.assert_array_equal(prioritized.sum_tree_search(tree, targets),
                                  [0, 0, 2, 2, 3, 3, 6, 6, 6, 6])
    # Setting a leaf to zero recomputes ancestors exactly (no drift) and removes it.
    tree = prioritized.sum_tree_update(tree, jnp.array([2]), jnp.array([0.0]))
    assert float(tree[1]) == 3.5
    np.testing.assert_array_equal(
        prioritized.sum_tree_search(tree, jnp.array([1.0, 1.5, 3.5])), [3, 6, 6])


# ----------------------------------------------------------------------------------------
# validity: leaves are exactly the valid starting slots
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_stack", [1, 3])
def test_zero_probability_exactly_on_invalid_slots_at_every_step(frame_stack):
    # 6 rows of 2 streams, 25 steps: wraps four times; H = 2.
    state = buffer(6, 2, max_n_step=2, frame_stack=frame_stack)
    step_type, reward, discount, observation = scripted_stream(25, [2, 3], [False, True])
    if frame_stack > 1:
        observation = np.repeat(observation[:, :, None], frame_stack, axis=2)
    stream = (step_type, reward, discount, observation)
    for t in range(25):
        state = add_steps(state, stream, [t])
        probability = np.asarray(prioritized.probabilities(state))
        valid = np.asarray(replay.valid_mask(state.replay, n_step=2))
        np.testing.assert_array_equal(probability > 0, valid, err_msg=f"after step {t}")
        assert_tree_consistent(state)
        assert bool(prioritized.can_sample(state, n_step=2)) == bool(valid.any())
    flat = draw_flat(state, jax.random.key(0), num_batches=8, batch_size=256, n_step=2)
    assert valid.reshape(-1)[flat].all()


def test_update_priorities_of_stale_slots_keeps_them_at_zero():
    state = buffer(6, 1, max_n_step=1)
    stream = scripted_stream(12, [20], [False])
    state = add_steps(state, stream, range(6))
    batch = prioritized.sample(state, jax.random.key(0), batch_size=4, n_step=1, gamma=0.9,
                               beta=0.5)
    state = add_steps(state, stream, range(6, 12))  # every sampled slot is overwritten
    state = prioritized.update_priorities(state, batch.indices, jnp.full((4,), 5.0), alpha=1.0)
    probability = np.asarray(prioritized.probabilities(state))
    valid = np.asarray(replay.valid_mask(state.replay, n_step=1))
    np.testing.assert_array_equal(probability > 0, valid)


def test_new_slots_get_max_priority_seen_so_far():
    state = buffer(8, 1, max_n_step=1)
    stream = scripted_stream(8, [20], [False])
    state = add_steps(state, stream, range(4))
    index = replay.Indices(jnp.array([0, 1], jnp.int32), jnp.array([0, 0], jnp.int32))
    state = prioritized.update_priorities(state, index, jnp.array([3.0, 0.5]), alpha=1.0,
                                          epsilon=0.0)
    assert float(state.max_priority) == 3.0
    state = prioritized.update_priorities(state, index, jnp.array([1.0, 0.5]), alpha=1.0,
                                          epsilon=0.0)
    assert float(state.max_priority) == 3.0  # the max seen so far, not the current max
    state = add_steps(state, stream, range(4, 6))
    leaves = np.asarray(state.sum_tree[state.layout.num_leaves:][:8])
    # rows 0, 1 updated; rows 2, 3 got the initial max 1; row 4 got 3 and is valid (age 1).
    np.testing.assert_allclose(leaves, [1.0, 0.5, 1.0, 1.0, 3.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(state.priority[:, 0], [1.0, 0.5, 1.0, 1.0, 3.0, 3.0, 0.0, 0.0])


# ----------------------------------------------------------------------------------------
# proportional sampling, importance weights
# ----------------------------------------------------------------------------------------


def three_slot_buffer(td_errors):
    # B = 1, H = 1, 4 rows written (FIRST, MID, MID, MID): rows 0, 1, 2 are valid.
    state = buffer(8, 1, max_n_step=1)
    state = add_steps(state, scripted_stream(4, [20], [False]), range(4))
    index = replay.Indices(jnp.array([0, 1, 2], jnp.int32), jnp.zeros((3,), jnp.int32))
    return prioritized.update_priorities(state, index, jnp.asarray(td_errors, jnp.float32),
                                         alpha=1.0, epsilon=0.0)


@pytest.mark.parametrize(
    "beta, expected", [(1.0, [1.0, 0.5]), (0.5, [1.0, 0.5**0.5]), (0.0, [1.0, 1.0])])
def test_importance_weights_hand_computed_and_max_is_one(beta, expected):
    # p = [1, 1, 2], P = [1/4, 1/4, 1/2], N = 4 stored. Two strata [0, 2) and [2, 4): the
    # first draws row 0 or 1 (P = 1/4), the second row 2 (P = 1/2).
    # w = (N·P)^-β / max: (1)^-β = 1 and (2)^-β / 1 = 2^-β.
    state = three_slot_buffer([1.0, 1.0, 2.0])
    batch = prioritized.sample(state, jax.random.key(5), batch_size=2, n_step=1, gamma=0.9,
                               beta=beta)
    assert int(batch.indices.row[1]) == 2 and int(batch.indices.row[0]) in (0, 1)
    np.testing.assert_allclose(batch.importance_weight, expected, rtol=1e-6)
    assert float(jnp.max(batch.importance_weight)) == 1.0


def test_importance_weights_match_definition_on_random_batches():
    state = three_slot_buffer([0.3, 1.7, 4.0])
    p = np.array([0.3, 1.7, 4.0])
    probability, num_stored, beta = p / p.sum(), 4, 0.6
    batch = jax.jit(functools.partial(prioritized.sample, batch_size=16, n_step=1))(
        state, jax.random.key(2), gamma=0.9, beta=beta)
    w = (num_stored * probability[np.asarray(batch.indices.row)]) ** -beta
    np.testing.assert_allclose(batch.importance_weight, w / w.max(), rtol=1e-5)
    assert float(jnp.max(batch.importance_weight)) == 1.0


def frequency_chi_square(flat, probability):
    counts = np.bincount(flat, minlength=probability.size)
    assert counts[probability == 0].sum() == 0
    keep = probability > 0
    expected = probability[keep] * flat.size
    return ((counts[keep] - expected) ** 2 / expected).sum(), keep.sum() - 1


def test_sample_frequencies_proportional_to_priorities():
    # 12 rows x 2 streams with episode ends; priorities 1..k by update_priorities.
    state = buffer(12, 2, max_n_step=2)
    state = add_steps(state, scripted_stream(17, [3, 5], [True, False]), range(17))
    valid = np.asarray(replay.valid_mask(state.replay, n_step=2)).reshape(-1)
    td = jnp.asarray(np.arange(1, valid.size + 1), jnp.float32)
    state = prioritized.update_priorities(state, all_indices(state), td, alpha=0.7, epsilon=0.0)
    expected = np.where(valid, np.arange(1, valid.size + 1) ** 0.7, 0.0)
    expected /= expected.sum()
    np.testing.assert_allclose(
        np.asarray(prioritized.probabilities(state)).reshape(-1), expected, rtol=1e-5)
    flat = draw_flat(state, jax.random.key(3), num_batches=32, batch_size=1024, n_step=2)
    stat, dof = frequency_chi_square(flat, expected)
    # Stratification only lowers the variance below the multinomial's: generous bound.
    assert stat < dof + 6 * np.sqrt(2 * dof), (stat, dof)


def test_update_priorities_changes_frequencies():
    state = three_slot_buffer([1.0, 1.0, 1.0])
    def frequencies(state):
        flat = draw_flat(state, jax.random.key(4), num_batches=16, batch_size=512, n_step=1)
        return np.bincount(flat, minlength=8)[:3] / flat.size

    before = frequencies(state)
    np.testing.assert_allclose(before, [1 / 3] * 3, atol=0.01)
    row_1 = replay.Indices(jnp.array([1], jnp.int32), jnp.array([0], jnp.int32))
    state = prioritized.update_priorities(state, row_1, jnp.array([8.0]), alpha=0.5, epsilon=0.0)
    # p = [1, sqrt(8), 1] = [1, 2.828, 1]: P = [0.207, 0.586, 0.207].
    p = np.array([1.0, np.sqrt(8.0), 1.0])
    after = frequencies(state)
    np.testing.assert_allclose(after, p / p.sum(), atol=0.01)


# ----------------------------------------------------------------------------------------
# jit agreement, shapes, configuration
# ----------------------------------------------------------------------------------------


class PrioritizedVariantsTest(chex.TestCase):
    """`add`, `sample` and `update_priorities` agree with and without jit."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_add_sample_update_agree_with_and_without_jit(self):
        stream = scripted_stream(10, [2, 4], [False, True])
        state = add_steps(buffer(7, 2, max_n_step=2), stream, range(10),
                          add=self.variant(prioritized.add))
        reference = add_steps(buffer(7, 2, max_n_step=2), stream, range(10))
        chex.assert_trees_all_close(state, reference)
        sample = self.variant(functools.partial(prioritized.sample, batch_size=8, n_step=2))
        batch = sample(state, jax.random.key(1), gamma=jnp.float32(0.9), beta=jnp.float32(0.4))
        jit_batch = jax.jit(functools.partial(prioritized.sample, batch_size=8, n_step=2))(
            reference, jax.random.key(1), gamma=jnp.float32(0.9), beta=jnp.float32(0.4))
        chex.assert_trees_all_equal(batch.indices, jit_batch.indices)
        chex.assert_trees_all_close(batch, jit_batch, rtol=1e-6)
        chex.assert_shape([batch.importance_weight, batch.transition.reward], (8,))
        chex.assert_type(batch.importance_weight, jnp.float32)
        update = self.variant(functools.partial(prioritized.update_priorities, alpha=0.6))
        td = jnp.linspace(-2.0, 2.0, 8)
        chex.assert_trees_all_close(
            update(state, batch.indices, td),
            prioritized.update_priorities(reference, jit_batch.indices, td, alpha=0.6), rtol=1e-6)


def test_n_step_above_max_n_step_fails_with_a_message():
    state = buffer(8, 1, max_n_step=2)
    with pytest.raises(ValueError, match="max_n_step"):
        prioritized.sample(state, jax.random.key(0), batch_size=2, n_step=3, gamma=0.9, beta=0.5)
    with pytest.raises(ValueError, match="max_n_step"):
        buffer(3, 1, max_n_step=3)


def test_atari_bytes_per_transition_from_shapes():
    abstract = jax.eval_shape(lambda: prioritized.init(
        capacity=1_000_000, num_envs=8, observation_shape=(4, 84, 84),
        observation_dtype=jnp.uint8, frame_stack=4, max_n_step=3))
    measured = prioritized.bytes_per_transition(abstract)
    uniform = 84 * 84 + 4 + 4 + 4 + 1
    # + priority 4 + sum tree 2 · 2^20 float32 over 1M slots + 12 bytes of scalars.
    expected = uniform + 4 + 2 * 2**20 * 4 / 1_000_000 + 12 / 1_000_000
    assert measured == pytest.approx(expected, abs=1e-9)
    print(f"prioritized bytes per Atari transition: {measured:.6f}")
