"""ReDo: dormant-neuron scores and recycling, as pure functions over haiku parameter trees.

Implements Sokar, Agarwal, Castro & Evci 2023, "The Dormant Neuron Phenomenon in Deep
Reinforcement Learning", ICML, arXiv 2302.12902, §3 (Eq. 1) and Algorithm 1.

A neuron i of a layer with H neurons has the score (Eq. 1)

    s_i = E_x |h_i(x)| / ( (1/H) Σ_k E_x |h_k(x)| ),

over a batch x of inputs (from replay), with a convolutional neuron being a feature map
(the expectation also runs over spatial positions). Neuron i is τ-dormant when s_i ≤ τ.
ReDo recycles dormant neurons: their incoming weights are re-drawn from the layer's
initialiser and their bias zeroed, their outgoing weights are set to zero (so the network's
output is unchanged at the moment of recycling), and the optimiser's moments of every
touched weight are reset.

This module imports nothing of the repository (copy it into your own code); layers are
named by their haiku module paths (``params[name]["w"]``, ``params[name]["b"]``).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

Array = chex.Array
Params = Mapping[str, Mapping[str, Array]]
Initializer = Callable[[Array, Sequence[int], Any], Array]

DEFAULT_INIT: Initializer = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
"""Haiku's default for ``Linear`` and ``Conv2D`` weights (truncated normal, std 1/√fan_in)."""


class LayerLink(NamedTuple):
    """A layer whose outputs are neurons, and the layer that consumes them."""

    layer: str  # haiku module path of the layer (its "w" ends in the neuron axis H)
    next_layer: str  # module path of the consumer; its "w" has H (or spatial × H) input rows


def neuron_scores(activation: Array) -> Array:
    """Normalised activity s_i of each neuron of one layer (Eq. 1 of Sokar et al. 2023).

        s_i = mean_{batch, space} |h_i| / mean_k ( mean_{batch, space} |h_k| )

    Args:
      activation: ``[B, H]`` (dense) or ``[B, ..., H]`` (conv feature maps, channels last)
        post-activation outputs of the layer on a batch of inputs.

    Returns:
      ``[H]`` float32 scores; their mean is 1 (all zeros when the whole layer is silent).
    """
    chex.assert_rank(activation, {2, 3, 4, 5})
    mean_abs = jnp.mean(jnp.abs(activation.astype(jnp.float32)), axis=tuple(range(activation.ndim - 1)))
    layer_mean = jnp.mean(mean_abs)
    return jnp.where(layer_mean > 0, mean_abs / jnp.where(layer_mean > 0, layer_mean, 1.0), 0.0)


def dormant_mask(scores: Array, *, tau: float) -> Array:
    """``[H]`` bool: τ-dormant neurons, s_i ≤ τ (Definition 3.1; τ = 0 finds exactly silent ones)."""
    return scores <= tau


class DormantFractions(NamedTuple):
    """Share of τ-dormant neurons."""

    per_layer: Mapping[str, Array]  # layer -> [] float32 fraction of its neurons
    total: Array  # [] float32 fraction over all neurons of all scored layers


def dormant_fractions(masks: Mapping[str, Array]) -> DormantFractions:
    """Per-layer and total fraction of dormant neurons from ``{layer: [H] bool}`` masks."""
    per_layer = {name: jnp.mean(mask.astype(jnp.float32)) for name, mask in masks.items()}
    count = sum(jnp.sum(mask) for mask in masks.values())
    size = sum(mask.size for mask in masks.values())
    return DormantFractions(per_layer=per_layer, total=jnp.asarray(count, jnp.float32) / max(size, 1))


def _outgoing_row_mask(mask: Array, next_w: Array) -> Array:
    """Which input rows of the consumer's weight carry the dormant neurons.

    Dense consumer ``[R, O]``: R = H, or R = P·H after flattening ``[P positions, H]``
    channels-last (haiku's ``Flatten`` of ``[B, h, w, H]``), where input row r carries
    channel r mod H. Conv consumer ``[kh, kw, H, O]``: the input-channel axis.
    """
    num = mask.shape[0]
    rows = next_w.shape[-2]
    if rows % num:
        raise ValueError(f"consumer weight {next_w.shape} has {rows} input rows, not a multiple of {num} neurons")
    return jnp.tile(mask, rows // num)


def recycle_masks(params: Params, masks: Mapping[str, Array], links: Sequence[LayerLink]):
    """Which entries of every parameter ReDo touches: ``(incoming, outgoing)`` bool pytrees.

    ``incoming`` marks the weight columns and bias entries of dormant neurons (re-drawn /
    zeroed), ``outgoing`` the consumer rows fed by them (zeroed). Parameters of layers not
    named in ``links`` are all False.
    """
    incoming = jax.tree.map(lambda x: jnp.zeros(x.shape, bool), params)
    outgoing = jax.tree.map(lambda x: jnp.zeros(x.shape, bool), params)
    incoming, outgoing = dict((k, dict(v)) for k, v in incoming.items()), dict((k, dict(v)) for k, v in outgoing.items())
    recyclable = {link.layer for link in links}
    for name in masks:
        if name not in recyclable:
            raise ValueError(f"{name!r} is not a recyclable layer (the final layer is never recycled); "
                             f"recyclable: {sorted(recyclable)}")
    for link in links:
        if link.layer not in masks:
            continue
        mask = masks[link.layer]
        w = params[link.layer]["w"]
        if w.shape[-1] != mask.shape[0]:
            raise ValueError(f"{link.layer}: mask of {mask.shape[0]} neurons for weights {w.shape}")
        incoming[link.layer]["w"] = incoming[link.layer]["w"] | jnp.broadcast_to(mask, w.shape)
        if "b" in params[link.layer]:
            incoming[link.layer]["b"] = incoming[link.layer]["b"] | mask
        next_w = params[link.next_layer]["w"]
        row_mask = _outgoing_row_mask(mask, next_w)
        outgoing[link.next_layer]["w"] = outgoing[link.next_layer]["w"] | row_mask.reshape(
            (1,) * (next_w.ndim - 2) + (-1, 1))
    return incoming, outgoing


def _is_adam_state(x: Any) -> bool:
    return isinstance(x, optax.ScaleByAdamState)


def reset_adam_moments(opt_state: Any, touched: Any) -> Any:
    """Zeroes the first and second Adam moments of touched entries, wherever the Adam state
    sits in the optimiser state (inside ``optax.chain``, ``inject_hyperparams``, ...)."""

    def reset(state):
        if not _is_adam_state(state):
            return state
        zero = lambda moment, mask: jnp.where(mask, jnp.zeros_like(moment), moment)
        return state._replace(mu=jax.tree.map(zero, state.mu, touched), nu=jax.tree.map(zero, state.nu, touched))

    return jax.tree.map(reset, opt_state, is_leaf=_is_adam_state)


def recycle(
    params: Params,
    opt_state: Any,
    masks: Mapping[str, Array],
    key: Array,
    *,
    links: Sequence[LayerLink],
    init: Initializer = DEFAULT_INIT,
) -> Tuple[Params, Any]:
    """Recycles the dormant neurons given by ``masks`` (ReDo, Algorithm 1 of Sokar et al. 2023).

    For each ``LayerLink(layer, next_layer)`` with a mask ``[H]``: the incoming weights
    ``params[layer]["w"][..., i]`` of dormant neurons i are re-drawn with ``init``, their
    biases set to 0, and the outgoing weights ``params[next_layer]["w"][..., rows(i), :]``
    set to 0; the Adam moments of all those entries are reset to 0. Every other entry is
    returned bit-identical.

    Args:
      params: haiku parameters ``{module path: {"w": ..., "b": ...}}``.
      opt_state: optax state of ``params`` (any nesting holding ``ScaleByAdamState``).
      masks: ``{layer: [H] bool}`` dormant neurons per layer (layers without a mask are left alone).
      key: PRNG key for the re-drawn weights (split per layer).
      links: the layers that may be recycled, each with its consumer; the network's final
        (output) layer is never a ``layer`` here.
      init: initialiser ``(key, shape, dtype) -> array`` of the re-drawn incoming weights.

    Returns:
      ``(params, opt_state)`` after recycling.
    """
    incoming, outgoing = recycle_masks(params, masks, links)
    new_params = {name: dict(layer) for name, layer in params.items()}
    keys = jax.random.split(key, max(len(links), 1))
    for link, layer_key in zip(links, keys):
        if link.layer not in masks:
            continue
        w = params[link.layer]["w"]
        fresh = init(layer_key, w.shape, w.dtype)
        new_params[link.layer]["w"] = jnp.where(incoming[link.layer]["w"], fresh, w)
        if "b" in params[link.layer]:
            b = params[link.layer]["b"]
            new_params[link.layer]["b"] = jnp.where(incoming[link.layer]["b"], jnp.zeros_like(b), b)
    for link in links:
        if link.layer not in masks:
            continue
        w = new_params[link.next_layer]["w"]
        new_params[link.next_layer]["w"] = jnp.where(outgoing[link.next_layer]["w"], jnp.zeros_like(w), w)
    touched = jax.tree.map(lambda a, b: a | b, incoming, outgoing)
    return new_params, reset_adam_moments(opt_state, touched)


def scheduled(step: Array, *, period: int, start: int = 0, end: Optional[int] = None) -> Array:
    """``[]`` bool: whether gradient step ``step`` recycles: a positive multiple of ``period`` in [start, end).

    As the authors' code: steps are counted from the first update, so with period 1000
    recycling happens after updates 1000, 2000, ... whatever ``start`` is.
    """
    on = (step > 0) & (step % period == 0) & (step >= start)
    return on if end is None else on & (step < end)
