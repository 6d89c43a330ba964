"""Value networks whose penultimate dense layer is a mixture of experts (haiku modules).

Obando-Ceron, Sokar, Willi et al. 2024, "Mixtures of Experts Unlock Parameter Scaling for
Deep RL", ICML, arXiv 2402.08609, §3 and Figure 2: the convolutional encoder's output
``[h, w, C]`` is cut into tokens, a Soft MoE (or Top-1 MoE) layer whose experts are MLPs
``D → expert_hidden → D`` maps the tokens ``[T, D]`` to tokens ``[T, D]``, and those are
flattened into the final (Q-value) layer. The paper's baseline instead flattens the
encoder output into a dense layer of ``expert_hidden`` units, widened ×E to match the
experts' parameter growth (``moe="none"``), which is :func:`core.networks.make_q_network`
with ``head_hidden = expert_hidden · num_experts``.

The layer math is :mod:`algorithms.soft_moe.moe`; this module only creates parameters.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp

from core.networks import (ImpalaCNN, MinAtarCNN, NatureCNN, NetworkConfig, QNetwork, make_head, make_q_network,
                           noisy_linear_factory, preprocess_observation, record_layer_outputs)

from algorithms.soft_moe import moe

MOE_TYPES = ("softmoe", "top1", "none")
TOKENIZATIONS = ("per_conv", "per_feature", "per_sample", "per_patch")


@dataclasses.dataclass(frozen=True)
class MoENetworkConfig:
    """The mixture-of-experts part of a value network (the rest is :class:`NetworkConfig`)."""

    moe: str = "softmoe"
    """"softmoe", "top1" (token-choice Top-1 with capacity) or "none" (the widened dense baseline)."""
    num_experts: int = 4
    """E experts (for "none": the width multiplier of the dense layer)."""
    expert_hidden: int = 512
    """Hidden units of each expert (and of the dense layer it replaces: 512 Nature DQN, 128 MinAtar)."""
    tokenization: str = "per_conv"
    """How the encoder output [h, w, C] becomes tokens: per_conv [h·w, C], per_feature [C, h·w],
    per_sample [1, h·w·C], per_patch (a strided conv embedding of patch_size patches)."""
    patch_size: int = 2
    """Patch side for per_patch tokens."""
    patch_embedding: int = 64
    """Token dimension of per_patch tokens."""
    capacity_factor: float = 1.0
    """Slots per expert ⌈T · capacity_factor / E⌉ (Soft MoE) or the Top-1 capacity."""
    normalize: bool = False
    """L2-normalise tokens and Φ with a learned scale (Soft MoE)."""
    router_noise: float = 0.0
    """Std of Gaussian noise on the Top-1 router logits during training (0 = none)."""
    nature_padding: str = "SAME"
    """Padding of the Nature CNN encoder: SAME (Dopamine/Flax, 11×11×64 tokens of 84×84) or VALID (7×7×64)."""


class SoftMoE(hk.Module):
    """Soft MoE over a batch of token sets ``[B, T, D]`` → :class:`moe.MoEOutput` with a leading B axis."""

    def __init__(self, cfg: MoENetworkConfig, name: Optional[str] = None):
        super().__init__(name=name)
        self._cfg = cfg

    def __call__(self, tokens: jax.Array) -> moe.MoEOutput:
        cfg = self._cfg
        _, num_tokens, dim = tokens.shape
        slots = moe.num_slots(num_tokens, cfg.num_experts, cfg.capacity_factor)
        phi = hk.get_parameter("phi", (dim, cfg.num_experts, slots), tokens.dtype,
                               init=hk.initializers.TruncatedNormal(stddev=dim ** -0.5))
        scale = hk.get_parameter("scale", (), tokens.dtype, init=jnp.ones) if cfg.normalize else None
        experts = _expert_params(cfg, dim, tokens.dtype)
        return jax.vmap(lambda x: moe.soft_moe(x, phi, experts, normalize=cfg.normalize, scale=scale))(tokens)


class Top1MoE(hk.Module):
    """Token-choice Top-1 MoE over ``[B, T, D]``; router noise only when a ``noise_key`` is given."""

    def __init__(self, cfg: MoENetworkConfig, name: Optional[str] = None):
        super().__init__(name=name)
        self._cfg = cfg

    def __call__(self, tokens: jax.Array, noise_key: Optional[jax.Array] = None) -> moe.MoEOutput:
        cfg = self._cfg
        batch, _, dim = tokens.shape
        router = hk.get_parameter("router", (dim, cfg.num_experts), tokens.dtype,
                                  init=hk.initializers.TruncatedNormal(stddev=dim ** -0.5))
        experts = _expert_params(cfg, dim, tokens.dtype)
        if noise_key is None or not cfg.router_noise:
            return jax.vmap(lambda x: moe.top1_moe(x, router, experts, capacity_factor=cfg.capacity_factor))(tokens)
        keys = jax.random.split(noise_key, batch)
        return jax.vmap(lambda x, k: moe.top1_moe(x, router, experts, capacity_factor=cfg.capacity_factor,
                                                  noise_key=k, noise_std=cfg.router_noise))(tokens, keys)


def _expert_params(cfg: MoENetworkConfig, dim: int, dtype) -> moe.ExpertParams:
    """E expert MLPs D → expert_hidden → D, each initialised as its own layer (LeCun normal, zero bias)."""
    init = moe.expert_initializer()
    weight = lambda shape, dtype: init(hk.next_rng_key(), shape, dtype)  # noqa: E731
    e, h = cfg.num_experts, cfg.expert_hidden
    return moe.ExpertParams(w1=hk.get_parameter("w1", (e, dim, h), dtype, init=weight),
                            b1=hk.get_parameter("b1", (e, h), dtype, init=jnp.zeros),
                            w2=hk.get_parameter("w2", (e, h, dim), dtype, init=weight),
                            b2=hk.get_parameter("b2", (e, dim), dtype, init=jnp.zeros))


def tokenize(features: jax.Array, cfg: MoENetworkConfig) -> jax.Array:
    """Encoder output ``[B, h, w, C]`` → tokens ``[B, T, D]`` (the paper's §4.1 tokenisations)."""
    if cfg.tokenization == "per_conv":
        return jax.vmap(moe.per_conv_tokens)(features)
    if cfg.tokenization == "per_feature":
        return jax.vmap(moe.per_feature_tokens)(features)
    if cfg.tokenization == "per_sample":
        return jax.vmap(moe.per_sample_tokens)(features)
    if cfg.tokenization == "per_patch":
        embedded = hk.Conv2D(cfg.patch_embedding, cfg.patch_size, stride=cfg.patch_size, padding="VALID",
                             name="patch_embedding")(features)
        return embedded.reshape(embedded.shape[0], -1, embedded.shape[-1])
    raise ValueError(f"unknown tokenization {cfg.tokenization!r}; choose one of {TOKENIZATIONS}")


def encoder(cfg: NetworkConfig, moe_cfg: MoENetworkConfig) -> hk.Module:
    """The conv torso returning feature maps ``[B, h, w, C]`` (not flattened)."""
    if cfg.torso == "nature":
        return NatureCNN(padding=moe_cfg.nature_padding, flatten=False)
    if cfg.torso == "minatar":
        return MinAtarCNN(flatten=False)
    if cfg.torso == "impala":
        return ImpalaCNN(width_scale=cfg.impala_width, flatten=False)
    raise ValueError(f"a mixture of experts needs a conv torso (nature, minatar, impala), not {cfg.torso!r}")


class MoEQNetwork(NamedTuple):
    """:class:`core.networks.QNetwork`'s functions plus the router statistics of a batch."""

    q_network: QNetwork
    moe_outputs: Optional[Callable]  # (params, observation [B, *O]) -> moe.MoEOutput with a leading B axis


def make_moe_q_network(cfg: NetworkConfig, moe_cfg: MoENetworkConfig, num_actions: int) -> MoEQNetwork:
    """Encoder → tokens → Soft/Top-1 MoE → flatten → the configured head (``head_hidden`` 0).

    ``moe="none"`` is the baseline: :func:`core.networks.make_q_network` with the dense
    penultimate layer widened to ``expert_hidden · num_experts`` units.
    """
    if moe_cfg.moe == "none":
        wide = dataclasses.replace(cfg, head_hidden=moe_cfg.expert_hidden * moe_cfg.num_experts)
        return MoEQNetwork(q_network=make_q_network(wide, num_actions), moe_outputs=None)
    head_cfg = dataclasses.replace(cfg, head_hidden=0)
    layer = SoftMoE if moe_cfg.moe == "softmoe" else Top1MoE

    def forward(observation: jax.Array, noisy: bool, with_stats: bool):
        x = preprocess_observation(observation, channels_first=cfg.channels_first)
        tokens = tokenize(encoder(cfg, moe_cfg)(x), moe_cfg)
        mixture = layer(moe_cfg, name="moe")
        if moe_cfg.moe == "top1":
            out = mixture(tokens, noise_key=hk.maybe_next_rng_key() if noisy else None)
        else:
            out = mixture(tokens)
        linear = noisy_linear_factory(sigma0=cfg.noisy_sigma0, noisy=noisy) if cfg.noisy else hk.Linear
        q = make_head(head_cfg, num_actions, linear=linear)(out.output.reshape(out.output.shape[0], -1))
        return (q, out) if with_stats else q

    transformed = hk.transform(forward)
    recorded = hk.transform(record_layer_outputs(forward))
    draws_noise = cfg.noisy or (moe_cfg.moe == "top1" and moe_cfg.router_noise > 0)

    def init(key, observation):
        return transformed.init(key, observation, False, False)

    def apply(params, observation, key=None):
        return transformed.apply(params, key, observation, bool(draws_noise and key is not None), False)

    def layer_outputs(params, observation):
        return recorded.apply(params, None, observation, False, False)

    def moe_outputs(params, observation):
        return transformed.apply(params, None, observation, False, True)[1]

    return MoEQNetwork(q_network=QNetwork(init=init, apply=apply, layer_outputs=layer_outputs),
                       moe_outputs=moe_outputs)
