"""Haiku networks of proto-value networks: the encoder φ, the per-task linear heads, the random indicator networks.

The encoder maps an observation to D features φ(x) = ReLU(W · torso(x) + b) (torso: the
MinAtar CNN, the Impala CNN × width, or an MLP for vector/tabular observations). The
auxiliary heads are one linear map D → A·T, read as Q_i(x, a) for T tasks. The
random-network indicators use the same architecture with T outputs (a frozen network,
never trained; its thresholds are learned separately). The linear-evaluation network is
the same encoder under a linear Q head D → A.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from core.networks import MLP, ImpalaCNN, MinAtarCNN, preprocess_observation

ENCODER = "encoder"
"""Module name of the encoder: its parameters are the keys starting with ``"encoder"``."""
TORSOS = ("minatar", "impala", "mlp")


class EncoderConfig(NamedTuple):
    """Architecture of the encoder (static)."""

    torso: str = "minatar"
    num_features: int = 256
    impala_width: int = 1
    hidden_sizes: Sequence[int] = (256,)
    channels_first: bool = False


class Encoder(hk.Module):
    """φ(x) = ReLU(Linear_D(torso(x))): ``[B, *O]`` → ``[B, D]``."""

    def __init__(self, cfg: EncoderConfig, name: str = ENCODER):
        super().__init__(name=name)
        self._cfg = cfg

    def __call__(self, observation):
        cfg = self._cfg
        x = preprocess_observation(observation, channels_first=cfg.channels_first)
        if cfg.torso == "minatar":
            x = MinAtarCNN()(x)
        elif cfg.torso == "impala":
            x = ImpalaCNN(width_scale=cfg.impala_width)(x)
        elif cfg.torso == "mlp":
            x = MLP(tuple(cfg.hidden_sizes))(x)
        else:
            raise ValueError(f"unknown torso {cfg.torso!r}; choose one of {TORSOS}")
        return jax.nn.relu(hk.Linear(cfg.num_features, name="features")(x))


class PVNNetwork(NamedTuple):
    """Pure functions of the PVN network (params of one ``hk.transform``).

    ``init(key, observation)``; ``features(params, obs) -> [B, D]``;
    ``task_values(params, obs) -> [B, A, T]`` the auxiliary Q_i(x, a).
    """

    init: Callable
    features: Callable
    task_values: Callable


def make_pvn_network(cfg: EncoderConfig, *, num_actions: int, num_tasks: int) -> PVNNetwork:
    def forward(observation):
        phi = Encoder(cfg)(observation)
        q = hk.Linear(num_actions * num_tasks, name="task_heads")(phi)
        return phi, q.reshape(q.shape[0], num_actions, num_tasks)

    transformed = hk.without_apply_rng(hk.transform(forward))
    return PVNNetwork(init=transformed.init, features=lambda p, o: transformed.apply(p, o)[0],
                      task_values=lambda p, o: transformed.apply(p, o)[1])


def make_random_indicator_network(cfg: EncoderConfig, *, num_tasks: int) -> hk.Transformed:
    """The frozen random networks f(x) ``[B, T]`` of the random-network indicators (same architecture)."""

    def forward(observation):
        return hk.Linear(num_tasks, name="random_outputs")(Encoder(cfg, name="indicator_encoder")(observation))

    return hk.without_apply_rng(hk.transform(forward))


def make_linear_q_network(cfg: EncoderConfig, *, num_actions: int, finetune: bool) -> hk.Transformed:
    """Q(x, ·) = W φ(x) + b with the encoder's features; frozen (stop-gradient) unless ``finetune``."""

    def forward(observation):
        phi = Encoder(cfg)(observation)
        if not finetune:
            phi = jax.lax.stop_gradient(phi)
        return hk.Linear(num_actions, name="linear_head", w_init=jnp.zeros)(phi)

    return hk.without_apply_rng(hk.transform(forward))


def encoder_params(params: dict) -> dict:
    """The encoder's entries of a params dict (shared by every network of this module)."""
    return {k: v for k, v in params.items() if k.startswith(ENCODER + "/") or k == ENCODER}
