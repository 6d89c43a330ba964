"""Networks of the offline learners: TD3's actor and twin critics, and the Q_sarsa network.

The actor-critic is the baseline agent's (:mod:`algorithms.td3.networks`); Q_sarsa is one
more MLP Q(s, a) of the same shape (one head).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from algorithms.td3.networks import ActorCritic, make_actor_critic

__all__ = ["ActorCritic", "QNetwork", "make_actor_critic", "make_q_network"]


class QNetwork(NamedTuple):
    init: Callable  # (key, obs [B, D], act [B, A]) -> params
    apply: Callable  # (params, obs [B, D], act [B, A]) -> [B]


def make_q_network(hidden: Sequence[int]) -> QNetwork:
    hidden = tuple(int(h) for h in hidden)

    def q_fn(obs, act):
        x = jnp.concatenate([obs.astype(jnp.float32), act.astype(jnp.float32)], axis=-1)
        for i, h in enumerate(hidden):
            x = jax.nn.relu(hk.Linear(h, name=f"linear_{i}")(x))
        return hk.Linear(1, name=f"linear_{len(hidden)}")(x)[:, 0]

    q = hk.without_apply_rng(hk.transform(q_fn))
    return QNetwork(q.init, q.apply)
