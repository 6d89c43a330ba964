"""Haiku modules of the PPO agent, built so that each part can be copied into another agent.

The agent of the paper's transfer case study (Chevalier-Boisvert et al. 2023, arXiv
2306.13831, Sec. 5; their Stable-Baselines3 ``MultiInputPolicy``): an image encoder and a
mission encoder whose features are concatenated (64 + 32 = 96), then an actor MLP and a
critic MLP (64-64 tanh each) with a linear output. Every part is its own top-level module,
so its parameters live under one prefix of the haiku params dict:

=================  ===============================================================
prefix             module
=================  ===============================================================
``image_encoder``  :class:`GridImageEncoder` (Minigrid 7×7×3 indices) or
                   :class:`PixelImageEncoder` (Miniworld RGB), both → [B, 64]
``mission_encoder`` :class:`MissionEncoder`: bag of mission tokens → [B, 32]
``actor``          :class:`ActorHead`: 96 → 64 → 64 → A logits
``critic``         :class:`CriticHead`: 96 → 64 → 64 → 1
=================  ===============================================================

:func:`copy_parts` moves whole parts between two params dicts (the transfer of the case
study); the image encoders differ between the twins and are never copied there.
"""
from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from core.networks import ShiftedMatmulConv2D

PARTS = ("image_encoder", "mission_encoder", "actor", "critic")
"""The top-level modules of :func:`actor_critic`; prefixes of its params dict."""

NUM_OBJECTS, NUM_COLORS, NUM_STATES = 11, 6, 3  # Minigrid's OBJECT_TO_IDX, COLOR_TO_IDX, STATE_TO_IDX sizes


class PolicyOutput(NamedTuple):
    logits: jax.Array  # [B, A] float32 unnormalised action log-probabilities
    value: jax.Array  # [B] float32 state value


class GridImageEncoder(hk.Module):
    """Minigrid's egocentric view ``[B, 7, 7, 3]`` of (object, colour, state) indices → ``[B, D]``.

    Each cell's three indices are one-hot encoded (11 + 6 + 3 = 20 channels), then three 2×2
    VALID convolutions with ReLU (16, 32, 64 channels, as the paper's reference extractor) with
    a 2×2 max-pool after the first (as the Minigrid authors' ``rl-starter-files`` model: 64
    features reach the linear layer instead of 1024, 3.6× fewer multiplications), a flatten
    and a ReLU linear layer to ``features`` (64). The convolutions are computed as
    shifted matmuls (``core.networks.ShiftedMatmulConv2D``: same parameters and outputs as
    ``hk.Conv2D``); XLA:CPU's convolution gradients inside ``lax.scan`` cost ~100× more here.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), features: int = 64, name: str = "image_encoder"):
        super().__init__(name=name)
        self.channels, self.features = tuple(channels), features

    def __call__(self, image: jax.Array) -> jax.Array:
        image = image.astype(jnp.int32)
        x = jnp.concatenate([jax.nn.one_hot(image[..., 0], NUM_OBJECTS), jax.nn.one_hot(image[..., 1], NUM_COLORS),
                             jax.nn.one_hot(image[..., 2], NUM_STATES)], axis=-1)
        for i, c in enumerate(self.channels):
            x = jax.nn.relu(ShiftedMatmulConv2D(c, 2, padding="VALID")(x))
            if i == 0:  # 6×6 → 3×3
                x = hk.max_pool(x, window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID")
        return jax.nn.relu(hk.Linear(self.features)(hk.Flatten()(x)))


class PixelImageEncoder(hk.Module):
    """An RGB frame ``[B, H, W, 3]`` uint8 (Miniworld's 60×80 view) → ``[B, D]``.

    Pixels scaled to [0, 1] and averaged over 4×4 blocks (60×80 → 15×20), two 3×3 stride-2
    convolutions (16, 32 channels, ReLU), a flatten and a ReLU linear layer to ``features``
    (64). The paper's Miniworld agent used the Nature-DQN torso on the full frame (8.5M
    multiplications per frame); this one needs ~0.2M, which is what lets the transfer
    experiment fit a CPU budget (README, deviations).
    """

    def __init__(self, features: int = 64, pool: int = 4, name: str = "image_encoder"):
        super().__init__(name=name)
        self.features, self.pool = features, pool

    def __call__(self, image: jax.Array) -> jax.Array:
        x = image.astype(jnp.float32) / 255.0
        x = hk.avg_pool(x, window_shape=(1, self.pool, self.pool, 1), strides=(1, self.pool, self.pool, 1),
                        padding="VALID")
        for c in (16, 32):
            x = jax.nn.relu(hk.Conv2D(c, 3, stride=2, padding="VALID")(x))
        return jax.nn.relu(hk.Linear(self.features)(hk.Flatten()(x)))


class MissionEncoder(hk.Module):
    """Mission token ids ``[B, L]`` (0 pads) → ``[B, 32]``: a linear layer over the bag of tokens.

    The paper's mission extractor is one linear layer over a one-hot colour and object; over
    the token counts of "go to the {colour} {object}" it is the same map (the fixed words
    only add to the bias), and it reads any mission of the vocabulary.
    """

    def __init__(self, vocab_size: int, features: int = 32, name: str = "mission_encoder"):
        super().__init__(name=name)
        self.vocab_size, self.features = vocab_size, features

    def __call__(self, mission: jax.Array) -> jax.Array:
        counts = jax.nn.one_hot(mission, self.vocab_size)[..., 1:].sum(axis=-2)  # [B, V − 1], pad dropped
        return hk.Linear(self.features)(counts)


class _MLPHead(hk.Module):
    def __init__(self, outputs: int, hidden: Sequence[int], name: str, final_scale: float):
        super().__init__(name=name)
        self.outputs, self.hidden, self.final_scale = outputs, tuple(hidden), final_scale

    def __call__(self, x: jax.Array) -> jax.Array:
        for h in self.hidden:
            x = jnp.tanh(hk.Linear(h, w_init=hk.initializers.Orthogonal(np.sqrt(2)))(x))
        return hk.Linear(self.outputs, w_init=hk.initializers.Orthogonal(self.final_scale))(x)


class ActorHead(_MLPHead):
    """Features ``[B, 96]`` → action logits ``[B, A]`` (64-64 tanh MLP; last layer orthogonal × 0.01)."""

    def __init__(self, num_actions: int, hidden: Sequence[int] = (64, 64), name: str = "actor"):
        super().__init__(num_actions, hidden, name, 0.01)


class CriticHead(_MLPHead):
    """Features ``[B, 96]`` → value ``[B]`` (64-64 tanh MLP; last layer orthogonal × 1)."""

    def __init__(self, hidden: Sequence[int] = (64, 64), name: str = "critic"):
        super().__init__(1, hidden, name, 1.0)

    def __call__(self, x: jax.Array) -> jax.Array:
        return super().__call__(x)[..., 0]


def actor_critic(image: jax.Array, mission: jax.Array, *, encoder: str, num_actions: int, vocab_size: int,
                 hidden: Sequence[int] = (64, 64), channels: Sequence[int] = (16, 32, 64)) -> PolicyOutput:
    """The agent's forward pass (inside ``hk.transform``).

    Args:
      image: ``[B, 7, 7, 3]`` Minigrid indices (``encoder="grid"``) or ``[B, H, W, 3]`` uint8
        pixels (``encoder="pixels"``).
      mission: ``[B, L]`` int32 mission token ids (Minigrid's vocabulary).
      encoder: "grid" or "pixels" (static).
      num_actions: A.
      vocab_size: V of the mission vocabulary.
    """
    if encoder == "grid":
        image_features = GridImageEncoder(channels)(image)
    elif encoder == "pixels":
        image_features = PixelImageEncoder()(image)
    else:
        raise ValueError(f"unknown encoder {encoder!r}; choose 'grid' or 'pixels'")
    features = jnp.concatenate([image_features, MissionEncoder(vocab_size)(mission)], axis=-1)
    return PolicyOutput(logits=ActorHead(num_actions, hidden)(features), value=CriticHead(hidden)(features))


def part_of(module_name: str) -> str:
    """The part (``PARTS``) a haiku module path such as ``"actor/~/linear_1"`` belongs to."""
    return module_name.split("/")[0]


def copy_parts(target: Mapping, source: Mapping, parts: Iterable[str]) -> dict:
    """``target`` params with every module of the named ``parts`` replaced by ``source``'s.

    Raises ValueError naming the part when it is unknown or when the two agents' shapes of it
    differ (e.g. an actor with another number of actions).
    """
    parts = tuple(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown network parts {unknown}; choose from {list(PARTS)}")
    out = {module: dict(params) for module, params in target.items()}
    for module, params in target.items():
        if part_of(module) not in parts:
            continue
        if module not in source:
            raise ValueError(f"the source network has no module {module!r} of part {part_of(module)!r}")
        for name, value in params.items():
            new = source[module][name]
            if np.shape(new) != np.shape(value):
                raise ValueError(f"part {part_of(module)!r}: {module}/{name} has shape {np.shape(new)} in the source, "
                                 f"{np.shape(value)} in the target")
            out[module][name] = jnp.asarray(new)
    return out
