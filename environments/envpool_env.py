"""envpool environments behind dm-env :class:`core.types.TimeStep` batches.

``make(env_id, ...)`` returns a :class:`HostEnv`: a batch of C++ environments stepped
from Python (sync ``reset``/``step``), asynchronously (``async_reset``/``send``/``recv``
when ``batch_size < num_envs``), or from inside ``jit`` through :meth:`HostEnv.xla`.

Semantics (checked by ``tests/environments/test_envpool_env.py``):
  * ``step_type`` int8, ``reward`` float32, ``discount`` float32; the observation is what
    envpool emits (``uint8 [4, 84, 84]`` for Atari, ``float32 [4]`` for CartPole, a dict
    of arrays for multi-part observations such as MiniGrid's).
  * Auto-reset, as dm-env and envpool do it: the call after a LAST time step ignores its
    action and returns the FIRST time step of a new episode (reward 0, discount 1).
  * Discount 0 on termination, 1 on truncation. envpool's own dm ``discount`` is 0 on
    *both* (CartPole-v1 at its 500-step limit has discount 0), so it is corrected here from
    envpool's ``trunc`` flag; where the environment reports a real game over
    (``info:terminated``, Atari) a game over on the last allowed step stays discount 0.
  * Known limitation: envpool's MiniGrid reports success on the last allowed step as
    truncated only, while the official ``minigrid`` package reports it as terminated *and*
    truncated, so such a step gets discount 1 here instead of 0. The same holds for any
    environment without ``info:terminated`` that terminates on its last allowed step
    (e.g. CartPole falling on step 500).

Order: envpool's C++ pool blocks forever on a ``recv`` with too few environments in
flight, and its XLA interface can segfault when the order is broken, so ``HostEnv``
tracks in Python which environments are in flight and raises ``RuntimeError`` instead.
Inside ``jit`` (:meth:`HostEnv.xla`) nothing can be checked: keep the order yourself.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import dm_env
import numpy as np

from core.types import Array, EnvSpec, TimeStep
from environments.atari import AtariProtocol, atari_protocol
from environments.registry import JAX_ENV_IDS, check_env_id

__all__ = ["HostEnv", "XlaFunctions", "XlaStep", "make"]

_RESERVED_KWARGS = ("env_type", "num_envs", "batch_size", "seed")


class XlaStep(NamedTuple):
    """What the XLA ``recv``/``step`` functions return (usable inside ``jit``)."""

    handle: Array  # opaque envpool handle: thread it into the next send/recv
    timestep: TimeStep  # [B] time steps, same semantics as HostEnv.step
    env_id: Array  # [B] int32: which environment produced each row
    info: Dict[str, Array]  # [B] extras, same keys as HostEnv.info


class XlaFunctions(NamedTuple):
    """envpool's XLA functions returning :class:`core.types.TimeStep` batches."""

    handle: np.ndarray  # the initial handle
    recv: Callable[[Array], XlaStep]  # recv(handle) -> XlaStep
    send: Callable[..., Array]  # send(handle, actions, env_id=None) -> handle
    step: Callable[..., XlaStep]  # step(handle, actions, env_id=None) -> XlaStep


class _Converted(NamedTuple):
    timestep: TimeStep  # [B] time steps
    env_id: Any  # [B] int32
    info: Dict[str, Any]  # [B] extras


class _Layout:
    """Positions of each field in envpool's flat state list, and its conversion."""

    def __init__(self, state_keys: Sequence[str]):
        index = {key: i for i, key in enumerate(state_keys)}
        self.index = index
        self.obs = {key.partition(":")[2] or key: i for key, i in index.items()
                    if key == "obs" or key.startswith("obs:")}
        self.single_obs = list(self.obs) == ["obs"]
        self.info = {key[len("info:"):]: i for key, i in index.items()
                     if key.startswith("info:") and key != "info:players.env_id"}
        self.info["elapsed_step"] = index["elapsed_step"]
        self.primary_obs = "obs" if self.single_obs else (
            "image" if "image" in self.obs else next(iter(self.obs)))

    def convert(self, values: Sequence[Any], xp: Any) -> _Converted:
        """envpool state list -> (TimeStep, env_id, info); ``xp`` is numpy or jax.numpy."""
        get = lambda key: values[self.index[key]]  # noqa: E731
        truncated = get("trunc")
        if "terminated" in self.info:  # a real game over on the last step is a termination
            truncated = xp.logical_and(truncated, values[self.info["terminated"]] == 0)
        discount = xp.where(truncated, xp.float32(1.0), get("discount")).astype(xp.float32)
        if self.single_obs:
            observation = values[self.obs["obs"]]
        else:
            observation = {name: values[i] for name, i in self.obs.items()}
        timestep = TimeStep(
            step_type=get("step_type").astype(xp.int8),
            reward=get("reward").astype(xp.float32),
            discount=discount,
            observation=observation,
        )
        info = {name: values[i] for name, i in self.info.items()}
        info["truncated"] = truncated
        return _Converted(timestep, info["env_id"], info)


def _env_spec(env_id: str, pool: Any, layout: _Layout) -> EnvSpec:
    obs_spec = getattr(pool.observation_spec(), layout.primary_obs)
    action_spec = pool.action_spec()
    num_actions = (int(action_spec.num_values)
                   if isinstance(action_spec, dm_env.specs.DiscreteArray) else 0)
    return EnvSpec(
        env_id=env_id,
        observation_shape=tuple(int(d) for d in obs_spec.shape),
        observation_dtype=np.dtype(obs_spec.dtype),
        num_actions=num_actions,
    )


class HostEnv:
    """A batch of envpool environments returning dm-env :class:`TimeStep` batches.

    Sync mode (``batch_size == num_envs``)::

        with environments.make("CartPole-v1", num_envs=8) as env:
            ts = env.reset()                      # all FIRST
            ts = env.step(np.zeros(8, np.int32))  # one step of every environment

    Async mode (``batch_size < num_envs``): ``async_reset()`` then alternate
    ``ts, env_ids = recv()`` and ``send(actions, env_ids)``; each ``recv`` returns the first
    ``batch_size`` environments to finish. Misuse (a ``recv`` with fewer than
    ``batch_size`` environments in flight, sending to an environment that has not
    returned, stepping before reset, using a closed env) raises ``RuntimeError``.

    Attributes:
      spec: :class:`core.types.EnvSpec` (``num_actions`` is 0 for continuous actions; for
        dict observations it describes the ``image`` entry, or the first one).
      raw_spec: envpool's own spec (``raw_spec.config`` holds every applied setting).
      num_envs: environments in the pool.
      batch_size: environments returned by each ``recv``.
    """

    def __init__(self, pool: Any, env_id: str):
        self._pool = pool
        self._layout = _Layout(pool._state_keys)  # pylint: disable=protected-access
        self.env_id = env_id
        self.raw_spec = pool.spec
        self.spec = _env_spec(env_id, pool, self._layout)
        self.num_envs = int(pool.config["num_envs"])
        self.batch_size = int(pool.config["batch_size"])
        action_array_spec = pool.spec.action_array_spec
        self._action_dtype = np.dtype(action_array_spec["action"].dtype) \
            if "action" in action_array_spec else None
        self._all_ids = np.arange(self.num_envs, dtype=np.int32)
        self._in_flight = np.zeros(self.num_envs, bool)  # sent or reset, not yet received
        self._ready = np.zeros(self.num_envs, bool)  # received, waiting for an action
        self._info: Dict[str, np.ndarray] = {}
        self._closed = False
        self._xla = False

    # ----------------------------------------------------------------- properties
    @property
    def config(self) -> Dict[str, Any]:
        """envpool's configuration of this pool (every make kwarg, defaults included)."""
        return dict(self._pool.config)

    @property
    def action_bounds(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """``(minimum, maximum)``, each ``[A]`` float32, for continuous actions (MuJoCo); ``None`` if discrete."""
        spec = self._pool.action_spec()
        if isinstance(spec, dm_env.specs.DiscreteArray) or not isinstance(spec, dm_env.specs.BoundedArray):
            return None
        shape = tuple(spec.shape)
        return (np.broadcast_to(np.asarray(spec.minimum, np.float32), shape).copy(),
                np.broadcast_to(np.asarray(spec.maximum, np.float32), shape).copy())

    @property
    def is_async(self) -> bool:
        """Whether ``recv`` returns fewer environments than the pool holds."""
        return self.batch_size < self.num_envs

    @property
    def info(self) -> Dict[str, np.ndarray]:
        """Per-step extras of the last ``reset``/``step``/``recv``, each ``[batch]``.

        Always ``env_id`` (int32), ``elapsed_step`` (int32, steps in the current episode)
        and ``truncated`` (bool, LAST because of the time limit); plus envpool's
        ``info:*`` fields without the prefix, e.g. Atari's ``lives``, ``terminated``
        (game over), ``reward`` (unclipped) and ``ram``.
        """
        return dict(self._info)

    # ------------------------------------------------------------ order tracking
    def _check_usable(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"{what} on a closed environment {self.env_id!r}.")
        if self._xla:
            raise RuntimeError(
                f"{what}: {self.env_id!r} is driven by the functions of env.xla(); "
                "the host API cannot see their sends and receives (only async_reset and "
                "close stay available).")

    def _env_ids(self, env_ids: Optional[Any]) -> np.ndarray:
        if env_ids is None:
            return self._all_ids
        ids = np.asarray(env_ids, dtype=np.int32).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env_ids must lie in [0, {self.num_envs}), got {ids.tolist()}")
        if np.unique(ids).size != ids.size:
            raise ValueError(f"env_ids must be distinct, got {ids.tolist()}")
        return ids

    def _actions(self, actions: Any, num: int) -> Any:
        if isinstance(actions, dict):
            return actions
        actions = np.asarray(actions)
        if self._action_dtype is not None:
            actions = actions.astype(self._action_dtype, copy=False)
        if actions.ndim == 0 or actions.shape[0] != num:
            raise ValueError(
                f"expected a leading dimension of {num} actions (one per env id), "
                f"got shape {actions.shape}")
        return actions

    # ------------------------------------------------------------------ async API
    def async_reset(self) -> None:
        """Resets every environment; their FIRST time steps come from ``recv``."""
        if self._closed:
            raise RuntimeError(f"async_reset on a closed environment {self.env_id!r}.")
        if not self._xla and self._in_flight.any():
            raise RuntimeError(
                f"async_reset() with {int(self._in_flight.sum())} environments still in "
                "flight; recv() them first.")
        self._pool.async_reset()
        self._in_flight[:] = True
        self._ready[:] = False

    def send(self, actions: Any, env_ids: Optional[Any] = None) -> None:
        """Sends ``actions[i]`` to environment ``env_ids[i]`` (default: all environments).

        Every id must have been returned by the last ``recv`` (or ``reset``/``step``) and
        not sent to since.
        """
        self._check_usable("send()")
        ids = self._env_ids(env_ids)
        not_ready = ids[~self._ready[ids]]
        if not_ready.size:
            if not self._ready.any() and not self._in_flight.any():
                raise RuntimeError("send() before any reset: call reset() or async_reset().")
            raise RuntimeError(
                f"send() to env ids {not_ready.tolist()} that are not waiting for an action "
                "(already sent to, or not yet received); recv() them first.")
        actions = self._actions(actions, ids.size)
        self._pool.send(actions, ids)
        self._ready[ids] = False
        self._in_flight[ids] = True

    def recv(self) -> Tuple[TimeStep, np.ndarray]:
        """Receives the next ``batch_size`` time steps and their env ids ``[batch] int32``."""
        self._check_usable("recv()")
        in_flight = int(self._in_flight.sum())
        if in_flight < self.batch_size:
            raise RuntimeError(
                f"recv() needs {self.batch_size} environments in flight but {in_flight} "
                "are (envpool would block forever); call send() or async_reset() first.")
        values = self._pool._recv()  # pylint: disable=protected-access
        timestep, env_ids, info = self._layout.convert(values, np)
        env_ids = np.asarray(env_ids, np.int32)
        self._in_flight[env_ids] = False
        self._ready[env_ids] = True
        self._info = info
        return timestep, env_ids

    # ------------------------------------------------------------------- sync API
    def _check_sync(self, what: str) -> None:
        self._check_usable(what)
        if self.is_async:
            raise RuntimeError(
                f"{what} is for sync mode; this pool has batch_size={self.batch_size} < "
                f"num_envs={self.num_envs}: use async_reset(), send() and recv().")

    def reset(self) -> TimeStep:
        """Resets every environment and returns their FIRST time steps (sync mode)."""
        self._check_sync("reset()")
        self.async_reset()
        return self.recv()[0]

    def step(self, actions: Any) -> TimeStep:
        """Steps every environment with ``actions`` ``[num_envs]`` (sync mode)."""
        self._check_sync("step()")
        if not self._ready.all():
            raise RuntimeError(
                "step() before reset(), or while environments are in flight after "
                "send(); call reset() (or recv()) first.")
        self.send(actions)
        return self.recv()[0]

    # -------------------------------------------------------------------- XLA API
    def xla(self) -> XlaFunctions:
        """envpool's XLA ``(handle, recv, send, step)``, returning :class:`XlaStep`.

        ``recv(handle) -> XlaStep``; ``send(handle, actions, env_id=None) -> handle``;
        ``step(handle, actions, env_id=None) -> XlaStep``. Thread the handle through every
        call. Nothing is checked inside ``jit``: each ``recv`` must match earlier sends (or
        an ``async_reset``), exactly as with the host API, or envpool hangs or segfaults.
        After this call the host ``reset``/``step``/``send``/``recv`` raise (they cannot
        see the XLA calls); ``async_reset`` and ``close`` remain. Example::

            env = environments.make("CartPole-v1", num_envs=4)
            xla = env.xla()
            env.async_reset()
            out = jax.jit(xla.recv)(xla.handle)  # FIRST time steps

            @jax.jit
            def rollout(out, key):
                def body(out, key_t):
                    actions = jax.random.randint(key_t, (4,), 0, 2)
                    out = xla.step(out.handle, actions, out.env_id)
                    return out, out.timestep.reward
                return jax.lax.scan(body, out, jax.random.split(key, 100))

            out, rewards = rollout(out, jax.random.key(0))  # rewards [100, 4]
        """
        if self._closed:
            raise RuntimeError(f"xla() on a closed environment {self.env_id!r}.")
        import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
        from envpool.python.xla_template import make_xla  # pylint: disable=import-outside-toplevel

        pool, layout, action_dtype = self._pool, self._layout, self._action_dtype
        handle, raw_recv, raw_send = make_xla(pool)

        def recv(handle: Array) -> XlaStep:
            out = raw_recv(handle)
            timestep, env_id, info = layout.convert(out[1:], jnp)
            return XlaStep(handle=out[0], timestep=timestep, env_id=env_id, info=info)

        def send(handle: Array, actions: Any, env_id: Optional[Array] = None) -> Array:
            if action_dtype is not None and not isinstance(actions, dict):
                actions = jnp.asarray(actions, dtype=action_dtype)
            flat = pool._from(actions, env_id)  # pylint: disable=protected-access
            pool._check_action(flat)  # pylint: disable=protected-access
            return raw_send(handle, *flat)

        def step(handle: Array, actions: Any, env_id: Optional[Array] = None) -> XlaStep:
            return recv(send(handle, actions, env_id))

        self._xla = True
        return XlaFunctions(handle=handle, recv=recv, send=send, step=step)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stops the pool's threads; idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.close()

    def __enter__(self) -> HostEnv:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"HostEnv({self.env_id!r}, num_envs={self.num_envs}, "
                f"batch_size={self.batch_size})")


def _resolve_protocol(protocol: Union[str, AtariProtocol, None], evaluation: bool,
                      env_id: str, config_keys: Sequence[str]) -> Dict[str, Any]:
    if protocol is None:
        if evaluation:
            raise ValueError("evaluation=True selects a protocol's evaluation variant; "
                             "pass protocol='atari100k' or 'atari200m' too.")
        return {}
    if isinstance(protocol, str):
        protocol = atari_protocol(protocol, evaluation=evaluation)
    elif isinstance(protocol, AtariProtocol):
        protocol = protocol.evaluation() if evaluation else protocol
    else:
        raise TypeError(f"protocol must be a str or AtariProtocol, got {type(protocol).__name__}")
    kwargs = protocol.envpool_kwargs()
    if not set(kwargs) <= set(config_keys):
        raise ValueError(f"protocol {protocol.name!r} applies to Atari environments only, "
                         f"not {env_id!r}.")
    return kwargs


def make(
    env_id: str,
    *,
    num_envs: int = 1,
    seed: int = 0,
    batch_size: Optional[int] = None,
    protocol: Union[str, AtariProtocol, None] = None,
    evaluation: bool = False,
    **overrides: Any,
) -> HostEnv:
    """Makes a batch of envpool environments.

    Args:
      env_id: an envpool id (``environments.registered_ids()``), e.g. ``"Pong-v5"``.
      num_envs: environments in the pool.
      seed: base seed; environment ``i`` is seeded from ``seed + i`` by envpool.
      batch_size: environments per ``recv``; ``None`` (= ``num_envs``) is sync mode,
        smaller values select async mode.
      protocol: Atari only: ``"atari100k"``, ``"atari200m"`` or an
        :class:`environments.atari.AtariProtocol` (see ``environments/atari.py``).
      evaluation: use the protocol's evaluation variant (no ``episodic_life``).
      **overrides: envpool configuration keys (``envpool.make_spec(env_id).config``),
        applied after the protocol, e.g. ``max_episode_steps=100``.

    Raises:
      UnknownEnvironmentError: unknown ``env_id`` (the message names the closest ids).
      ValueError: a JAX environment id, an unknown override key, or a bad value.
    """
    check_env_id(env_id)
    if env_id in JAX_ENV_IDS:
        raise ValueError(f"{env_id!r} is a JAX environment: use "
                         f"environments.make_jax({env_id!r}).")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    batch_size = num_envs if batch_size is None else batch_size
    if not 1 <= batch_size <= num_envs:
        raise ValueError(f"batch_size must lie in [1, num_envs={num_envs}], got {batch_size}")
    import envpool  # pylint: disable=import-outside-toplevel

    config_keys: List[str] = [key for key in envpool.make_spec(env_id).config._fields
                              if key not in _RESERVED_KWARGS]
    kwargs = _resolve_protocol(protocol, evaluation, env_id, config_keys)
    for key in overrides:
        if key in _RESERVED_KWARGS:
            raise ValueError(f"{key!r} cannot be overridden here (it is an argument of make).")
        if key not in config_keys:
            close = difflib.get_close_matches(key, config_keys, n=3)
            raise ValueError(f"Unknown envpool option {key!r} for {env_id!r}; "
                             f"closest: {close}; valid: {sorted(config_keys)}")
    kwargs.update(overrides)
    if "noop_max" in kwargs and kwargs["noop_max"] < 1:
        raise ValueError(f"noop_max must be >= 1 (envpool crashes on 0), got {kwargs['noop_max']}")
    pool = envpool.make(env_id, env_type="dm", num_envs=num_envs, batch_size=batch_size,
                        seed=seed, **kwargs)
    return HostEnv(pool, env_id)
