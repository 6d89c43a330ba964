"""Uniform experience replay on device: a circular, time-major buffer per env stream.

Implements the uniform replay memory of Mnih et al. (2015), "Human-level control through
deep reinforcement learning", with n-step returns computed at sample time as in
Hessel et al. (2018), "Rainbow", arXiv:1710.02298 (and Dopamine's circular buffer).

Layout: one *row* per batched environment step. Every field is ``[R, B, ...]`` with
``R = capacity // num_envs`` rows and ``B = num_envs`` env streams, so each env stream is a
contiguous time-major ring and n-step returns and frame stacks are gathers along ``R``.
Slot ``(t, b)`` holds what the loop saw and did at that step (dm-env semantics)::

    observation_t   s_t (only the newest frame when frame stacking)
    action_t        a_t chosen at s_t (meaningless at a LAST slot: auto-reset ignores it)
    reward_t        r_t of the transition *into* s_t (0 on FIRST)
    discount_t      d_t of the transition into s_t (0 on termination, 1 on truncation)
    step_type_t     FIRST / MID / LAST (int8)

Usage, inside one ``jit``::

    state = replay.init(capacity=1_000_000, num_envs=8, observation_shape=(4, 84, 84),
                        observation_dtype=jnp.uint8, frame_stack=4)
    state = replay.add(state, timestep, action)            # once per env step
    batch, indices = replay.sample(state, key, batch_size=32, n_step=3, gamma=0.99)
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from core.types import Array, PRNGKey, StepType, TimeStep, Transition

# Candidate draws per sampled element before the exact fallback (see `sample`, Notes).
_NUM_CANDIDATES = 8


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class StorageLayout:
    """Static facts about a buffer that array shapes do not carry (pytree aux data, no leaves).

    Being static, they are Python ints inside ``jit`` (shapes of gathers depend on them)
    and survive ``jax.tree.map``, ``vmap``, ``eval_shape`` and orbax checkpoints unchanged.
    """

    frame_stack: int  # F: frames per observation rebuilt at sample time (1: no stacking)


class ReplayState(NamedTuple):
    """A circular buffer of ``R`` rows of ``B`` env streams (``*O'`` the stored observation)."""

    observation: Array  # [R, B, *O'] obs dtype: s_t; with F > 1 only its newest frame, O' = O[1:]
    action: Array  # [R, B] int32: a_t chosen at s_t (meaningless at LAST slots)
    reward: Array  # [R, B] float32: r_t of the transition into s_t
    discount: Array  # [R, B] float32: d_t of the transition into s_t (0 termination, 1 truncation)
    step_type: Array  # [R, B] int8: StepType of s_t
    cursor: Array  # [] int32: physical row the next `add` writes (oldest row once full)
    num_rows: Array  # [] int32: rows written so far, saturating at R
    layout: StorageLayout  # static: frame_stack F


class Indices(NamedTuple):
    """Where sampled transitions start (for priority updates and debugging)."""

    row: Array  # [B] int32: physical row of s_t
    env: Array  # [B] int32: env stream of s_t


# ----------------------------------------------------------------------------------------
# init / add
# ----------------------------------------------------------------------------------------


def init(
    *,
    capacity: int,
    num_envs: int,
    observation_shape: Sequence[int],
    observation_dtype: Any,
    frame_stack: int = 1,
) -> ReplayState:
    """An empty buffer of ``R = capacity // num_envs`` rows of ``num_envs`` streams.

    Args:
      capacity: total transitions ``R·B`` (floored to a multiple of ``num_envs``).
      num_envs: ``B``, the batch of environments whose steps form one row.
      observation_shape: ``*O`` of one observation as the environment emits it; with
        ``frame_stack = F > 1`` it is the stacked shape ``(F, *frame)`` (envpool Atari:
        ``(4, 84, 84)``) and only ``frame`` is stored.
      observation_dtype: dtype of observations (``uint8`` pixels, ``float32`` features).
      frame_stack: ``F``; ``F > 1`` stores the newest frame per slot and rebuilds the stack
        of ``F`` frames at sample time, exactly as envpool emits it.

    Returns:
      A zero-filled :class:`ReplayState` with ``cursor = num_rows = 0``.
    """
    observation_shape = tuple(int(d) for d in observation_shape)
    rows = capacity // num_envs
    if num_envs < 1 or rows < 2:
        raise ValueError(
            f"capacity={capacity} and num_envs={num_envs} give {rows} rows; need num_envs >= 1 "
            "and capacity >= 2 * num_envs"
        )
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if frame_stack > 1:
        if not observation_shape or observation_shape[0] != frame_stack:
            raise ValueError(
                f"with frame_stack={frame_stack} observation_shape must be the stacked shape "
                f"({frame_stack}, ...), got {observation_shape}"
            )
        stored_shape = observation_shape[1:]
    else:
        stored_shape = observation_shape
    zeros = lambda dtype: jnp.zeros((rows, num_envs), dtype)  # noqa: E731
    return ReplayState(
        observation=jnp.zeros((rows, num_envs, *stored_shape), observation_dtype),
        action=zeros(jnp.int32),
        reward=zeros(jnp.float32),
        discount=zeros(jnp.float32),
        # Unwritten slots read as LAST, so nothing can ever start a sample there.
        step_type=jnp.full((rows, num_envs), StepType.LAST, jnp.int8),
        cursor=jnp.zeros((), jnp.int32),
        num_rows=jnp.zeros((), jnp.int32),
        layout=StorageLayout(frame_stack=frame_stack),
    )


def add(state: ReplayState, timestep: TimeStep, action: Array) -> ReplayState:
    """Writes one batched step ``(s_t, r_t, d_t, step_type_t, a_t)`` at the cursor row.

    Args:
      state: the buffer.
      timestep: the :class:`TimeStep` just received, fields ``[B]`` and observation
        ``[B, *O]`` (the stacked observation when ``F > 1``: only ``[:, -1]`` is stored).
      action: ``[B]`` integer, the action chosen at ``timestep.observation``.

    Returns:
      The buffer with the oldest row overwritten once full (circular).

    Notes:
      O(B) writes when XLA can update in place: call it inside the jitted step with the
      state carried (``lax.scan``) or donated (``jax.jit(..., donate_argnums=0)``); a
      non-donated top-level call copies the whole buffer (gigabytes on Atari).
    """
    rows, num_envs = state.step_type.shape
    chex.assert_shape([timestep.step_type, timestep.reward, timestep.discount, action],
                      (num_envs,))
    observation = timestep.observation
    if state.layout.frame_stack > 1:
        observation = observation[:, -1]
    chex.assert_shape(observation, state.observation.shape[1:])
    row = state.cursor

    def write(buffer: Array, value: Array) -> Array:
        return jax.lax.dynamic_update_index_in_dim(buffer, value.astype(buffer.dtype), row, 0)

    return state._replace(
        observation=write(state.observation, observation),
        action=write(state.action, action),
        reward=write(state.reward, timestep.reward),
        discount=write(state.discount, timestep.discount),
        step_type=write(state.step_type, timestep.step_type),
        cursor=(row + 1) % rows,
        num_rows=jnp.minimum(state.num_rows + 1, rows),
    )


# ----------------------------------------------------------------------------------------
# validity
# ----------------------------------------------------------------------------------------


def check_n_step_fits(state: ReplayState, n_step: int) -> None:
    """Raises ValueError unless ``n_step >= 1`` and ``R >= n_step + F`` (static shapes)."""
    rows = state.step_type.shape[0]
    frame_stack = state.layout.frame_stack
    if n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {n_step}")
    if rows < n_step + frame_stack:
        raise ValueError(
            f"a buffer of {rows} rows cannot serve n_step={n_step} with frame_stack="
            f"{frame_stack}: need rows >= n_step + frame_stack"
        )


def age_of_row(state: ReplayState, row: Array) -> Array:
    """Age of physical rows: 0 for the newest row, ``num_rows - 1`` for the oldest.

    Args:
      state: the buffer.
      row: int32 physical rows, any shape.

    Returns:
      int32 ages of the same shape (meaningful for written rows only).
    """
    rows = state.step_type.shape[0]
    return (state.cursor - 1 - row) % rows


def valid_age_range(state: ReplayState, *, n_step: int) -> Tuple[Array, Array]:
    """Inclusive range ``[n, num_rows - F]`` of ages of rows that may start a sample.

    Row ``t`` (age ``a``) may start an n-step sample when the ``n`` rows after it exist
    (``a >= n``) and the ``F - 1`` rows before it, which a frame stack may read, were not
    overwritten (``a <= num_rows - F``). Slot ``(t, b)`` is valid when its row is in range
    and ``step_type[t, b] != LAST``.

    Returns:
      ``(lowest, highest)`` int32 scalars; empty when ``highest < lowest``.
    """
    return jnp.int32(n_step), state.num_rows - state.layout.frame_stack


def valid_mask(state: ReplayState, *, n_step: int) -> Array:
    """``[R, B]`` bool: slots that may start an n-step sample (O(R·B); for tests, fallback)."""
    rows = state.step_type.shape[0]
    low, high = valid_age_range(state, n_step=n_step)
    age = age_of_row(state, jnp.arange(rows, dtype=jnp.int32))
    row_ok = (age >= low) & (age <= high)
    return row_ok[:, None] & (state.step_type != StepType.LAST)


def can_sample(state: ReplayState, *, n_step: int) -> Array:
    """Whether at least one slot may start an n-step sample; O(B).

    Notes:
      Relies on dm-env's guarantee that a LAST is always followed by a FIRST in the same
      stream: with two or more rows in the valid range one of any two consecutive slots of
      a stream is not LAST, so only the first two rows of the range are inspected.
    """
    low, high = valid_age_range(state, n_step=n_step)
    rows = state.step_type.shape[0]
    first = jnp.take(state.step_type, (state.cursor - 1 - high) % rows, axis=0)
    second = jnp.take(state.step_type, (state.cursor - high) % rows, axis=0)
    return ((high >= low) & jnp.any(first != StepType.LAST)) | (
        (high >= low + 1) & jnp.any(second != StepType.LAST)
    )


def size(state: ReplayState) -> Array:
    """``[]`` int32: transitions stored, ``num_rows · B`` (valid starting slots are fewer)."""
    return state.num_rows * state.step_type.shape[1]


def bytes_per_transition(state: Any) -> float:
    """Storage bytes of a buffer state divided by its capacity ``R·B`` in slots.

    Works on arrays and on ``jax.ShapeDtypeStruct`` leaves, so a full-size buffer can be
    measured without allocating it: ``bytes_per_transition(jax.eval_shape(lambda: init(...)))``.
    Any state whose ``step_type`` field (or whose ``replay.step_type``) is ``[R, B]`` works.
    """
    replay_state = state.replay if hasattr(state, "replay") else state
    rows, num_envs = replay_state.step_type.shape
    total = sum(
        int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
        for leaf in jax.tree.leaves(state)
    )
    return total / (rows * num_envs)


# ----------------------------------------------------------------------------------------
# gathers: frame stacks and n-step returns
# ----------------------------------------------------------------------------------------


def stacked_observation(state: ReplayState, row: Array, env: Array) -> Array:
    """Rebuilds ``s_t`` at slots ``(row, env)``, stacking ``F`` frames as envpool does.

    Frame ``k`` back (``k = 0`` newest) comes from row ``t - k`` unless the walk back meets
    the episode's FIRST slot first, in which case it repeats the FIRST frame (envpool fills
    the stack with copies of the reset frame)::

        i_0 = t,   i_k = i_{k-1} if step_type[i_{k-1}] == FIRST else i_{k-1} - 1
        s_t = (frame[i_{F-1}], ..., frame[i_1], frame[i_0])      oldest first

    Args:
      state: the buffer.
      row: ``[K]`` int32 physical rows; the ``F - 1`` rows before each must be in the buffer
        (ages ``<= num_rows - F``) unless the episode starts in between.
      env: ``[K]`` int32 env streams.

    Returns:
      ``[K, *O]`` observations (``[K, F, *frame]`` when ``F > 1``).
    """
    rows = state.step_type.shape[0]
    frame_stack = state.layout.frame_stack
    frames = [state.observation[row, env]]
    current = row
    for _ in range(frame_stack - 1):
        at_first = state.step_type[current, env] == StepType.FIRST
        current = jnp.where(at_first, current, (current - 1) % rows)
        frames.append(state.observation[current, env])
    if frame_stack == 1:
        return frames[0]
    return jnp.stack(frames[::-1], axis=1)


def gather(
    state: ReplayState, indices: Indices, *, n_step: int, gamma: chex.Numeric
) -> Transition:
    """Builds n-step transitions starting at given slots.

    Implements the truncated n-step return of Sutton & Barto (2018) Eq. (7.1) as used by
    Rainbow (arXiv:1710.02298, Eq. 2), with episode ends inside the window::

        m = min(n, first k >= 1 with step_type_{t+k} == LAST)
        reward   = Σ_{k=1..m} γ^{k-1} (∏_{j=1..k-1} d_{t+j}) r_{t+k}
        discount = γ^m ∏_{j=1..m} d_{t+j}
        next_observation = s_{t+m},  next_action = a_{t+m}

    so a termination inside the window gives ``discount = 0`` and a truncation (LAST with
    ``d = 1``) bootstraps from the LAST observation with ``γ^m``.

    Args:
      state: the buffer.
      indices: :class:`Indices` of ``[K]`` valid starting slots (see :func:`valid_mask`).
      n_step: static ``n >= 1``.
      gamma: scalar γ, may be traced (annealed).

    Returns:
      A :class:`Transition` with fields ``[K, ...]``.

    Notes:
      With dm-env semantics the intermediate discounts ``d_{t+j}``, ``j < m``, are 1 (only
      a LAST slot carries ``d < 1``), so the products reduce to ``d_{t+m}``; they are kept
      general so environments with per-step discounts stay correct. ``next_action`` at a
      LAST slot is the action the policy chose at the LAST observation (the environment
      ignored it on auto-reset); SARSA-style targets that bootstrap across a truncation
      use it as a sample of the behaviour policy at ``s_{t+m}``.
    """
    rows = state.step_type.shape[0]
    row, env = indices.row, indices.env
    gamma = jnp.asarray(gamma, jnp.float32)
    offsets = jnp.arange(1, n_step + 1, dtype=jnp.int32)  # [n]
    future = (row[:, None] + offsets[None, :]) % rows  # [K, n]
    env_n = env[:, None]
    step_type = state.step_type[future, env_n]  # [K, n]
    reward = state.reward[future, env_n]
    discount = state.discount[future, env_n]
    is_last = step_type == StepType.LAST
    # alive_k: no LAST among t+1..t+k-1, i.e. step k is part of the return.
    alive = jnp.concatenate(
        [jnp.ones_like(is_last[:, :1]), jnp.cumprod(~is_last[:, :-1], axis=1).astype(bool)], axis=1
    )
    m = jnp.sum(alive, axis=1).astype(jnp.int32)  # [K] in 1..n
    cum_discount = jnp.cumprod(discount, axis=1)  # ∏_{j<=k} d_{t+j}
    discount_before = jnp.concatenate([jnp.ones_like(cum_discount[:, :1]), cum_discount[:, :-1]], 1)
    powers = gamma ** jnp.arange(n_step + 1, dtype=jnp.float32)  # γ^0..γ^n
    n_step_reward = jnp.sum(jnp.where(alive, powers[None, :-1] * discount_before * reward, 0.0), 1)
    n_step_discount = powers[m] * jnp.take_along_axis(cum_discount, (m - 1)[:, None], 1)[:, 0]
    next_row = (row + m) % rows
    return Transition(
        observation=stacked_observation(state, row, env),
        action=state.action[row, env],
        reward=n_step_reward,
        discount=n_step_discount,
        next_observation=stacked_observation(state, next_row, env),
        next_action=state.action[next_row, env],
    )


def flat_index(state: ReplayState, indices: Indices) -> Array:
    """``[K]`` int32 flat slot index ``row · B + env`` (the sum-tree leaf of a slot)."""
    return indices.row * state.step_type.shape[1] + indices.env


def unflatten_index(state: ReplayState, flat: Array) -> Indices:
    """Inverse of :func:`flat_index`."""
    num_envs = state.step_type.shape[1]
    flat = flat.astype(jnp.int32)
    return Indices(row=flat // num_envs, env=flat % num_envs)


# ----------------------------------------------------------------------------------------
# uniform sampling
# ----------------------------------------------------------------------------------------


def _sample_exact(state: ReplayState, key: PRNGKey, *, batch_size: int, n_step: int) -> Array:
    """``[batch]`` flat indices uniform over valid slots via a masked prefix sum; O(R·B)."""
    mask = valid_mask(state, n_step=n_step).reshape(-1)
    cumulative = jnp.cumsum(mask.astype(jnp.int32))
    count = jnp.maximum(cumulative[-1], 1)
    rank = jax.random.randint(key, (batch_size,), 0, count, dtype=jnp.int32)
    flat = jnp.searchsorted(cumulative, rank, side="right").astype(jnp.int32)
    return jnp.minimum(flat, mask.shape[0] - 1)


def sample_indices(state: ReplayState, key: PRNGKey, *, batch_size: int, n_step: int) -> Indices:
    """Draws ``batch_size`` slots i.i.d. exactly uniformly over valid starting slots.

    Each element draws ``C = 8`` candidates uniformly from the rows in the valid age range
    × all envs and keeps the first that is not LAST (rejection sampling); if all ``C`` of
    any element are LAST, those elements are redrawn by :func:`_sample_exact` (a masked
    prefix sum over all slots, O(R·B)). Both paths give the uniform distribution over
    valid slots, so the mixture is exactly uniform.

    Notes:
      Cost: O(batch · (C + F + n)) gathers per call; the O(R·B) fallback runs only with
      probability ≈ 1 - (1 - p_LAST^C)^batch (p_LAST ≈ 1 / episode length, so ≈ 0 on
      Atari) and then behind ``lax.cond``. Under ``vmap`` the ``cond`` becomes a select and
      the fallback is computed every call. The result is undefined (some slot) when
      :func:`can_sample` is False.
    """
    check_n_step_fits(state, n_step)
    rows, num_envs = state.step_type.shape
    candidate_key, env_key, fallback_key = jax.random.split(key, 3)
    low, high = valid_age_range(state, n_step=n_step)
    age = jax.random.randint(
        candidate_key, (batch_size, _NUM_CANDIDATES), low, jnp.maximum(high + 1, low + 1),
        dtype=jnp.int32,
    )
    row = (state.cursor - 1 - age) % rows
    env = jax.random.randint(env_key, (batch_size, _NUM_CANDIDATES), 0, num_envs, jnp.int32)
    accepted = state.step_type[row, env] != StepType.LAST  # [batch, C]
    first = jnp.argmax(accepted, axis=1)  # first accepted candidate (0 if none)
    flat = jnp.take_along_axis(row * num_envs + env, first[:, None], axis=1)[:, 0]
    rejected = ~jnp.any(accepted, axis=1)
    flat = jax.lax.cond(
        jnp.any(rejected),
        lambda: jnp.where(
            rejected, _sample_exact(state, fallback_key, batch_size=batch_size, n_step=n_step),
            flat,
        ),
        lambda: flat,
    )
    return unflatten_index(state, flat)


def sample(
    state: ReplayState,
    key: PRNGKey,
    *,
    batch_size: int,
    n_step: int,
    gamma: chex.Numeric,
) -> Tuple[Transition, Indices]:
    """Samples ``batch_size`` n-step transitions uniformly from valid starting slots.

    Valid starting slot ``(t, b)``: written, ``step_type_t != LAST``, the ``n`` rows after
    ``t`` written and the ``F - 1`` rows before it not overwritten (see
    :func:`valid_age_range`). n-step returns as in :func:`gather`.

    Args:
      state: the buffer.
      key: PRNG key.
      batch_size: static number of transitions.
      n_step: static ``n >= 1``.
      gamma: scalar γ, may be traced.

    Returns:
      ``(transition, indices)``: a :class:`Transition` of ``[batch_size, ...]`` fields and
      the :class:`Indices` ``[batch_size]`` of the starting slots.

    Notes:
      Sampling method and cost: see :func:`sample_indices` (rejection from the valid row
      window, exact O(R·B) fallback). Excluding the ``F - 1`` oldest rows (whose stacks
      may reach overwritten rows) and the ``n`` newest rows is conservative, as in
      Dopamine's circular buffer.
    """
    indices = sample_indices(state, key, batch_size=batch_size, n_step=n_step)
    return gather(state, indices, n_step=n_step, gamma=gamma), indices
