"""JAX environments (gymnax MinAtar and CartPole) with envpool's dm-env semantics.

``make_jax(env_id)`` returns a :class:`JaxEnv` of pure functions, vmapped over a batch of
``B`` environments and steppable inside ``jit``/``lax.scan``::

    env = environments.make_jax("MinAtar/Breakout")
    state, ts = env.reset(key_reset, 64)               # 64 FIRST time steps
    state, ts = jax.jit(env.step)(key_step, state, actions)

Semantics, identical to :class:`environments.HostEnv`:
  * Delayed auto-reset: after a LAST time step, the next ``step`` ignores its action and
    returns the FIRST time step of a new episode (reward 0, discount 1). gymnax's own
    ``env.step`` instead returns the reset observation in the same call as ``done``; this
    module calls ``step_env``/``reset_env`` and carries a ``needs_reset`` flag instead.
  * Termination (``step_env``'s ``terminated``): LAST with discount 0. Time limit
    (``env.is_truncated``: the step counter ``state.time`` reached
    ``params.max_steps_in_episode``) without termination: LAST with discount 1.
    gymnax >= 1.0 keeps the two apart (``step_env`` returns the natural termination only);
    a step that is both counts as a termination.
  * ``step_type`` int8, ``reward``/``discount`` float32, observations **float32**
    (MinAtar ``[10, 10, C]`` channels of 0/1 in gymnax's HWC layout; CartPole ``[4]``).

Notes (departures from the original MinAtar, Young & Tian 2019, arXiv:1903.03176):
  * gymnax's MinAtar has no sticky actions (MinAtar uses ``sticky_action_prob=0.1``).
  * Freeway ends after ``max_steps_in_episode=2500`` steps; gymnax treats that as a time
    limit (discount 1) while MinAtar calls it terminal. The timer is not observed.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from core.types import Array, EnvSpec, PRNGKey, StepType, TimeStep
from environments.registry import JAX_ENV_IDS, check_env_id

__all__ = ["JaxEnv", "JaxEnvState", "make_jax"]


class JaxEnvState(NamedTuple):
    """State of a batch of JAX environments."""

    env_state: Any  # gymnax EnvState pytree, every leaf [B, ...]
    needs_reset: Array  # [B] bool: the last time step was LAST; the next step starts anew


class JaxEnv(NamedTuple):
    """Pure functions of a batch of JAX environments (see the module docstring).

    ``reset(key, num_envs) -> (JaxEnvState, TimeStep)``: ``num_envs`` fixes the batch
    shape, so it is static (``jax.jit(env.reset, static_argnums=1)``).
    ``step(key, state, actions [B] int32) -> (JaxEnvState, TimeStep)``.
    """

    spec: EnvSpec
    params: Any  # gymnax EnvParams with the overrides applied
    reset: Callable[[PRNGKey, int], Tuple[JaxEnvState, TimeStep]]
    step: Callable[[PRNGKey, JaxEnvState, Array], Tuple[JaxEnvState, TimeStep]]


def make_jax(env_id: str, **overrides: Any) -> JaxEnv:
    """Makes a JAX environment.

    Args:
      env_id: ``"Breakout-MinAtar"`` (or ``"MinAtar/Breakout"``), likewise Asterix, Freeway,
        Seaquest, SpaceInvaders; or ``"gymnax/CartPole-v1"``.
      **overrides: fields of the gymnax ``EnvParams``, e.g. ``max_steps_in_episode=100``.

    Raises:
      UnknownEnvironmentError: unknown ``env_id`` (the message names the closest ids).
      ValueError: an envpool id, or an override that is not an ``EnvParams`` field.
    """
    check_env_id(env_id)
    if env_id not in JAX_ENV_IDS:
        raise ValueError(f"{env_id!r} is an envpool environment: use environments.make({env_id!r}).")
    import gymnax  # pylint: disable=import-outside-toplevel

    gym_env, params = gymnax.make(JAX_ENV_IDS[env_id])
    fields = [f.name for f in dataclasses.fields(params)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for {env_id!r}; valid: {fields}")
    params = params.replace(**overrides)
    obs_shape = tuple(int(d) for d in gym_env.observation_space(params).shape)
    spec = EnvSpec(env_id=env_id, observation_shape=obs_shape,
                   observation_dtype=np.dtype(np.float32), num_actions=int(gym_env.num_actions))

    def reset_one(key: PRNGKey) -> Tuple[Any, TimeStep]:
        obs, env_state = gym_env.reset_env(key, params)
        # Strong dtypes, so the reset state has the same types as a stepped one (scan carry).
        env_state = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), env_state)
        timestep = TimeStep(step_type=jnp.int8(StepType.FIRST), reward=jnp.float32(0.0),
                            discount=jnp.float32(1.0), observation=obs.astype(jnp.float32))
        return env_state, timestep

    def step_one(key: PRNGKey, state: JaxEnvState,
                 action: Array) -> Tuple[JaxEnvState, TimeStep]:
        key_reset, key_step = jax.random.split(key)
        reset_state, reset_ts = reset_one(key_reset)
        obs, next_state, reward, terminated, _ = gym_env.step_env(
            key_step, state.env_state, action, params)
        terminated = jnp.asarray(terminated, bool)
        last = terminated | jnp.asarray(gym_env.is_truncated(next_state, params), bool)
        step_ts = TimeStep(
            step_type=jnp.where(last, jnp.int8(StepType.LAST), jnp.int8(StepType.MID)),
            reward=jnp.asarray(reward, jnp.float32),
            discount=jnp.where(terminated, jnp.float32(0.0), jnp.float32(1.0)),
            observation=obs.astype(jnp.float32),
        )
        select = lambda on_reset, on_step: jax.tree.map(  # noqa: E731
            lambda r, s: jnp.where(state.needs_reset, r, s), on_reset, on_step)
        next_state = JaxEnvState(env_state=select(reset_state, next_state),
                                 needs_reset=~state.needs_reset & last)
        return next_state, select(reset_ts, step_ts)

    def reset(key: PRNGKey, num_envs: int) -> Tuple[JaxEnvState, TimeStep]:
        env_state, timestep = jax.vmap(reset_one)(jax.random.split(key, num_envs))
        return JaxEnvState(env_state, jnp.zeros((num_envs,), bool)), timestep

    def step(key: PRNGKey, state: JaxEnvState,
             actions: Array) -> Tuple[JaxEnvState, TimeStep]:
        keys = jax.random.split(key, state.needs_reset.shape[0])
        return jax.vmap(step_one)(keys, state, actions)

    return JaxEnv(spec=spec, params=params, reset=reset, step=step)
