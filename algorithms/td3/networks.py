"""TD3's actor and twin critics as haiku MLPs (the only place that builds modules).

The actor's Linear layers are named ``linear_0 … linear_k`` so that :func:`actor_to_numpy`
exports them as ``w0, b0, …`` for :class:`environments.d4rl_style.MLPPolicy`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


class ActorCritic(NamedTuple):
    """Pure ``init``/``apply`` pairs (no haiku RNG)."""

    actor_init: Callable  # (key, obs [B, D]) -> params
    actor: Callable  # (params, obs [B, D]) -> [B, A] in [-1, 1]
    critic_init: Callable  # (key, obs [B, D], act [B, A]) -> params
    critic: Callable  # (params, obs [B, D], act [B, A]) -> [B, 2] twin Q values


def _mlp(x, hidden: Sequence[int], out: int, prefix: str = "linear"):
    for i, h in enumerate(hidden):
        x = jax.nn.relu(hk.Linear(h, name=f"{prefix}_{i}")(x))
    return hk.Linear(out, name=f"{prefix}_{len(hidden)}")(x)


def make_actor_critic(action_dim: int, hidden: Sequence[int]) -> ActorCritic:
    hidden = tuple(int(h) for h in hidden)

    def actor_fn(obs):
        return jnp.tanh(_mlp(obs.astype(jnp.float32), hidden, action_dim))

    def critic_fn(obs, act):
        x = jnp.concatenate([obs.astype(jnp.float32), act.astype(jnp.float32)], axis=-1)
        q1 = hk.to_module(lambda y: _mlp(y, hidden, 1))(name="q1")(x)
        q2 = hk.to_module(lambda y: _mlp(y, hidden, 1))(name="q2")(x)
        return jnp.concatenate([q1, q2], axis=-1)

    actor = hk.without_apply_rng(hk.transform(actor_fn))
    critic = hk.without_apply_rng(hk.transform(critic_fn))
    return ActorCritic(actor.init, actor.apply, critic.init, critic.apply)


def actor_to_numpy(params, *, obs_mean=None, obs_std=None) -> dict:
    """The actor's parameters as ``{"w0": [in, out], "b0": [out], ...}`` (+ obs normalisation)."""
    layers = sorted(params, key=lambda name: int(name.rsplit("_", 1)[1]))
    out = {}
    for i, name in enumerate(layers):
        out[f"w{i}"] = np.asarray(params[name]["w"], np.float32)
        out[f"b{i}"] = np.asarray(params[name]["b"], np.float32)
    if obs_mean is not None:
        out["obs_mean"] = np.asarray(obs_mean, np.float32)
        out["obs_std"] = np.asarray(obs_std, np.float32)
    return out
