"""Soft MoE and Top-1 MoE layers, their router statistics and losses, and tokenisers.

Implements the layers of Obando-Ceron, Sokar, Willi et al. 2024, "Mixtures of Experts
Unlock Parameter Scaling for Deep RL", ICML, arXiv 2402.08609, §3: Soft MoE (Puigcerver et
al. 2024, arXiv 2308.00951, Algorithm 1) and the token-choice Top-1 MoE with per-expert
capacity (Fedus et al. 2022, Switch Transformers, arXiv 2101.03961), over explicit arrays
so that any implementation can be checked against them. Functions take one example
(tokens ``[T, D]``); vmap over the batch.

This module imports nothing of the repository (copy it into your own code).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


class ExpertParams(NamedTuple):
    """Per-expert two-layer MLPs y = W2ᵀ relu(W1ᵀ x + b1) + b2, stacked on a leading E axis."""

    w1: Array  # [E, D, H] float32
    b1: Array  # [E, H] float32
    w2: Array  # [E, H, O] float32
    b2: Array  # [E, O] float32


def init_experts(key: Array, *, num_experts: int, in_dim: int, hidden: int, out_dim: int) -> ExpertParams:
    """LeCun-normal (truncated, std 1/√fan_in) weights and zero biases for ``num_experts`` MLPs.

    Each expert is initialised as its own layer: fan_in is D (or H), not E·D.
    """
    k1, k2 = jax.random.split(key)
    init = expert_initializer()
    return ExpertParams(w1=init(k1, (num_experts, in_dim, hidden)), b1=jnp.zeros((num_experts, hidden)),
                        w2=init(k2, (num_experts, hidden, out_dim)), b2=jnp.zeros((num_experts, out_dim)))


def expert_initializer():
    """LeCun truncated normal over ``[E, fan_in, fan_out]`` weights with E a batch axis (per-expert fans)."""
    return jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1,
                                                batch_axis=0)


def apply_experts(experts: ExpertParams, inputs: Array) -> tuple[Array, Array]:
    """Expert e on its inputs ``[E, S, D]`` → (outputs ``[E, S, O]``, hidden ReLU activations ``[E, S, H]``)."""

    def one(w1, b1, w2, b2, x):
        hidden = jax.nn.relu(x @ w1 + b1)
        return hidden @ w2 + b2, hidden

    return jax.vmap(one)(experts.w1, experts.b1, experts.w2, experts.b2, inputs)


def num_slots(num_tokens: int, num_experts: int, capacity_factor: float = 1.0) -> int:
    """Slots per expert S = ⌈T · capacity_factor / E⌉ (at least 1)."""
    if num_tokens < 1 or num_experts < 1 or capacity_factor <= 0:
        raise ValueError(f"need positive tokens, experts and capacity factor, got {num_tokens}, {num_experts}, "
                         f"{capacity_factor}")
    return max(1, math.ceil(num_tokens * capacity_factor / num_experts))


def l2_normalize(x: Array, *, axis: int, eps: float = 1e-6) -> Array:
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + eps)


class MoEOutput(NamedTuple):
    """A MoE layer's output and router statistics for one example."""

    output: Array  # [T, O] float32
    dispatch: Array  # [T, E, S] Soft MoE: softmax over tokens per slot; Top-1: one-hot of kept tokens
    combine: Array  # [T, E, S] Soft MoE: softmax over all E·S slots per token; Top-1: gate at the token's slot
    expert_probability: Array  # [T, E] router probability mass of each expert per token
    top_expert: Array  # [T] int32 expert with the largest mass per token
    expert_hidden: Array  # [E, S, H] hidden activations of the experts (for dormant-neuron statistics)


def soft_moe(tokens: Array, phi: Array, experts: ExpertParams, *, normalize: bool = False,
             scale: Optional[Array] = None) -> MoEOutput:
    """Soft MoE layer (Puigcerver et al. 2024, Algorithm 1; Obando-Ceron et al. 2024, §3).

        logits[t, e, s] = x_t · Φ[:, e, s]        (with ``normalize``: scale · x̂_t · Φ̂[:, e, s])
        D = softmax_t(logits)                      dispatch: each slot a convex mix of tokens
        x̃[e, s] = Σ_t D[t, e, s] x_t
        ỹ[e, s] = f_e(x̃[e, s])                    expert e on its S slots
        C = softmax_{(e, s)}(logits)               combine: each token a convex mix of slots
        y_t = Σ_{e, s} C[t, e, s] ỹ[e, s]

    Args:
      tokens: ``[T, D]`` input tokens of one example.
      phi: ``[D, E, S]`` slot parameters Φ.
      experts: :class:`ExpertParams` of E experts with input size D.
      normalize: L2-normalise tokens over D and Φ over D (per slot), times ``scale``.
      scale: ``[]`` learned scale of the normalised logits (1 when None).

    Returns:
      :class:`MoEOutput`; ``combine_per_expert = combine.sum(-1)`` is ``expert_probability``.
    """
    chex.assert_rank([tokens, phi], [2, 3])
    if normalize:
        tokens_n, phi_n = l2_normalize(tokens, axis=-1), l2_normalize(phi, axis=0)
        logits = jnp.einsum("td,des->tes", tokens_n, phi_n) * (1.0 if scale is None else scale)
    else:
        logits = jnp.einsum("td,des->tes", tokens, phi)
    num_tokens, num_experts, slots = logits.shape
    dispatch = jax.nn.softmax(logits, axis=0)
    combine = jax.nn.softmax(logits.reshape(num_tokens, -1), axis=-1).reshape(logits.shape)
    slot_inputs = jnp.einsum("tes,td->esd", dispatch, tokens)
    slot_outputs, hidden = apply_experts(experts, slot_inputs)
    output = jnp.einsum("tes,eso->to", combine, slot_outputs)
    per_expert = combine.sum(-1)
    return MoEOutput(output=output, dispatch=dispatch, combine=combine, expert_probability=per_expert,
                     top_expert=jnp.argmax(per_expert, axis=-1).astype(jnp.int32), expert_hidden=hidden)


def top1_moe(tokens: Array, router: Array, experts: ExpertParams, *, capacity_factor: float = 1.0,
             noise_key: Optional[Array] = None, noise_std: float = 1.0) -> MoEOutput:
    """Token-choice Top-1 MoE with per-expert capacity (Switch Transformer routing).

        p_t = softmax(x_t · W_r [+ ε_t])           router probabilities, optional noise ε ~ N(0, σ²)
        e_t = argmax_e p_t[e],   g_t = p_t[e_t]
        token t keeps slot k = #{t' ≤ t : e_t' = e_t} of expert e_t if k ≤ C = ⌈T · cf / E⌉
        y_t = g_t · f_{e_t}(x_t) if kept, else 0 (dropped)

    Args:
      tokens: ``[T, D]``.
      router: ``[D, E]`` router weights.
      experts: :class:`ExpertParams`.
      capacity_factor: cf in the capacity C.
      noise_key: when given, Gaussian noise with ``noise_std`` is added to the router logits.

    Returns:
      :class:`MoEOutput` with ``dispatch``/``combine`` ``[T, E, C]``.
    """
    chex.assert_rank([tokens, router], [2, 2])
    logits = tokens @ router
    if noise_key is not None:
        logits = logits + noise_std * jax.random.normal(noise_key, logits.shape, logits.dtype)
    probs = jax.nn.softmax(logits, axis=-1)
    num_tokens, num_experts = probs.shape
    capacity = num_slots(num_tokens, num_experts, capacity_factor)
    expert = jnp.argmax(probs, axis=-1)
    choice = jax.nn.one_hot(expert, num_experts, dtype=jnp.int32)  # [T, E]
    position = jnp.cumsum(choice, axis=0) * choice - 1  # 0-based slot in the chosen expert, -1 elsewhere
    kept = (position >= 0) & (position < capacity)
    dispatch = (jax.nn.one_hot(jnp.where(kept, position, capacity), capacity) * kept[..., None]).astype(tokens.dtype)
    gate = jnp.take_along_axis(probs, expert[:, None], axis=-1)[:, 0]
    slot_inputs = jnp.einsum("tec,td->ecd", dispatch, tokens)
    slot_outputs, hidden = apply_experts(experts, slot_inputs)
    combine = dispatch * gate[:, None, None]
    output = jnp.einsum("tec,eco->to", combine, slot_outputs)
    return MoEOutput(output=output, dispatch=dispatch, combine=combine, expert_probability=probs,
                     top_expert=expert.astype(jnp.int32), expert_hidden=hidden)


def importance_loss(probs: Array) -> Array:
    """CV² of the experts' total router mass over a batch of tokens (Shazeer et al. 2017). ``[T, E]`` → ``[]``."""
    importance = probs.sum(axis=0)
    return jnp.var(importance) / (jnp.mean(importance) ** 2 + 1e-9)


def load_loss(probs: Array, top_expert: Array) -> Array:
    """Switch load-balancing loss E · Σ_e f_e P_e: f_e the share of tokens routed to e, P_e its mean
    router probability; 1 when balanced (Fedus et al. 2022, Eq. 4). ``[T, E]``, ``[T]`` → ``[]``."""
    num_experts = probs.shape[-1]
    fraction = jnp.mean(jax.nn.one_hot(top_expert, num_experts), axis=0)
    return num_experts * jnp.sum(fraction * jnp.mean(probs, axis=0))


def entropy_loss(probs: Array) -> Array:
    """Mean entropy of the per-token router distributions (low = confident routing). ``[T, E]`` → ``[]``."""
    return -jnp.mean(jnp.sum(probs * jnp.log(probs + 1e-9), axis=-1))


# --------------------------------------------------------------------------- tokenisation of conv features


def per_conv_tokens(features: Array) -> Array:
    """PerConv: one token per spatial position, ``[h, w, C]`` → ``[h·w, C]``."""
    chex.assert_rank(features, 3)
    return features.reshape(-1, features.shape[-1])


def per_feature_tokens(features: Array) -> Array:
    """PerFeat: one token per feature map, ``[h, w, C]`` → ``[C, h·w]``."""
    chex.assert_rank(features, 3)
    return features.reshape(-1, features.shape[-1]).T


def per_sample_tokens(features: Array) -> Array:
    """PerSamp: the whole feature tensor as one token, ``[h, w, C]`` → ``[1, h·w·C]``."""
    chex.assert_rank(features, 3)
    return features.reshape(1, -1)


def per_patch_tokens(features: Array, kernel: Array, bias: Optional[Array] = None) -> Array:
    """PerPatch: a strided conv embedding of non-overlapping P×P patches (VALID padding).

    ``features`` ``[h, w, C]``, ``kernel`` ``[P, P, C, D]`` → ``[⌊h/P⌋·⌊w/P⌋, D]``.
    """
    chex.assert_rank([features, kernel], [3, 4])
    patch = kernel.shape[0]
    out = jax.lax.conv_general_dilated(features[None], kernel, window_strides=(patch, patch), padding="VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    if bias is not None:
        out = out + bias
    return out.reshape(-1, out.shape[-1])
