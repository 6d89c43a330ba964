"""Haiku torsos and value heads shared by the value-based agents.

Torsos map a batch of observations ``[B, *O]`` to features ``[B, D]``; heads map features
to action values ``[B, A]`` or distributional logits ``[B, A, N]``. Build them inside
``hk.transform`` (see :func:`make_q_network`), never at module level.

* :class:`NatureCNN` — Mnih et al. 2015 ("Human-level control through deep RL").
* :class:`ImpalaCNN` — Espeholt et al. 2018 (arXiv 1802.01561), with the width multiplier
  of SPR/BBF (Schwarzer et al. 2021, arXiv 2007.05929; 2023, arXiv 2305.19452).
* :class:`MinAtarCNN` — Young & Tian 2019 (arXiv 1903.03176): one 3×3 conv, 16 channels.
* :class:`MLP` — classic control.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import chex
import haiku as hk
import jax
import jax.numpy as jnp

from core.noisy import NoisyLinear

Array = chex.Array
LinearFactory = Callable[..., Callable[[Array], Array]]
"""``linear(output_size, name=None)`` returns a layer; :class:`haiku.Linear` or a noisy one."""


def preprocess_observation(observation: Array, *, channels_first: bool) -> Array:
    """Casts observations to float32, scales uint8 pixels to [0, 1], moves channels last.

    Args:
      observation: ``[B, *O]``; uint8 pixels (envpool Atari: ``[B, C, H, W]``) or floats.
      channels_first: whether image observations come as ``[B, C, H, W]`` (envpool).

    Returns:
      float32 ``[B, H, W, C]`` for images, ``[B, D]`` for vectors.
    """
    x = observation
    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 255.0
    else:
        x = x.astype(jnp.float32)
    if channels_first and x.ndim == 4:
        x = jnp.transpose(x, (0, 2, 3, 1))
    return x


class NatureCNN(hk.Module):
    """Nature DQN convolutional torso: 32×8×8/4 → 64×4×4/2 → 64×3×3/1, ReLU, flatten."""

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = jax.nn.relu(hk.Conv2D(channels, kernel, stride=stride, padding="VALID")(x))
        return hk.Flatten()(x)


class MinAtarCNN(hk.Module):
    """MinAtar torso of Young & Tian (2019): one 3×3 stride-1 conv with 16 channels, ReLU."""

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        x = jax.nn.relu(hk.Conv2D(16, 3, stride=1, padding="VALID")(x))
        return hk.Flatten()(x)


class ImpalaResidualBlock(hk.Module):
    """relu → conv3×3 → relu → conv3×3, plus the identity."""

    def __init__(self, channels: int, name: Optional[str] = None):
        super().__init__(name=name)
        self._channels = channels

    def __call__(self, x: Array) -> Array:
        y = hk.Conv2D(self._channels, 3, padding="SAME")(jax.nn.relu(x))
        y = hk.Conv2D(self._channels, 3, padding="SAME")(jax.nn.relu(y))
        return x + y


class ImpalaCNN(hk.Module):
    """Impala torso: per stage conv3×3 → maxpool 3×3/2 → ``blocks`` residual blocks.

    ``width_scale`` multiplies the stage channels (16, 32, 32): 4 gives BBF's (64, 128, 128)
    with 2 residual blocks per stage, i.e. 15 conv layers.
    """

    def __init__(
        self,
        *,
        width_scale: int = 1,
        stage_channels: Sequence[int] = (16, 32, 32),
        blocks_per_stage: int = 2,
        name: Optional[str] = None,
    ):
        super().__init__(name=name)
        self._channels = tuple(int(c * width_scale) for c in stage_channels)
        self._blocks = blocks_per_stage

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        for stage, channels in enumerate(self._channels):
            x = hk.Conv2D(channels, 3, padding="SAME", name=f"stage{stage}_conv")(x)
            x = hk.max_pool(x, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")
            for block in range(self._blocks):
                x = ImpalaResidualBlock(channels, name=f"stage{stage}_block{block}")(x)
        return hk.Flatten()(jax.nn.relu(x))


class MLP(hk.Module):
    """Fully connected torso with ReLU after every layer."""

    def __init__(self, hidden_sizes: Sequence[int], name: Optional[str] = None):
        super().__init__(name=name)
        self._sizes = tuple(hidden_sizes)

    def __call__(self, x: Array) -> Array:
        x = x.reshape(x.shape[0], -1)
        return hk.nets.MLP(self._sizes, activate_final=True)(x)


class QHead(hk.Module):
    """Linear action values ``[B, A]`` (optionally after a hidden ReLU layer)."""

    def __init__(self, num_actions: int, *, hidden: int = 0, linear: LinearFactory = hk.Linear,
                 name: Optional[str] = None):
        super().__init__(name=name)
        self._num_actions, self._hidden, self._linear = num_actions, hidden, linear

    def __call__(self, features: Array) -> Array:
        if self._hidden:
            features = jax.nn.relu(self._linear(self._hidden)(features))
        return self._linear(self._num_actions)(features)


class DuelingHead(hk.Module):
    """Dueling head (Wang et al. 2016): Q = V + A − mean_a A, per atom when ``num_atoms`` > 0.

    Returns ``[B, A]`` values, or ``[B, A, N]`` logits when ``num_atoms`` = N > 0.
    """

    def __init__(
        self, num_actions: int, *, hidden: int = 0, num_atoms: int = 0, linear: LinearFactory = hk.Linear,
        name: Optional[str] = None
    ):
        super().__init__(name=name)
        self._num_actions, self._hidden, self._num_atoms = num_actions, hidden, num_atoms
        self._linear = linear

    def __call__(self, features: Array) -> Array:
        atoms = max(self._num_atoms, 1)
        value, advantage = features, features
        if self._hidden:
            value = jax.nn.relu(self._linear(self._hidden, name="value_hidden")(features))
            advantage = jax.nn.relu(self._linear(self._hidden, name="advantage_hidden")(features))
        value = self._linear(atoms, name="value")(value).reshape(-1, 1, atoms)
        advantage = self._linear(self._num_actions * atoms, name="advantage")(advantage)
        advantage = advantage.reshape(-1, self._num_actions, atoms)
        out = value + advantage - advantage.mean(axis=1, keepdims=True)
        return out if self._num_atoms else out[..., 0]


class C51Head(hk.Module):
    """Distributional head (Bellemare et al. 2017): logits ``[B, A, N]`` over fixed atoms."""

    def __init__(self, num_actions: int, *, num_atoms: int = 51, hidden: int = 0,
                 linear: LinearFactory = hk.Linear, name=None):
        super().__init__(name=name)
        self._num_actions, self._num_atoms, self._hidden = num_actions, num_atoms, hidden
        self._linear = linear

    def __call__(self, features: Array) -> Array:
        if self._hidden:
            features = jax.nn.relu(self._linear(self._hidden)(features))
        logits = self._linear(self._num_actions * self._num_atoms)(features)
        return logits.reshape(-1, self._num_actions, self._num_atoms)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Which torso and head to build; the shared vocabulary of every value-based agent."""

    torso: str = "mlp"
    """One of "mlp", "nature", "minatar", "impala"."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """MLP torso widths (torso="mlp" only)."""
    head_hidden: int = 0
    """Hidden ReLU layer between torso and head (512 for Nature DQN, 128 for MinAtar)."""
    dueling: bool = False
    """Dueling value/advantage decomposition."""
    num_atoms: int = 0
    """Atoms of a distributional (C51) head; 0 for a scalar Q head."""
    impala_width: int = 1
    """Width multiplier of the Impala torso (4 for BBF)."""
    channels_first: bool = True
    """Image observations arrive as [B, C, H, W] (envpool); MinAtar is channels-last."""
    noisy: bool = False
    """Noisy linear layers (Fortunato et al. 2018) for every layer of the head (Rainbow)."""
    noisy_sigma0: float = 0.5
    """σ0 of the noisy layers' initial noise scale σ0/√p."""


TORSOS = ("mlp", "nature", "minatar", "impala")


def make_torso(cfg: NetworkConfig) -> hk.Module:
    if cfg.torso == "mlp":
        return MLP(cfg.hidden_sizes)
    if cfg.torso == "nature":
        return NatureCNN()
    if cfg.torso == "minatar":
        return MinAtarCNN()
    if cfg.torso == "impala":
        return ImpalaCNN(width_scale=cfg.impala_width)
    raise ValueError(f"unknown torso {cfg.torso!r}; choose one of {TORSOS}")


def noisy_linear_factory(*, sigma0: float, noisy: bool) -> LinearFactory:
    """A :data:`LinearFactory` of :class:`core.noisy.NoisyLinear` layers; ``noisy=False`` uses μ only."""

    def linear(output_size: int, name: Optional[str] = None):
        layer = NoisyLinear(output_size, sigma0=sigma0, name=name)
        return lambda x: layer(x, noisy=noisy)

    return linear


def make_head(cfg: NetworkConfig, num_actions: int, *, linear: LinearFactory = hk.Linear) -> hk.Module:
    if cfg.dueling:
        return DuelingHead(num_actions, hidden=cfg.head_hidden, num_atoms=cfg.num_atoms, linear=linear)
    if cfg.num_atoms:
        return C51Head(num_actions, num_atoms=cfg.num_atoms, hidden=cfg.head_hidden, linear=linear)
    return QHead(num_actions, hidden=cfg.head_hidden, linear=linear)


class QNetwork(NamedTuple):
    """A pure ``(init, apply)`` pair.

    ``init(key, observation) -> params``; ``apply(params, observation, key=None)`` returns
    ``[B, A]`` values or ``[B, A, N]`` logits. With ``NetworkConfig.noisy`` a ``key`` draws
    the layers' noise and ``key=None`` evaluates the mean weights μ (greedy evaluation);
    other networks ignore ``key``.
    """

    init: Callable
    apply: Callable


def make_q_network(cfg: NetworkConfig, num_actions: int) -> QNetwork:
    """Transforms torso + head into pure functions (``hk.transform``)."""

    def forward(observation: Array, noisy: bool) -> Array:
        x = preprocess_observation(observation, channels_first=cfg.channels_first)
        linear = noisy_linear_factory(sigma0=cfg.noisy_sigma0, noisy=noisy) if cfg.noisy else hk.Linear
        return make_head(cfg, num_actions, linear=linear)(make_torso(cfg)(x))

    transformed = hk.transform(forward)

    def init(key: Array, observation: Array):
        return transformed.init(key, observation, False)

    def apply(params, observation: Array, key: Optional[Array] = None) -> Array:
        return transformed.apply(params, key, observation, bool(cfg.noisy and key is not None))

    return QNetwork(init=init, apply=apply)
