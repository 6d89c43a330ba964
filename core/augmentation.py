"""Image augmentations of DrQ and SPR for batches of pixel observations.

Layout: images are ``[B, H, W, C]`` (channels last, as :func:`core.networks.preprocess_observation`
returns them) unless ``channels_first=True``, which takes ``[B, C, H, W]`` (envpool Atari's
stacked frames). Every image of the batch gets its own random draw from the one ``key``.

Dtypes are preserved: uint8 pixels in, uint8 pixels out (``random_shift`` only moves pixels;
``random_intensity`` computes in float32, rounds and saturates to [0, 255]); floating images
keep their dtype. Both functions are pure, jittable (``pad`` and ``scale`` are static
Python numbers) and vmappable over extra leading axes of ``key`` and ``images``.

* :func:`random_shift` — Kostrikov et al. 2020, DrQ (arXiv 2004.13649); Yarats et al. 2021,
  DrQ-v2 (arXiv 2107.09645); used by SPR and BBF with pad 4 on 84×84 frames.
* :func:`random_intensity` — Schwarzer et al. 2021, SPR (arXiv 2007.05929).
"""
from __future__ import annotations

import operator

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
PRNGKey = chex.PRNGKey


def _spatial_axes(channels_first: bool) -> tuple[int, int]:
    return (2, 3) if channels_first else (1, 2)


def random_shift(key: PRNGKey, images: Array, *, pad: int = 4, channels_first: bool = False) -> Array:
    """Random shift by ±``pad`` pixels: edge-pad each image, then crop back to H × W at random.

    Implements the image augmentation of DrQ (Kostrikov et al. 2020, arXiv 2004.13649),
    with the replicate (edge) padding of DrQ and DrQ-v2 (arXiv 2107.09645):

        P_b = edge_pad(images[b], pad)                        # [H + 2·pad, W + 2·pad, C]
        out[b, i, j] = P_b[i + dy_b, j + dx_b],   dy_b, dx_b ~ U{0, …, 2·pad} i.i.d. per image,

    i.e. out[b, i, j] = images[b, clip(i + dy_b − pad, 0, H−1), clip(j + dx_b − pad, 0, W−1)].

    Args:
      key: PRNG key; one independent offset pair (dy, dx) per image is drawn from it.
      images: ``[B, H, W, C]`` (or ``[B, C, H, W]`` with ``channels_first``), any dtype.
      pad: static non-negative int; maximum shift in pixels (4 for 84×84 Atari frames).
      channels_first: static; whether ``images`` is ``[B, C, H, W]``.

    Returns:
      Shifted images with the shape and dtype of ``images``.

    Notes:
      DrQ-v2 implements the shift with bilinear ``grid_sample`` at integer offsets; this
      integer crop is the same map, exact for uint8 pixels. ``pad=0`` returns ``images``.
    """
    chex.assert_rank(images, 4)
    try:
        pad = operator.index(pad)
    except TypeError:
        raise ValueError(f"random_shift: pad must be a non-negative int, got {pad!r}") from None
    if pad < 0:
        raise ValueError(f"random_shift: pad must be a non-negative int, got {pad!r}")
    if pad == 0:
        return images
    h_axis, w_axis = _spatial_axes(channels_first)
    height, width = images.shape[h_axis], images.shape[w_axis]
    pad_width = [(0, 0)] * 4
    pad_width[h_axis] = pad_width[w_axis] = (pad, pad)
    padded = jnp.pad(images, pad_width, mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1)  # [B, 2] (dy, dx)

    def crop(image: Array, offset: Array) -> Array:  # one image: batch axis removed
        starts = [jnp.zeros((), offset.dtype)] * 3
        sizes = list(image.shape)
        starts[h_axis - 1], starts[w_axis - 1] = offset[0], offset[1]
        sizes[h_axis - 1], sizes[w_axis - 1] = height, width
        return jax.lax.dynamic_slice(image, starts, sizes)

    return jax.vmap(crop)(padded, offsets)


def random_intensity(
    key: PRNGKey, images: Array, *, scale: float = 0.05, channels_first: bool = False
) -> Array:
    """Multiplies every image by its own random factor 1 + scale · clip(z, −2, 2), z ~ N(0, 1).

    Implements SPR's intensity augmentation (Schwarzer et al. 2021, arXiv 2007.05929):

        out[b] = images[b] · (1 + scale · clip(z_b, −2, 2)),   z_b ~ N(0, 1) i.i.d. per image,

    so every factor lies in [1 − 2·scale, 1 + 2·scale] and is shared by all pixels and
    channels of one image.

    Args:
      key: PRNG key; one z per image.
      images: ``[B, H, W, C]`` (or ``[B, C, H, W]``; the layout does not matter here, the
        flag exists for a uniform signature), uint8 or floating.
      scale: static non-negative float (0.05 in SPR and BBF).
      channels_first: accepted for symmetry with :func:`random_shift`; unused.

    Returns:
      Images with the shape and dtype of ``images``.

    Notes:
      For integer images the product is computed in float32, rounded to the nearest integer
      (half to even) and saturated to the dtype's range (brightened 250 → 255), which SPR,
      working on [0, 1] floats, does not need. Floating images are not clipped.
    """
    del channels_first
    chex.assert_rank(images, 4)
    if scale < 0:
        raise ValueError(f"random_intensity: scale must be non-negative, got {scale!r}")
    z = jax.random.normal(key, (images.shape[0], 1, 1, 1), jnp.float32)  # [B, 1, 1, 1]
    factor = 1.0 + scale * jnp.clip(z, -2.0, 2.0)
    out = images.astype(jnp.float32) * factor
    if jnp.issubdtype(images.dtype, jnp.integer):
        info = jnp.iinfo(images.dtype)
        out = jnp.clip(jnp.round(out), info.min, info.max)
    return out.astype(images.dtype)
