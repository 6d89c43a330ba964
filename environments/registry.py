"""Environment ids: envpool's host environments plus the JAX (gymnax) environments.

``registered_ids()`` lists every id ``environments.make``/``make_jax`` accept;
``is_jax_env(id)`` says which of the two; an unknown id raises
:class:`UnknownEnvironmentError` naming the closest valid ids.

envpool is imported lazily, so code that only uses JAX environments never loads it.
"""
from __future__ import annotations

import difflib
import functools
from typing import Dict, Tuple

__all__ = [
    "JAX_ENV_IDS",
    "UnknownEnvironmentError",
    "check_env_id",
    "is_atari",
    "is_jax_env",
    "registered_ids",
]

# id accepted by `make_jax` -> gymnax id. MinAtar games under both spellings; gymnax's
# CartPole is prefixed because envpool already owns "CartPole-v1".
JAX_ENV_IDS: Dict[str, str] = {
    **{f"{game}-MinAtar": f"{game}-MinAtar" for game in
       ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")},
    **{f"MinAtar/{game}": f"{game}-MinAtar" for game in
       ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")},
    "gymnax/CartPole-v1": "CartPole-v1",
}


class UnknownEnvironmentError(ValueError):
    """An environment id that neither envpool nor the JAX registry knows."""

    def __init__(self, env_id: str, suggestions: Tuple[str, ...]):
        self.env_id = env_id
        self.suggestions = suggestions
        hint = (
            "closest valid ids: " + ", ".join(repr(s) for s in suggestions)
            if suggestions
            else "no close match; see environments.registered_ids()"
        )
        super().__init__(f"Unknown environment id {env_id!r}; {hint}.")


@functools.lru_cache(maxsize=1)
def envpool_ids() -> Tuple[str, ...]:
    """Every id envpool can make (``envpool.list_all_envs()``)."""
    import envpool  # pylint: disable=import-outside-toplevel

    return tuple(envpool.list_all_envs())


@functools.lru_cache(maxsize=1)
def registered_ids() -> Tuple[str, ...]:
    """All valid ids, sorted: envpool's ids and the JAX environments' ids."""
    return tuple(sorted({*envpool_ids(), *JAX_ENV_IDS}))


def closest_ids(env_id: str, *, n: int = 5) -> Tuple[str, ...]:
    """Up to ``n`` valid ids closest to ``env_id`` (case-insensitive difflib ratio)."""
    by_lower: Dict[str, str] = {}
    for valid in registered_ids():
        by_lower.setdefault(valid.lower(), valid)
    matches = difflib.get_close_matches(env_id.lower(), list(by_lower), n=n, cutoff=0.6)
    return tuple(by_lower[m] for m in matches)


def check_env_id(env_id: str) -> str:
    """Returns ``env_id`` if valid, else raises :class:`UnknownEnvironmentError`."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__}")
    if env_id in JAX_ENV_IDS or env_id in envpool_ids():
        return env_id
    raise UnknownEnvironmentError(env_id, closest_ids(env_id))


def is_jax_env(env_id: str) -> bool:
    """Whether ``env_id`` is a JAX environment (``make_jax``) rather than envpool (``make``).

    Raises:
      UnknownEnvironmentError: ``env_id`` is not registered.
    """
    if env_id in JAX_ENV_IDS:
        return True
    check_env_id(env_id)
    return False


@functools.lru_cache(maxsize=None)
def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an envpool Atari game (takes an Atari protocol).

    Raises:
      UnknownEnvironmentError: ``env_id`` is not registered.
    """
    if is_jax_env(env_id):
        return False
    import envpool  # pylint: disable=import-outside-toplevel

    fields = envpool.make_spec(env_id).config._fields
    return "repeat_action_probability" in fields and "episodic_life" in fields
