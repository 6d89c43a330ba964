"""Environments behind one dm-env :class:`core.types.TimeStep` interface.

* ``make(env_id, ...) -> HostEnv``: envpool's C++ environments (Atari, MiniGrid,
  MuJoCo, classic control, ...), sync, async or inside ``jit`` via ``HostEnv.xla()``.
* ``make_jax(env_id, ...) -> JaxEnv``: JAX environments (gymnax MinAtar, CartPole)
  whose ``reset``/``step`` are pure functions steppable inside ``jit``.
* ``registered_ids()``, ``is_jax_env(env_id)``, ``UnknownEnvironmentError``.
* ``AtariProtocol``/``ATARI_PROTOCOLS``: the ``atari100k`` and ``atari200m`` protocols.

Both kinds share the semantics: discount 0 on termination, 1 on truncation, and the step
after a LAST time step returns the FIRST time step of a new episode (action ignored,
reward 0, discount 1).
"""
from environments.atari import ATARI_PROTOCOLS, AtariProtocol, atari_protocol
from environments.envpool_env import HostEnv, XlaFunctions, XlaStep, make
from environments.jax_envs import JaxEnv, JaxEnvState, make_jax
from environments.registry import (
    UnknownEnvironmentError,
    check_env_id,
    is_atari,
    is_jax_env,
    registered_ids,
)

__all__ = [
    "ATARI_PROTOCOLS",
    "AtariProtocol",
    "HostEnv",
    "JaxEnv",
    "JaxEnvState",
    "UnknownEnvironmentError",
    "XlaFunctions",
    "XlaStep",
    "atari_protocol",
    "check_env_id",
    "is_atari",
    "is_jax_env",
    "make",
    "make_jax",
    "registered_ids",
]
