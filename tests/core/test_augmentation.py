"""Tests of core.augmentation: DrQ random shift and SPR random intensity."""
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from core import augmentation

H, W, C, PAD = 12, 10, 2, 3


def _random_images(seed, batch, dtype=np.uint8, shape=(H, W, C)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(batch, *shape)).astype(dtype)


def _coordinate_images(batch):
    """Images whose pixel (r, c) holds r·W + c in every channel (≤ 119: fits uint8)."""
    coords = (np.arange(H)[:, None] * W + np.arange(W)[None, :]).astype(np.uint8)
    return np.broadcast_to(coords[None, :, :, None], (batch, H, W, C)).copy()


def _offsets(shifted):
    """Recovers (dy, dx) ∈ [0, 2·PAD]² from shifted coordinate images (needs H, W > 2·PAD)."""
    value = np.asarray(shifted)[:, PAD, PAD, 0].astype(np.int64)  # = img[dy, dx]
    return np.stack([value // W, value % W], axis=-1)


def _crops(image, pad):
    """All (2·pad + 1)² H×W crops of the edge-padded [H, W, C] image, keyed by offset."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    return {(dy, dx): padded[dy:dy + h, dx:dx + w]
            for dy, dx in itertools.product(range(2 * pad + 1), repeat=2)}


B = 16  # batch size of most tests: one compiled shape serves them
_shift = jax.jit(augmentation.random_shift, static_argnames=("pad", "channels_first"))
_intensity = jax.jit(augmentation.random_intensity, static_argnames=("scale", "channels_first"))


class RandomShiftTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_every_output_is_exactly_a_crop_of_the_edge_padded_input(self):
        images = _random_images(1, B)
        shift = self.variant(lambda k, x: augmentation.random_shift(k, x, pad=PAD))
        out = shift(jax.random.PRNGKey(1), images)
        chex.assert_shape(out, images.shape)
        chex.assert_type(out, np.uint8)
        for image, shifted in zip(images, np.asarray(out)):
            matches = [o for o, crop in _crops(image, PAD).items() if np.array_equal(crop, shifted)]
            assert matches, "output is not a crop of the edge-padded image"
            assert all(0 <= d <= 2 * PAD for o in matches for d in o)

    def test_float_dtype_preserved(self):
        images = _random_images(0, B, np.float32) / 255.0
        out = _shift(jax.random.PRNGKey(0), images, pad=PAD)
        chex.assert_shape(out, images.shape)
        chex.assert_type(out, np.float32)
        assert set(np.unique(out)) <= set(np.unique(images))  # pixels move, values do not change

    def test_matches_closed_form_with_recovered_offsets(self):
        # out[b, i, j] = img[clip(i + dy − pad), clip(j + dx − pad)]
        images = _coordinate_images(B)
        out = np.asarray(_shift(jax.random.PRNGKey(2), images, pad=PAD))
        rows, cols = np.arange(H), np.arange(W)
        for shifted, (dy, dx) in zip(out, _offsets(out)):
            r = np.clip(rows + dy - PAD, 0, H - 1)
            c = np.clip(cols + dx - PAD, 0, W - 1)
            np.testing.assert_array_equal(shifted, images[0][r][:, c])

    def test_all_offsets_appear_and_images_are_independent_over_many_keys(self):
        num_keys = 512
        images = _coordinate_images(8)
        keys = jax.random.split(jax.random.PRNGKey(3), num_keys)
        out = jax.jit(jax.vmap(lambda k: augmentation.random_shift(k, images, pad=PAD)))(keys)  # vmappable
        chex.assert_shape(out, (num_keys, 8, H, W, C))
        offsets = _offsets(np.asarray(out).reshape(-1, H, W, C)).reshape(num_keys, 8, 2)
        flat = offsets.reshape(-1, 2)
        counts = np.zeros((2 * PAD + 1, 2 * PAD + 1), int)
        np.add.at(counts, (flat[:, 0], flat[:, 1]), 1)  # 4096 draws, ~84 per offset
        assert counts.min() > 0, f"missing offsets:\n{counts}"
        assert flat.min() >= 0 and flat.max() <= 2 * PAD
        np.testing.assert_allclose(flat.mean(0), [PAD, PAD], atol=0.15)  # uniform: mean pad
        # Neighbouring images of one batch draw uncorrelated offsets (3584 pairs: SE ≈ 0.017).
        for axis in range(2):
            r = np.corrcoef(offsets[:, :-1, axis].ravel(), offsets[:, 1:, axis].ravel())[0, 1]
            assert abs(r) < 0.1, r
        # A batch of identical images comes out with many different shifts.
        assert len({tuple(o) for o in offsets[0]}) > 4

    def test_output_of_an_image_does_not_depend_on_the_others(self):
        images = _random_images(6, B)
        other = images.copy()
        other[1:] = 255 - other[1:]
        key = jax.random.PRNGKey(6)
        np.testing.assert_array_equal(_shift(key, images, pad=PAD)[0], _shift(key, other, pad=PAD)[0])

    def test_pad_zero_is_identity(self):
        images = _random_images(7, 3)
        np.testing.assert_array_equal(augmentation.random_shift(jax.random.PRNGKey(0), images, pad=0), images)

    def test_channels_first_matches_channels_last(self):
        images = _random_images(8, B)
        key = jax.random.PRNGKey(9)
        last = _shift(key, images, pad=PAD)
        first = _shift(key, images.transpose(0, 3, 1, 2), pad=PAD, channels_first=True)
        chex.assert_shape(first, (B, C, H, W))
        np.testing.assert_array_equal(np.asarray(first).transpose(0, 2, 3, 1), last)

    def test_rejects_bad_pad_and_rank(self):
        with pytest.raises(ValueError, match="pad"):
            augmentation.random_shift(jax.random.PRNGKey(0), _random_images(0, 1), pad=-1)
        with pytest.raises(AssertionError):
            augmentation.random_shift(jax.random.PRNGKey(0), _random_images(0, 1)[0], pad=2)


class RandomIntensityTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_uint8_rounds_and_saturates_to_the_float_product(self):
        images = _random_images(4, B)
        images[:, 0, 0, 0] = 255  # brightening must saturate at 255, not wrap
        key = jax.random.PRNGKey(5)
        intensity = self.variant(lambda k, x: augmentation.random_intensity(k, x, scale=0.1))
        out = intensity(key, images)
        chex.assert_shape(out, images.shape)
        chex.assert_type(out, np.uint8)
        factors = np.asarray(intensity(key, np.ones(images.shape, np.float32)))
        expected = np.clip(np.round(images.astype(np.float32) * factors), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(out, expected)
        bright = factors[:, 0, 0, 0] > 1.0
        assert bright.any() and np.all(np.asarray(out)[bright, 0, 0, 0] == 255)

    def test_float_dtypes_preserved_and_multiplied(self):
        key = jax.random.PRNGKey(3)
        images = _random_images(2, B, np.float32) / 255.0
        factors = np.asarray(_intensity(key, np.ones_like(images), scale=0.05))
        out = _intensity(key, images, scale=0.05)
        chex.assert_type(out, np.float32)
        np.testing.assert_allclose(out, images * factors, rtol=1e-6)
        out_bf16 = _intensity(key, jnp.asarray(images, jnp.bfloat16), scale=0.05)
        chex.assert_shape(out_bf16, images.shape)
        chex.assert_type(out_bf16, jnp.bfloat16)

    def test_factor_is_per_image_constant_and_bounded(self):
        scale, batch = 0.3, 4096
        images = np.ones((batch, 2, 2, 1), np.float32)
        factors = np.asarray(_intensity(jax.random.PRNGKey(1), images, scale=scale))
        np.testing.assert_array_equal(factors, np.broadcast_to(factors[:, :1, :1, :1], factors.shape))
        f = factors[:, 0, 0, 0]
        assert f.min() >= 1 - 2 * scale - 1e-6 and f.max() <= 1 + 2 * scale + 1e-6
        # clip(z, −2, 2) saturates for ~4.6% of images, so both bounds are reached exactly.
        np.testing.assert_allclose([f.min(), f.max()], [1 - 2 * scale, 1 + 2 * scale], rtol=1e-6)
        np.testing.assert_allclose(f.mean(), 1.0, atol=0.02)
        assert len(np.unique(f)) > batch // 2  # independent draws per image

    def test_scale_zero_is_identity_and_vmappable(self):
        images = _random_images(6, B)
        np.testing.assert_array_equal(_intensity(jax.random.PRNGKey(0), images, scale=0.0), images)
        keys = jax.random.split(jax.random.PRNGKey(1), 5)
        out = jax.jit(jax.vmap(lambda k: augmentation.random_intensity(k, images, scale=0.05)))(keys)
        chex.assert_shape(out, (5, *images.shape))
        chex.assert_type(out, np.uint8)
        assert not np.array_equal(out[0], out[1])

    def test_rejects_negative_scale(self):
        with pytest.raises(ValueError, match="scale"):
            augmentation.random_intensity(jax.random.PRNGKey(0), _random_images(0, 1), scale=-0.1)
