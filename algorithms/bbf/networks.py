"""BBF's network in haiku: encoder, projection, dueling C51 head, SPR transition model and predictor.

Parameter groups (the first component of every module path) are what the reset acts on:
``encoder`` (Impala CNN ×width, or the MinAtar / Nature CNN for the SPR-sized baselines),
``transition_model`` (two 3×3 convolutions over the latent and the action planes),
``projection`` (linear, ``hidden_dim`` units), ``predictor`` (linear, ``hidden_dim``) and
``head`` (dueling C51). Every weight is initialised Xavier-uniform (Glorot & Bengio 2010),
as in the reference implementation; biases are zero.

    Q(s, ·) = head(relu(projection(flatten(renormalize(encoder(s))))))
    ŷ_{t+k} = predictor(projection(flatten(ẑ_{t+k}))),  ẑ_{t+k} = T(ẑ_{t+k−1}, a_{t+k−1}),  ẑ_t = latent of s_t
    y_{t+k} = projection_target(flatten(renormalize(encoder_target(s_{t+k}))))
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import chex
import haiku as hk
import jax
import jax.numpy as jnp

from core.networks import (DuelingHead, MinAtarCNN, NatureCNN, QNetwork, ShiftedMatmulConv2D,
                           preprocess_observation)

from algorithms.bbf.bbf import renormalize

Array = chex.Array
ENCODERS = ("impala", "minatar", "nature")
PARAM_GROUPS = ("encoder", "transition_model", "projection", "predictor", "head")


@dataclasses.dataclass(frozen=True)
class BBFNetworkConfig:
    """Architecture of the BBF network."""

    encoder: str = "impala"
    """"impala" (BBF), "minatar" (one 3×3 conv, SPR-sized MinAtar baseline) or "nature" (SPR/DER on Atari)."""
    impala_width: int = 4
    """Width multiplier of the Impala stages (16, 32, 32) (4 in BBF)."""
    impala_channels: tuple[int, ...] = (16, 32, 32)
    """Channels of the Impala stages before the width multiplier (one max-pool /2 per stage)."""
    impala_blocks: int = 2
    """Residual blocks per Impala stage (2 in BBF: 3 stages × (1 + 2·2) = 15 conv layers)."""
    hidden_dim: int = 2048
    """Units of the projection (and predictor) layer (2048 in BBF)."""
    num_atoms: int = 51
    """C51 atoms."""
    matmul_convs: bool = False
    """Compute the Impala and transition-model convolutions as shifted matmuls (faster inside lax.scan on CPU)."""
    renormalize: bool = True
    """Min–max renormalise the latents of the encoder and the transition model."""
    channels_first: bool = True
    """Observations arrive as [B, C, H, W] (envpool Atari); MinAtar is channels-last."""


class BBFNetwork(NamedTuple):
    """Pure functions over one parameter dict (all share it)."""

    init: Callable  # (key, observation [B, *O], actions [B, K]) -> params
    q_network: QNetwork  # apply(params, observation, key=None) -> logits [B, A, N]
    encode: Callable  # (params, observation) -> latent [B, h, w, C]
    q_logits: Callable  # (params, latent) -> logits [B, A, N]
    project: Callable  # (params, latent [B, h, w, C]) -> projection [B, D]
    rollout: Callable  # (params, latent [B, h, w, C], actions [B, K]) -> latents [B, K, h, w, C]
    predict: Callable  # (params, latent [B, h, w, C]) -> prediction [B, D]


def _xavier_uniform_creator(next_creator, shape, dtype, init, context):
    if context.name == "w":
        init = hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")
    return next_creator(shape, dtype, init)


class SameConv3x3(hk.Module):
    """3×3 stride-1 SAME convolution as zero padding + :class:`core.networks.ShiftedMatmulConv2D`.

    The parameters (``w`` ``[3, 3, C, O]``, ``b``) and outputs of ``hk.Conv2D(O, 3, padding="SAME")``;
    the shifted-matmul form runs much faster than XLA:CPU's convolution inside ``lax.scan``
    (the jitted MinAtar loop), see README "Cost".
    """

    def __init__(self, channels: int, name: Optional[str] = None):
        super().__init__(name=name)
        self._channels = channels

    def __call__(self, x: Array) -> Array:
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return ShiftedMatmulConv2D(self._channels, 3, stride=1, padding="VALID", name="conv2_d")(x)


class ImpalaEncoder(hk.Module):
    """Impala CNN ×width (Espeholt et al. 2018; BBF's encoder), feature maps out, relu at the end.

    Per stage: conv3×3 → max-pool 3×3/2 → ``blocks`` residual blocks (relu → conv → relu →
    conv, plus identity), the layers of :class:`core.networks.ImpalaCNN`. ``matmul_convs``
    computes every convolution as shifted matmuls (:class:`SameConv3x3`) for the jitted
    MinAtar loop.
    """

    def __init__(self, *, width_scale: int, stage_channels, blocks_per_stage: int, matmul_convs: bool,
                 name: Optional[str] = None):
        super().__init__(name=name)
        self._channels = tuple(int(c * width_scale) for c in stage_channels)
        self._blocks = blocks_per_stage
        self._matmul = matmul_convs

    def _conv(self, channels: int, name: str):
        if self._matmul:
            return SameConv3x3(channels, name=name)
        return hk.Conv2D(channels, 3, padding="SAME", name=name)

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        for stage, channels in enumerate(self._channels):
            x = self._conv(channels, f"stage{stage}_conv")(x)
            x = hk.max_pool(x, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")
            for block in range(self._blocks):
                y = self._conv(channels, f"stage{stage}_block{block}_conv0")(jax.nn.relu(x))
                y = self._conv(channels, f"stage{stage}_block{block}_conv1")(jax.nn.relu(y))
                x = x + y
        return jax.nn.relu(x)


class TransitionModel(hk.Module):
    """SPR's convolutional transition model: [ẑ, one-hot(a) planes] → conv3×3 → relu → conv3×3 → relu."""

    def __init__(self, num_actions: int, *, renorm: bool, matmul_convs: bool = False, name: Optional[str] = None):
        super().__init__(name=name)
        self._num_actions, self._renorm, self._matmul = num_actions, renorm, matmul_convs

    def __call__(self, latent: Array, action: Array) -> Array:
        chex.assert_rank([latent, action], [4, 1])
        planes = jax.nn.one_hot(action, self._num_actions, dtype=latent.dtype)  # [B, A]
        planes = jnp.broadcast_to(planes[:, None, None, :], (*latent.shape[:3], self._num_actions))
        x = jnp.concatenate([latent, planes], axis=-1)
        channels = latent.shape[-1]
        conv = (lambda name: SameConv3x3(channels, name=name)) if self._matmul else (
            lambda name: hk.Conv2D(channels, 3, padding="SAME", name=name))
        x = jax.nn.relu(conv("conv0")(x))
        x = jax.nn.relu(conv("conv1")(x))
        return renormalize(x) if self._renorm else x


def make_bbf_network(cfg: BBFNetworkConfig, num_actions: int) -> BBFNetwork:
    """Transforms the BBF network into pure functions (``hk.multi_transform``)."""
    if cfg.encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {cfg.encoder!r}; choose one of {ENCODERS}")

    def modules():
        if cfg.encoder == "impala":
            encoder = ImpalaEncoder(width_scale=cfg.impala_width, stage_channels=cfg.impala_channels,
                                    blocks_per_stage=cfg.impala_blocks, matmul_convs=cfg.matmul_convs,
                                    name="encoder")
        elif cfg.encoder == "minatar":
            encoder = MinAtarCNN(flatten=False, name="encoder")
        else:
            encoder = NatureCNN(padding="SAME", flatten=False, name="encoder")
        projection = hk.Linear(cfg.hidden_dim, name="projection")
        predictor = hk.Linear(cfg.hidden_dim, name="predictor")
        head = DuelingHead(num_actions, num_atoms=cfg.num_atoms, name="head")
        transition = TransitionModel(num_actions, renorm=cfg.renormalize, matmul_convs=cfg.matmul_convs,
                                     name="transition_model")

        def encode(observation):
            latent = encoder(preprocess_observation(observation, channels_first=cfg.channels_first))
            return renormalize(latent) if cfg.renormalize else latent

        def project(latent):
            return projection(latent.reshape(latent.shape[0], -1))

        def q_logits(latent):
            return head(jax.nn.relu(project(latent)))

        def rollout(latent, actions):
            out = []
            for k in range(actions.shape[1]):  # K is static (5 in BBF)
                latent = transition(latent, actions[:, k])
                out.append(latent)
            return jnp.stack(out, axis=1)

        def predict(latent):
            return predictor(project(latent))

        def forward(observation):
            return q_logits(encode(observation))

        def init(observation, actions):
            with hk.custom_creator(_xavier_uniform_creator):
                latent = encode(observation)
                q_logits(latent)
                predict(rollout(latent, actions)[:, 0])

        return init, (forward, encode, q_logits, project, rollout, predict)

    transformed = hk.without_apply_rng(hk.multi_transform(modules))
    forward, encode, q_logits, project, rollout, predict = transformed.apply

    def init(key, observation, actions=None):
        if actions is None:
            actions = jnp.zeros((observation.shape[0], 1), jnp.int32)
        return transformed.init(key, observation, actions)

    def q_apply(params, observation, key=None):
        del key  # no noisy layers
        return forward(params, observation)

    q_network = QNetwork(init=lambda key, observation: init(key, observation), apply=q_apply)
    return BBFNetwork(init=init, q_network=q_network, encode=encode, q_logits=q_logits, project=project,
                      rollout=rollout, predict=predict)
