"""Shared pytrees: batched time steps, transitions, environment specs, train state.

Shape vocabulary used in every field comment of this repository:
``T`` time, ``B`` batch/envs, ``A`` actions, ``N`` atoms/quantiles, ``E`` experts,
``S`` slots, ``D`` features, ``H`` hidden units, ``*O`` the observation shape.

Episode semantics follow dm-env: a time step carries the reward and discount of the
transition that *led into* its observation; ``discount`` is 0 on termination and 1 on
truncation (time limit), so losses take ``discount_t`` and never an ad-hoc ``1 - done``.
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple, Tuple

import chex
import jax.numpy as jnp
import numpy as np

Array = chex.Array
PRNGKey = chex.PRNGKey
Params = Any  # a haiku parameter tree
OptState = Any  # an optax state pytree


class StepType(enum.IntEnum):
    """dm-env step types as integers usable inside ``jit``."""

    FIRST = 0
    MID = 1
    LAST = 2


class TimeStep(NamedTuple):
    """A batch of environment time steps (dm-env semantics, arrays only)."""

    step_type: Array  # [B] int8: StepType of each observation
    reward: Array  # [B] float32: reward of the transition into `observation` (0 on FIRST)
    discount: Array  # [B] float32: 0 on termination, 1 otherwise (truncation included)
    observation: Array  # [B, *O] observation dtype (uint8 pixels, float32 features)

    def first(self) -> Array:
        return self.step_type == StepType.FIRST

    def last(self) -> Array:
        return self.step_type == StepType.LAST


class Transition(NamedTuple):
    """A batch of (n-step) transitions sampled from replay, ready for a TD loss."""

    observation: Array  # [B, *O] s_t
    action: Array  # [B] int32 a_t
    reward: Array  # [B] float32 Σ_{k<n} γ^k r_{t+k+1}, truncated at episode end
    discount: Array  # [B] float32 γ^k ∏ discount: bootstrap weight of s_{t+n}, 0 at termination
    next_observation: Array  # [B, *O] s_{t+n} (or the last observation of the episode)
    next_action: Array  # [B] int32 a_{t+n} taken by the behaviour policy (SARSA-style targets)


class EnvSpec(NamedTuple):
    """What an agent needs to know about an environment to build its networks."""

    env_id: str
    observation_shape: Tuple[int, ...]  # *O of one observation
    observation_dtype: Any  # numpy dtype of observations
    num_actions: int  # A, discrete actions


class TrainState(NamedTuple):
    """A value-based learner's state: online and target parameters, optimiser, counters."""

    params: Params  # online network parameters
    target_params: Params  # target network parameters
    opt_state: OptState  # optax state of the online parameters
    step: Array  # [] int32: gradient steps taken
    key: PRNGKey  # [2] uint32: the learner's own key stream


def zeros_like_spec(spec: EnvSpec, batch: int) -> np.ndarray:
    """A zero observation batch ``[batch, *O]`` of the spec's dtype (for network init)."""
    return np.zeros((batch, *spec.observation_shape), dtype=spec.observation_dtype)


def timestep_spec_arrays(spec: EnvSpec, num_envs: int) -> TimeStep:
    """A zero-filled :class:`TimeStep` of the right shapes and dtypes (for tracing)."""
    return TimeStep(
        step_type=jnp.zeros((num_envs,), jnp.int8),
        reward=jnp.zeros((num_envs,), jnp.float32),
        discount=jnp.ones((num_envs,), jnp.float32),
        observation=jnp.zeros((num_envs, *spec.observation_shape), spec.observation_dtype),
    )
