"""The value network of the KSMe and MICo agents: the baseline's network, plus its representation.

The representation φ(x) that the KSMe/MICo losses shape is the encoder's (torso's) output,
the flattened convolutional features the Q head reads, as in the MICo agents of Castro et
al. 2021 (arXiv 2106.08229). Parameters are exactly those of
:func:`core.networks.make_q_network` (same modules, same names), so a KSMe agent's
checkpoint loads into the baseline's network and vice versa.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import chex
import haiku as hk

from core.networks import (NetworkConfig, QNetwork, make_head, make_torso, noisy_linear_factory,
                           preprocess_observation, record_layer_outputs)

Array = chex.Array


class RepresentationQNetwork(NamedTuple):
    """A :class:`QNetwork` and ``representation(params, observation) -> [B, D]`` of its encoder."""

    q_network: QNetwork
    representation: Callable


def make_representation_q_network(cfg: NetworkConfig, num_actions: int) -> RepresentationQNetwork:
    """torso → head as :func:`core.networks.make_q_network`, exposing the torso's output φ(x)."""

    def forward(observation: Array, noisy: bool):
        x = preprocess_observation(observation, channels_first=cfg.channels_first)
        linear = noisy_linear_factory(sigma0=cfg.noisy_sigma0, noisy=noisy) if cfg.noisy else hk.Linear
        features = make_torso(cfg)(x)
        return make_head(cfg, num_actions, linear=linear)(features), features

    transformed = hk.transform(forward)
    recorded = hk.transform(record_layer_outputs(lambda obs, noisy: forward(obs, noisy)[0]))

    def init(key: Array, observation: Array):
        return transformed.init(key, observation, False)

    def apply(params, observation: Array, key: Optional[Array] = None) -> Array:
        return transformed.apply(params, key, observation, bool(cfg.noisy and key is not None))[0]

    def representation(params, observation: Array) -> Array:
        """``[B, D]`` φ(x): the torso's flattened output (noise-free; the torso has no noisy layers)."""
        return transformed.apply(params, None, observation, False)[1]

    def layer_outputs(params, observation: Array):
        return recorded.apply(params, None, observation, False)

    return RepresentationQNetwork(q_network=QNetwork(init=init, apply=apply, layer_outputs=layer_outputs),
                                  representation=representation)
