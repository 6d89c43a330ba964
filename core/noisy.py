"""Factorised Gaussian noisy linear layer of NoisyNets (Fortunato et al. 2018, arXiv 1706.10295).

A noisy layer replaces ε-greedy exploration by learned parameter noise: every weight is
μ + σ ⊙ ε with learnable μ, σ and fresh noise ε per forward pass. The factorised variant
(paper §3, "factorised Gaussian noise", used by Rainbow) draws p + q unit Gaussians for a
p → q layer instead of p·q + q:

    ε^w_ij = f(ε_i) · f(ε_j),   ε^b_j = f(ε_j),   f(x) = sgn(x) · √|x|,   ε_i, ε_j ~ N(0, 1).

Use inside ``hk.transform`` (not ``hk.without_apply_rng``): the noise comes from
``hk.next_rng_key()``, so the caller controls it through ``apply(params, rng, x)``; calling
with ``noisy=False`` (evaluation) uses the means μ only and needs no rng.

>>> import haiku as hk, jax, jax.numpy as jnp
>>> net = hk.transform(lambda x, noisy=True: NoisyLinear(3)(x, noisy=noisy))
>>> params = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 5)))
>>> net.apply(params, jax.random.PRNGKey(1), jnp.ones((2, 5))).shape
(2, 3)
>>> net.apply(params, None, jnp.ones((2, 5)), noisy=False).shape
(2, 3)
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import chex
import haiku as hk
import jax
import jax.numpy as jnp

Array = chex.Array
PRNGKey = chex.PRNGKey


class FactorisedNoise(NamedTuple):
    """One draw of factorised noise for a p → q linear layer."""

    weight: Array  # [D_in, D_out] ε^w_ij = f(ε_i) f(ε_j)
    bias: Array  # [D_out] ε^b_j = f(ε_j)


def scale_noise(x: Array) -> Array:
    """The noise transform f(x) = sgn(x) · √|x| of factorised NoisyNets (arXiv 1706.10295, §3)."""
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def factorised_gaussian_noise(
    key: PRNGKey, *, input_size: int, output_size: int, dtype=jnp.float32
) -> FactorisedNoise:
    """Draws factorised Gaussian noise for one forward pass of a p → q noisy layer.

    Implements the factorised noise of Fortunato et al. 2018, §3 (arXiv 1706.10295):

        ε_i ~ N(0, 1) (i < p),  ε_j ~ N(0, 1) (j < q),
        ε^w_ij = f(ε_i) · f(ε_j),   ε^b_j = f(ε_j),   f(x) = sgn(x) √|x|.

    Each entry has mean 0 and E[(ε^w_ij)²] = E|ε_i| · E|ε_j| = 2/π, E[(ε^b_j)²] = √(2/π).

    Args:
      key: PRNG key.
      input_size: p, the layer's input features.
      output_size: q, the layer's output features.
      dtype: floating dtype of the noise.

    Returns:
      :class:`FactorisedNoise` with ``weight`` ``[p, q]`` and ``bias`` ``[q]``.
    """
    in_key, out_key = jax.random.split(key)
    f_in = scale_noise(jax.random.normal(in_key, (input_size,), dtype))
    f_out = scale_noise(jax.random.normal(out_key, (output_size,), dtype))
    return FactorisedNoise(weight=jnp.outer(f_in, f_out), bias=f_out)


class NoisyLinear(hk.Module):
    """Linear layer y = x · (μ^w + σ^w ⊙ ε^w) + μ^b + σ^b ⊙ ε^b with factorised Gaussian noise.

    Implements the noisy linear layer of Fortunato et al. 2018, §3 (arXiv 1706.10295), with
    factorised noise (:func:`factorised_gaussian_noise`) and the initialisation of §3.2:

        μ^w_ij, μ^b_j ~ U[−1/√p, 1/√p],   σ^w_ij = σ^b_j = σ0 / √p,   p = input size.

    Parameters: ``w_mu`` ``[p, q]``, ``w_sigma`` ``[p, q]``, ``b_mu`` ``[q]``, ``b_sigma`` ``[q]``,
    in the input's dtype (as :class:`haiku.Linear`).

    Notes:
      One noise sample per call, shared by every row of the batch (as in the paper's
      DQN and Rainbow/Dopamine): ``[B, p]`` inputs see the same effective weights. Vmap the
      apply over keys for independent noise per example.
    """

    def __init__(self, output_size: int, *, sigma0: float = 0.5, name: Optional[str] = None):
        """Args:
        output_size: q, output features.
        sigma0: σ0 of the initial noise scale σ = σ0/√p (0.5 in the paper for factorised
          noise, and in Rainbow).
        name: haiku module name.
        """
        super().__init__(name=name)
        if output_size < 1:
            raise ValueError(f"output_size must be positive, got {output_size}")
        if sigma0 < 0:
            raise ValueError(f"sigma0 must be non-negative, got {sigma0}")
        self.output_size = int(output_size)
        self.sigma0 = float(sigma0)

    def __call__(self, inputs: Array, *, noisy: bool = True) -> Array:
        """Applies the layer.

        Args:
          inputs: ``[B, p]`` or ``[p]`` floating features.
          noisy: static; True draws ε from ``hk.next_rng_key()``, False returns
            x · μ^w + μ^b (evaluation, or a deterministic target network).

        Returns:
          ``[B, q]`` or ``[q]`` outputs in the inputs' dtype.
        """
        chex.assert_rank(inputs, {1, 2})
        chex.assert_type(inputs, float)
        input_size = inputs.shape[-1]
        dtype = inputs.dtype
        bound = 1.0 / math.sqrt(input_size)
        mu_init = hk.initializers.RandomUniform(-bound, bound)
        sigma_init = hk.initializers.Constant(self.sigma0 / math.sqrt(input_size))
        shape_w = (input_size, self.output_size)
        w_mu = hk.get_parameter("w_mu", shape_w, dtype, init=mu_init)
        w_sigma = hk.get_parameter("w_sigma", shape_w, dtype, init=sigma_init)
        b_mu = hk.get_parameter("b_mu", (self.output_size,), dtype, init=mu_init)
        b_sigma = hk.get_parameter("b_sigma", (self.output_size,), dtype, init=sigma_init)
        if not noisy:
            return jnp.dot(inputs, w_mu) + b_mu
        noise = factorised_gaussian_noise(
            hk.next_rng_key(), input_size=input_size, output_size=self.output_size, dtype=dtype
        )
        w = w_mu + w_sigma * noise.weight
        b = b_mu + b_sigma * noise.bias
        return jnp.dot(inputs, w) + b
