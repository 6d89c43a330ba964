"""Haiku models of the preference-density experiments: the only place that builds modules.

* ``make_energy_network``: an MLP from grid points [G, D] to K unnormalised log densities
  (negative energies) [G, K]; normalised exactly over the grid by ``densities.log_normalize``.
* ``make_sequence_model``: a tiny GRU language model over a vocabulary whose token 0 is
  EOS, sequences of at most ``max_length`` tokens before the EOS (the EOS is forced at the
  last position, so the model is an exactly normalised distribution over finite sequences).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

EOS = 0
"""Token id of the end of a sequence; tokens 1 … V−1 are ordinary tokens."""
_FORBIDDEN = -1e9


def make_energy_network(*, hidden: int, num_outputs: int = 1, input_scale: float = 1.0) -> hk.Transformed:
    """An MLP energy: ``apply(params, points [G, D]) -> [G, K]`` unnormalised log densities."""

    def forward(points: jax.Array) -> jax.Array:
        mlp = hk.nets.MLP([hidden, hidden, num_outputs], activation=jax.nn.silu, name="energy")
        return mlp(points / input_scale)

    return hk.without_apply_rng(hk.transform(forward))


class SequenceModel(NamedTuple):
    """A GRU language model as pure functions (params are a haiku dict)."""

    init: Callable  # (key) -> params
    log_prob: Callable  # (params, tokens [B, T] int32) -> [B] float32: log π(sequence)
    sample: Callable  # (params, key, num) -> [num, T] int32 sequences, EOS-padded
    max_length: int  # L: tokens before the EOS at most; sequences are arrays of T = L + 1
    vocab_size: int  # V including EOS


def _force_eos_at_end(logits: jax.Array, t: jax.Array, last: int) -> jax.Array:
    eos_only = jnp.full(logits.shape[-1:], _FORBIDDEN).at[EOS].set(0.0)
    return jnp.where((t == last)[..., None], eos_only, logits)


def make_sequence_model(*, vocab_size: int, max_length: int, hidden: int) -> SequenceModel:
    """A GRU over the previous token (BOS = id V) with a softmax over V tokens (EOS = 0)."""
    length = max_length + 1
    bos = vocab_size

    def modules():
        return (hk.Embed(vocab_size + 1, hidden, name="embed"), hk.GRU(hidden, name="gru"),
                hk.Linear(vocab_size, name="head"))

    def transformed():
        embed, core, head = modules()

        def logits(tokens: jax.Array) -> jax.Array:  # [B, T] -> [B, T, V]
            batch = tokens.shape[0]
            previous = jnp.concatenate([jnp.full((batch, 1), bos, tokens.dtype), tokens[:, :-1]], axis=1)
            inputs = jnp.swapaxes(embed(previous), 0, 1)  # time-major [T, B, H]
            outputs, _ = hk.dynamic_unroll(core, inputs, core.initial_state(batch))
            out = head(jnp.swapaxes(outputs, 0, 1))
            return _force_eos_at_end(out, jnp.arange(length)[None, :], length - 1)

        def sample(key: jax.Array, num: int) -> jax.Array:
            def step(carry, inputs):
                state, previous, done = carry
                t, step_key = inputs
                h, state = core(embed(previous), state)
                logit = _force_eos_at_end(head(h), t, length - 1)
                token = jax.random.categorical(step_key, logit).astype(jnp.int32)
                token = jnp.where(done, EOS, token)
                return (state, token, done | (token == EOS)), token

            init = (core.initial_state(num), jnp.full((num,), bos, jnp.int32), jnp.zeros((num,), bool))
            _, tokens = hk.scan(step, init, (jnp.arange(length), jax.random.split(key, length)))
            return tokens.T

        def init_fn(tokens):
            return logits(tokens)

        return init_fn, (logits, sample)

    model = hk.without_apply_rng(hk.multi_transform(transformed))
    logits_apply, sample_apply = model.apply

    def init(key: jax.Array):
        return model.init(key, jnp.zeros((1, length), jnp.int32))

    def log_prob(params, tokens: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(logits_apply(params, tokens), axis=-1)
        per_token = jnp.take_along_axis(log_p, tokens[..., None], axis=-1)[..., 0]
        return jnp.sum(jnp.where(valid_positions(tokens), per_token, 0.0), axis=-1)

    def sample(params, key: jax.Array, num: int) -> jax.Array:
        return sample_apply(params, key, num)

    return SequenceModel(init=init, log_prob=log_prob, sample=sample, max_length=max_length, vocab_size=vocab_size)


def valid_positions(tokens: jax.Array) -> jax.Array:
    """[B, T] bool: positions up to and including the first EOS (the ones a sequence's probability reads)."""
    eos_before = jnp.cumsum(tokens == EOS, axis=-1) - (tokens == EOS)
    return eos_before == 0


def lengths(tokens: jax.Array) -> jax.Array:
    """[B] int32: the number of tokens before the first EOS."""
    return jnp.argmax(tokens == EOS, axis=-1).astype(jnp.int32)
