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
import numpy as np

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
    """Nature DQN convolutional torso: 32×8×8/4 → 64×4×4/2 → 64×3×3/1, ReLU, flatten.

    ``padding="VALID"`` (Mnih et al. 2015) leaves 7×7×64 of an 84×84 frame; ``"SAME"`` (the
    default of Flax convolutions, hence of Dopamine's JAX networks) leaves 11×11×64.
    ``flatten=False`` returns the ``[B, h, w, 64]`` feature maps (to cut into tokens).
    """

    def __init__(self, *, padding: str = "VALID", flatten: bool = True, name: Optional[str] = None):
        super().__init__(name=name)
        self._padding, self._flatten = padding, flatten

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = jax.nn.relu(hk.Conv2D(channels, kernel, stride=stride, padding=self._padding)(x))
        return hk.Flatten()(x) if self._flatten else x


class ShiftedMatmulConv2D(hk.Conv2D):
    """:class:`haiku.Conv2D` with stride 1 and VALID padding, computed as kernel-offset matmuls.

        y[b, p, q] = Σ_{i, j} x[b, p + i, q + j] · W[i, j] + bias

    Same parameters (``w`` ``[kh, kw, C, O]``, ``b`` ``[O]``) and initialiser as
    :class:`haiku.Conv2D`, equal outputs up to float rounding. XLA:CPU runs this form about
    3.7× faster than its convolution when the update sits inside ``lax.scan``/``fori_loop``
    (the jitted MinAtar loops); see ``benchmarks/bench_conv_in_loop.py``.
    """

    def __call__(self, inputs: Array) -> Array:
        chex.assert_rank(inputs, 4)
        if tuple(self.stride) != (1, 1) or self.padding != "VALID":
            raise ValueError("ShiftedMatmulConv2D supports stride 1 and VALID padding only")
        kh, kw = self.kernel_shape
        channels = inputs.shape[-1]
        w_init = self.w_init or hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(kh * kw * channels))
        w = hk.get_parameter("w", (kh, kw, channels, self.output_channels), inputs.dtype, init=w_init)
        height, width = inputs.shape[1] - kh + 1, inputs.shape[2] - kw + 1
        out = sum(inputs[:, i:i + height, j:j + width, :] @ w[i, j] for i in range(kh) for j in range(kw))
        if self.with_bias:
            out = out + hk.get_parameter("b", (self.output_channels,), inputs.dtype, init=self.b_init)
        return out


class MinAtarCNN(hk.Module):
    """MinAtar torso of Young & Tian (2019): one 3×3 stride-1 conv with 16 channels, ReLU.

    The convolution is :class:`ShiftedMatmulConv2D` (parameters named ``conv2_d`` like a
    :class:`haiku.Conv2D`): MinAtar trains inside ``lax.scan``, where it is ~3.7× faster.
    ``flatten=False`` returns the ``[B, 8, 8, 16]`` feature maps of a 10×10 board.
    """

    def __init__(self, *, flatten: bool = True, name: Optional[str] = None):
        super().__init__(name=name)
        self._flatten = flatten

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        x = jax.nn.relu(ShiftedMatmulConv2D(16, 3, stride=1, padding="VALID", name="conv2_d")(x))
        return hk.Flatten()(x) if self._flatten else x


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
        flatten: bool = True,
        name: Optional[str] = None,
    ):
        super().__init__(name=name)
        self._channels = tuple(int(c * width_scale) for c in stage_channels)
        self._blocks = blocks_per_stage
        self._flatten = flatten

    def __call__(self, x: Array) -> Array:
        chex.assert_rank(x, 4)
        for stage, channels in enumerate(self._channels):
            x = hk.Conv2D(channels, 3, padding="SAME", name=f"stage{stage}_conv")(x)
            x = hk.max_pool(x, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME")
            for block in range(self._blocks):
                x = ImpalaResidualBlock(channels, name=f"stage{stage}_block{block}")(x)
        x = jax.nn.relu(x)
        return hk.Flatten()(x) if self._flatten else x


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


def record_layer_outputs(forward: Callable) -> Callable:
    """Wraps a haiku forward function to also return what each of its layers computed.

    The wrapped function returns ``(output, outputs)`` with ``outputs`` a dict from the
    module path of every :class:`haiku.Linear` and :class:`haiku.Conv2D` called (the key of
    its parameters) to its output before the nonlinearity, in call order (a dict built
    while tracing keeps it; a pytree returned through ``jit`` is sorted by key instead).
    Dormant-neuron statistics (ReDo) read post-activations off these.
    """

    def wrapped(*args, **kwargs):
        outputs = {}

        def interceptor(next_f, f_args, f_kwargs, context):
            out = next_f(*f_args, **f_kwargs)
            if context.method_name == "__call__" and isinstance(context.module, (hk.Linear, hk.Conv2D)):
                outputs[context.module.module_name] = out
            return out

        with hk.intercept_methods(interceptor):
            out = forward(*args, **kwargs)
        return out, outputs

    return wrapped


class QNetwork(NamedTuple):
    """Pure functions of one value network.

    ``init(key, observation) -> params``; ``apply(params, observation, key=None)`` returns
    ``[B, A]`` values or ``[B, A, N]`` logits. With ``NetworkConfig.noisy`` a ``key`` draws
    the layers' noise and ``key=None`` evaluates the mean weights μ (greedy evaluation);
    other networks ignore ``key``. ``layer_outputs(params, observation)`` returns
    ``(apply's output, {module path: pre-activation output})`` of the noise-free network
    (:func:`record_layer_outputs`); None where a network does not provide it.
    """

    init: Callable
    apply: Callable
    layer_outputs: Optional[Callable] = None


def layer_call_order(network: QNetwork, params, observation: Array) -> tuple[str, ...]:
    """Module paths of the network's Linear/Conv2D layers in the order they are called (traced, not run)."""
    names: list[str] = []

    def probe(p, x):
        out, outputs = network.layer_outputs(p, x)
        names.extend(outputs)  # trace-time Python: insertion order is call order
        return out

    jax.eval_shape(probe, params, observation)
    return tuple(names)


def make_q_network(cfg: NetworkConfig, num_actions: int) -> QNetwork:
    """Transforms torso + head into pure functions (``hk.transform``)."""

    def forward(observation: Array, noisy: bool) -> Array:
        x = preprocess_observation(observation, channels_first=cfg.channels_first)
        linear = noisy_linear_factory(sigma0=cfg.noisy_sigma0, noisy=noisy) if cfg.noisy else hk.Linear
        return make_head(cfg, num_actions, linear=linear)(make_torso(cfg)(x))

    transformed = hk.transform(forward)
    recorded = hk.transform(record_layer_outputs(forward))

    def init(key: Array, observation: Array):
        return transformed.init(key, observation, False)

    def apply(params, observation: Array, key: Optional[Array] = None) -> Array:
        return transformed.apply(params, key, observation, bool(cfg.noisy and key is not None))

    def layer_outputs(params, observation: Array):
        return recorded.apply(params, None, observation, False)

    return QNetwork(init=init, apply=apply, layer_outputs=layer_outputs)
