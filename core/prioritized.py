"""Proportional prioritized experience replay on device, over :mod:`core.replay` storage.

Implements proportional prioritization of Schaul et al. (2016), "Prioritized Experience
Replay", arXiv:1511.05952, Eq. (1) and the importance-sampling weights of Sec. 3.4, with a
jittable array sum tree and stratified sampling (Appendix B.2.1)::

    P(i) = p_i^α / Σ_k p_k^α,     p_i = |δ_i| + ε,
    w_i  = (N · P(i))^{-β} / max_j w_j

Storage, n-step returns and frame stacks are those of :mod:`core.replay` (its state is a
field here); the sum tree has one leaf per flat slot ``row · B + env`` and holds
``p_i^α`` for valid starting slots and exactly 0 for every other slot (LAST, too few rows
after it, stack reaching overwritten rows, unwritten).

Usage, inside one ``jit``::

    state = prioritized.init(capacity=1_000_000, num_envs=8, observation_shape=(4, 84, 84),
                             observation_dtype=jnp.uint8, frame_stack=4, max_n_step=3)
    state = prioritized.add(state, timestep, action)
    batch = prioritized.sample(state, key, batch_size=32, n_step=3, gamma=0.99, beta=0.4)
    ...  # loss weighted by batch.importance_weight, td_error [32]
    state = prioritized.update_priorities(state, batch.indices, td_error, alpha=0.5)
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp

from core import replay
from core.replay import Indices, ReplayState
from core.types import Array, PRNGKey, StepType, TimeStep, Transition


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class PriorityLayout:
    """Static facts of a prioritized buffer (pytree aux data, no leaves)."""

    max_n_step: int  # H: slots become sampleable once H rows follow them; sample's n <= H
    num_leaves: int  # P: leaves of the sum tree, the power of two >= R·B


class PrioritizedState(NamedTuple):
    """Uniform replay storage plus a sum tree of priorities over its ``R·B`` flat slots."""

    replay: ReplayState  # storage: [R, B, ...] fields, cursor, num_rows (core.replay)
    priority: Array  # [R, B] float32: p^α last assigned to each slot (max priority on add)
    sum_tree: Array  # [2P] float32: node 1 the root, node i has children 2i, 2i+1; leaf
    #                  P + row·B + env holds priority × valid(slot) (0 when not sampleable)
    max_priority: Array  # [] float32: largest p^α assigned so far (1 initially)
    layout: PriorityLayout  # static: max_n_step H, num_leaves P


class PrioritizedSample(NamedTuple):
    """A prioritized batch."""

    transition: Transition  # fields [B, ...]: n-step transitions (core.replay.gather)
    indices: Indices  # [B] int32 row and env of each starting slot, for update_priorities
    importance_weight: Array  # [B] float32: (N·P(i))^{-β} / max over the batch, in (0, 1]


# ----------------------------------------------------------------------------------------
# sum tree
# ----------------------------------------------------------------------------------------


def sum_tree_update(tree: Array, leaf: Array, value: Array) -> Array:
    """Sets leaves and recomputes their ancestors; O(K log P).

    Args:
      tree: ``[2P]`` float32 sum tree (node 1 root, leaves ``P..2P-1``).
      leaf: ``[K]`` int32 leaf numbers in ``[0, P)``.
      value: ``[K]`` float32 new leaf values ``>= 0``.

    Returns:
      The tree with ``tree[i] = tree[2i] + tree[2i + 1]`` restored for every internal node.

    Notes:
      Parents are recomputed from their children rather than updated by deltas, so no
      rounding drift accumulates. If ``leaf`` repeats with different values, one of them
      is kept and the tree stays consistent with it.
    """
    num_leaves = tree.shape[0] // 2
    node = leaf.astype(jnp.int32) + num_leaves
    tree = tree.at[node].set(value.astype(tree.dtype))
    for _ in range(num_leaves.bit_length() - 1):
        node = node // 2
        tree = tree.at[node].set(tree[2 * node] + tree[2 * node + 1])
    return tree


def sum_tree_search(tree: Array, target: Array) -> Array:
    """Finds, for each target mass ``u``, the leaf ``i`` with ``Σ_{j<i} p_j <= u < Σ_{j<=i} p_j``.

    Args:
      tree: ``[2P]`` float32 sum tree with a positive root.
      target: ``[K]`` float32 masses in ``[0, tree[1])``.

    Returns:
      ``[K]`` int32 leaf numbers; always leaves with a positive value.

    Notes:
      The descent goes left when ``u < left`` or when the right subtree is empty, so float
      rounding of ``u`` near a boundary can never reach a zero-priority leaf.
    """
    num_leaves = tree.shape[0] // 2
    node = jnp.ones(target.shape, jnp.int32)
    u = target.astype(tree.dtype)
    for _ in range(num_leaves.bit_length() - 1):
        left = tree[2 * node]
        right = tree[2 * node + 1]
        go_left = (u < left) | (right <= 0)
        u = jnp.where(go_left, u, u - left)
        node = 2 * node + jnp.where(go_left, 0, 1)
    return node - num_leaves


# ----------------------------------------------------------------------------------------
# buffer
# ----------------------------------------------------------------------------------------


def init(
    *,
    capacity: int,
    num_envs: int,
    observation_shape: Sequence[int],
    observation_dtype: Any,
    frame_stack: int = 1,
    max_n_step: int,
) -> PrioritizedState:
    """An empty prioritized buffer; arguments as :func:`core.replay.init` plus ``max_n_step``.

    Args:
      capacity, num_envs, observation_shape, observation_dtype, frame_stack: as in
        :func:`core.replay.init`.
      max_n_step: ``H``, the largest ``n_step`` that :func:`sample` will be called with.

    Returns:
      A :class:`PrioritizedState` with an all-zero tree and ``max_priority = 1``.

    Notes:
      A slot's leaf is switched on when the ``H``-th row after it is written, so the tree
      never holds a slot whose n-step window is incomplete. Sampling with ``n < H`` also
      excludes the ``H - n`` newest rows (uniform :func:`core.replay.sample` excludes only
      ``n``); this lets annealed ``n`` (e.g. BBF's 10 → 3) share one tree.
    """
    storage = replay.init(
        capacity=capacity,
        num_envs=num_envs,
        observation_shape=observation_shape,
        observation_dtype=observation_dtype,
        frame_stack=frame_stack,
    )
    rows, envs = storage.step_type.shape
    if max_n_step < 1 or rows < max_n_step + frame_stack + 1:
        raise ValueError(
            f"max_n_step={max_n_step} must be >= 1 and leave rows ({rows}) >= max_n_step + "
            f"frame_stack + 1 = {max_n_step + frame_stack + 1}"
        )
    num_leaves = 1 << max(rows * envs - 1, 1).bit_length()
    return PrioritizedState(
        replay=storage,
        priority=jnp.zeros((rows, envs), jnp.float32),
        sum_tree=jnp.zeros((2 * num_leaves,), jnp.float32),
        max_priority=jnp.ones((), jnp.float32),
        layout=PriorityLayout(max_n_step=max_n_step, num_leaves=num_leaves),
    )


def _valid(state: PrioritizedState, indices: Indices) -> Array:
    """``[K]`` bool: slots the tree may hold (ages ``H .. num_rows - F``, not LAST)."""
    storage = state.replay
    age = replay.age_of_row(storage, indices.row)
    high = storage.num_rows - storage.layout.frame_stack
    not_last = storage.step_type[indices.row, indices.env] != StepType.LAST
    return (age >= state.layout.max_n_step) & (age <= high) & not_last


def _row_indices(state: PrioritizedState, row: Array) -> Indices:
    num_envs = state.replay.step_type.shape[1]
    return Indices(row=jnp.full((num_envs,), row, jnp.int32),
                   env=jnp.arange(num_envs, dtype=jnp.int32))


def add(state: PrioritizedState, timestep: TimeStep, action: Array) -> PrioritizedState:
    """Writes one batched step (as :func:`core.replay.add`) and keeps the tree in sync.

    The written row's slots get ``priority = max_priority`` (Schaul et al. Algorithm 1,
    line 6) but a zero leaf until ``H`` rows follow them; the row that thereby reaches age
    ``H`` gets its leaves ``priority × [not LAST]``; the row whose stack would now reach an
    overwritten row, and the overwritten row itself, get zero leaves. O(B log P).

    Args:
      state: the buffer.
      timestep: :class:`TimeStep` with ``[B]`` fields and ``[B, *O]`` observation.
      action: ``[B]`` integer actions chosen at ``timestep.observation``.

    Returns:
      The updated :class:`PrioritizedState`.

    Notes:
      As :func:`core.replay.add`, carry or donate the state so the update is in place.
    """
    rows, num_envs = state.replay.step_type.shape
    written_row = state.replay.cursor
    storage = replay.add(state.replay, timestep, action)
    priority = jax.lax.dynamic_update_index_in_dim(
        state.priority, jnp.full((num_envs,), state.max_priority), written_row, 0
    )
    state = state._replace(replay=storage, priority=priority)
    # Ages after the add: the row leaving the window (stack would reach overwritten rows)
    # and the row entering it (its H-th successor now exists).
    leaving_row = (storage.cursor - 1 - (storage.num_rows - storage.layout.frame_stack + 1)) % rows
    entering_row = (storage.cursor - 1 - state.layout.max_n_step) % rows
    entering = _row_indices(state, entering_row)
    entering_value = jnp.where(_valid(state, entering), priority[entering_row], 0.0)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    flat = jnp.concatenate([
        replay.flat_index(storage, _row_indices(state, written_row)),
        replay.flat_index(storage, _row_indices(state, leaving_row)),
        replay.flat_index(storage, entering),
    ])
    # Rows may coincide (F = 1 when full, or tiny buffers); coinciding leaves get equal values.
    values = jnp.concatenate([zeros, zeros, entering_value])
    return state._replace(sum_tree=sum_tree_update(state.sum_tree, flat, values))


def update_priorities(
    state: PrioritizedState,
    indices: Indices,
    td_error: Array,
    *,
    alpha: chex.Numeric,
    epsilon: float = 1e-6,
) -> PrioritizedState:
    """Sets ``p_i^α = (|δ_i| + ε)^α`` of sampled slots and raises ``max_priority``.

    Implements Eq. (1) of Schaul et al. (2016), arXiv:1511.05952, proportional variant::

        priority_i = (|td_error_i| + epsilon)^alpha

    Args:
      state: the buffer.
      indices: :class:`Indices` ``[K]`` from :func:`sample`.
      td_error: ``[K]`` float TD errors δ_i of those transitions (not yet exponentiated).
      alpha: α ≥ 0 (0 is uniform), may be traced.
      epsilon: ε > 0 keeps every valid slot sampleable.

    Returns:
      The buffer with new priorities; a slot that stopped being valid since it was sampled
      (overwritten, or its stack now reaches overwritten rows) keeps a zero leaf.

    Notes:
      O(K log P) when the state is carried or donated (in place); a non-donated top-level
      call copies the tree and priorities (12 MB at 1M slots, ~10 ms on a CPU).
    """
    chex.assert_rank(td_error, 1)
    chex.assert_equal_shape([td_error, indices.row, indices.env])
    priority = (jnp.abs(td_error).astype(jnp.float32) + epsilon) ** jnp.asarray(alpha, jnp.float32)
    leaf_value = jnp.where(_valid(state, indices), priority, 0.0)
    return state._replace(
        priority=state.priority.at[indices.row, indices.env].set(priority),
        sum_tree=sum_tree_update(
            state.sum_tree, replay.flat_index(state.replay, indices), leaf_value),
        max_priority=jnp.maximum(state.max_priority, jnp.max(priority)),
    )


def probabilities(state: PrioritizedState) -> Array:
    """``[R, B]`` float32 sampling probabilities ``P(i)`` of every slot (O(R·B); for tests)."""
    rows, num_envs = state.replay.step_type.shape
    leaves = state.sum_tree[state.layout.num_leaves:][: rows * num_envs]
    return (leaves / jnp.maximum(state.sum_tree[1], 1e-30)).reshape(rows, num_envs)


def sample(
    state: PrioritizedState,
    key: PRNGKey,
    *,
    batch_size: int,
    n_step: int,
    gamma: chex.Numeric,
    beta: chex.Numeric,
) -> PrioritizedSample:
    """Samples ``batch_size`` slots with ``P(i) ∝ p_i^α`` by stratified prefix-sum search.

    Implements Sec. 3.3–3.4 and Appendix B.2.1 of Schaul et al. (2016), arXiv:1511.05952::

        u_j = (j + U_j) · Σ_k p_k^α / batch_size,   U_j ~ Uniform[0, 1),  j = 0..batch_size-1
        i_j = sum-tree leaf containing mass u_j
        w_j = (N · P(i_j))^{-β} / max_l (N · P(i_l))^{-β}

    Args:
      state: the buffer.
      key: PRNG key.
      batch_size: static number of transitions (one per stratum).
      n_step: static ``n``, ``1 <= n <= max_n_step``.
      gamma: scalar γ, may be traced.
      beta: scalar β of the importance weights, may be traced (annealed to 1).

    Returns:
      A :class:`PrioritizedSample`: transitions as :func:`core.replay.gather`, indices, and
      importance weights ``[batch_size]`` whose maximum is 1.

    Notes:
      O(batch · log P) gathers. ``N`` (the number of stored transitions) and ``Σ p^α``
      cancel in the max-normalisation, so the weights are computed as
      ``exp(-β (log p_i^α - min_l log p_l^α))``. The result is undefined when
      :func:`can_sample` is False.
    """
    if not 1 <= n_step <= state.layout.max_n_step:
        raise ValueError(f"n_step={n_step} must be in [1, max_n_step={state.layout.max_n_step}]")
    replay.check_n_step_fits(state.replay, n_step)
    total = state.sum_tree[1]
    strata = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
    leaf = sum_tree_search(state.sum_tree, strata * (total / batch_size))
    # (N·P(i))^{-β} / max_l (N·P(l))^{-β} = exp(-β (log p_i - min_l log p_l)): N and the
    # total cancel, and the largest weight is exp(0) = 1 exactly.
    log_priority = jnp.log(state.sum_tree[leaf + state.layout.num_leaves])
    weight = jnp.exp(-jnp.asarray(beta, jnp.float32) * (log_priority - jnp.min(log_priority)))
    indices = replay.unflatten_index(state.replay, leaf)
    transition = replay.gather(state.replay, indices, n_step=n_step, gamma=gamma)
    return PrioritizedSample(transition=transition, indices=indices, importance_weight=weight)


def can_sample(state: PrioritizedState, *, n_step: int) -> Array:
    """``[]`` bool: whether some slot has positive probability (any ``n_step <= H``); O(1)."""
    if not 1 <= n_step <= state.layout.max_n_step:
        raise ValueError(f"n_step={n_step} must be in [1, max_n_step={state.layout.max_n_step}]")
    return state.sum_tree[1] > 0


def size(state: PrioritizedState) -> Array:
    """``[]`` int32: transitions stored (:func:`core.replay.size`)."""
    return replay.size(state.replay)


def bytes_per_transition(state: PrioritizedState) -> float:
    """Storage bytes (replay fields, priorities, sum tree) per slot of capacity."""
    return replay.bytes_per_transition(state)
