"""Sparsity distributions, sparsity structures and compact masks: pure functions over pytrees.

Lee, Park, Mitchell, Lin, Bai, Evci, Dziugaite, Castro, Castro et al. 2023, "JaxPruner: A
concise library for sparsity research", arXiv 2304.14082 (Section 2: "sparsity
distributions", "sparsity types").

* A *distribution* maps a parameter pytree and a total sparsity s to a pytree of per-layer
  sparsities s_l (``None`` for parameters that are not pruned): :func:`uniform` (s_l = s) and
  :func:`erk` (Erdős–Rényi-kernel, Evci et al. 2020, arXiv 1911.11134).
* A *structure* says which groups of weights are kept together: :class:`Unstructured`,
  :class:`NByM` (N of every M consecutive weights), :class:`Block` (2-D blocks) and
  :class:`Channel` (whole slices along one axis). :func:`topk_mask` keeps the highest scores
  under a structure at a (traced) density.
* Masks are ``uint8`` arrays (1 = kept), optionally bit-packed (:func:`pack_mask`), and never
  materialised for parameters that are not pruned (their entry is ``None``).

Vendorable: imports only jax and numpy.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
FilterFn = Callable[[str, Any], bool]
"""``filter_fn(name, param) -> bool``: whether the parameter named ``name`` ("module/param") is prunable."""


# --------------------------------------------------------------------------- names and filters


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def param_name(path: Sequence[Any]) -> str:
    """``"module/param"``: a pytree path (``tree_flatten_with_path``) joined with ``/``."""
    return "/".join(_key_name(entry) for entry in path)


def default_filter(name: str, param: Any) -> bool:
    """Prunes every parameter with at least 2 dimensions (weights); biases and scales (1-D) are kept dense."""
    del name
    return np.ndim(param) > 1


def map_named(fn: Callable[[str, Any], Any], tree: Any) -> Any:
    """``fn(name, leaf)`` over every leaf of ``tree``, the leaf's name from its path."""
    return jax.tree_util.tree_map_with_path(lambda path, leaf: fn(param_name(path), leaf), tree)


def is_prunable_tree(params: Any, filter_fn: FilterFn = default_filter) -> Any:
    """A pytree of Python bools: whether each parameter is prunable."""
    return map_named(lambda name, p: bool(filter_fn(name, p)), params)


# --------------------------------------------------------------------------- distributions


def uniform(params: Any, sparsity: float, *, filter_fn: FilterFn = default_filter,
            custom_sparsity_map: Optional[Mapping[str, float]] = None) -> Any:
    """Every prunable parameter at the same sparsity: s_l = s.

    Args:
      params: parameter pytree (arrays or ShapeDtypeStructs).
      sparsity: s ∈ [0, 1), the fraction of each prunable parameter set to zero.
      filter_fn: which parameters are prunable (:func:`default_filter`).
      custom_sparsity_map: ``{name: s_l}`` overrides (names as :func:`param_name`); a listed
        parameter is prunable whatever ``filter_fn`` says.

    Returns:
      A pytree like ``params`` of Python floats s_l, ``None`` for parameters not pruned.
    """
    custom = dict(custom_sparsity_map or {})
    _check_custom(params, custom)

    def one(name, p):
        if name in custom:
            return float(custom[name])
        return float(sparsity) if filter_fn(name, p) else None

    return map_named(one, params)


def erk(params: Any, sparsity: float, *, filter_fn: FilterFn = default_filter,
        custom_sparsity_map: Optional[Mapping[str, float]] = None, erk_power_scale: float = 1.0) -> Any:
    """Erdős–Rényi-kernel sparsities: the density of a layer grows with (Σ dims)/(Π dims).

    Implements the ERK distribution of Evci et al. 2020 (RigL, arXiv 1911.11134, Sec. 3), used by
    JaxPruner (arXiv 2304.14082) as ``dist_type="erk"``:

        d_l = min(1, ε · ((Σ_i n_i^l) / (Π_i n_i^l))^p),   Σ_l d_l · N_l = (1 − s) · Σ_l N_l

    with n_i^l the dimensions of layer l, N_l = Π_i n_i^l its size, p = ``erk_power_scale``.
    Layers whose density would exceed 1 are made dense (d_l = 1) and ε is re-solved over the
    others, until no density exceeds 1.

    Args:
      params: parameter pytree (arrays or ShapeDtypeStructs).
      sparsity: s, the sparsity over all prunable parameters not listed in ``custom_sparsity_map``.
      filter_fn: which parameters are prunable.
      custom_sparsity_map: ``{name: s_l}`` fixed sparsities; those layers are left out of the
        budget Σ_l N_l.
      erk_power_scale: p (1 = ERK; 0 = uniform).

    Returns:
      A pytree like ``params`` of Python floats s_l = 1 − d_l, ``None`` for parameters not pruned.
    """
    custom = dict(custom_sparsity_map or {})
    _check_custom(params, custom)
    names, shapes = [], []
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = param_name(path)
        if name not in custom and filter_fn(name, p):
            names.append(name)
            shapes.append(tuple(np.shape(p)))
    sizes = np.array([np.prod(s) for s in shapes], np.float64)
    raw = np.array([(np.sum(s) / np.prod(s)) ** erk_power_scale for s in shapes], np.float64)
    dense = np.zeros(len(names), bool)
    epsilon = 0.0
    while len(names):
        budget = (1.0 - sparsity) * sizes.sum() - sizes[dense].sum()
        epsilon = budget / np.sum(raw[~dense] * sizes[~dense])
        too_dense = (~dense) & (epsilon * raw > 1.0)
        if not too_dense.any():
            break
        dense |= too_dense
    densities = {n: (1.0 if d else float(epsilon * r)) for n, d, r in zip(names, dense, raw)}

    def one(name, p):
        if name in custom:
            return float(custom[name])
        return 1.0 - densities[name] if name in densities else None

    return map_named(one, params)


def _check_custom(params, custom: Mapping[str, float]) -> None:
    known = {param_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    unknown = sorted(set(custom) - known)
    if unknown:
        raise ValueError(f"custom_sparsity_map names unknown parameters {unknown}; known: {sorted(known)}")
    for name, value in custom.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"custom sparsity of {name} must lie in [0, 1), got {value}")


DISTRIBUTIONS = {"uniform": uniform, "erk": erk}


# --------------------------------------------------------------------------- structures


class Unstructured(NamedTuple):
    """Any weight may be kept or dropped on its own."""


class NByM(NamedTuple):
    """At most N of every M consecutive weights along ``axis`` are kept (density N/M; the target sparsity is ignored)."""

    n: int
    m: int
    axis: int = -2  # the input-feature axis of haiku's Linear [in, out] and Conv2D [h, w, in, out] kernels


class Block(NamedTuple):
    """Weights are kept in blocks over the last two axes, scored by the mean score of the block."""

    block_shape: tuple = (2, 2)


class Channel(NamedTuple):
    """Whole slices along ``axis`` (an output channel by default) are kept or dropped, scored by their mean."""

    axis: int = -1


SparsityType = Union[Unstructured, NByM, Block, Channel]


def parse_sparsity_type(spec: Union[str, SparsityType, None]) -> SparsityType:
    """``"unstructured"``, ``"nm_2,4"``, ``"block_4,4"``, ``"channel_-1"`` (JaxPruner's strings) or an instance."""
    if spec is None or isinstance(spec, (Unstructured, NByM, Block, Channel)):
        return spec or Unstructured()
    text = spec.strip().lower()
    try:
        if text == "unstructured":
            return Unstructured()
        if text.startswith("nm_"):
            n, m = (int(v) for v in text[3:].split(","))
            if not 0 < n <= m:
                raise ValueError
            return NByM(n, m)
        if text.startswith("block_"):
            h, w = (int(v) for v in text[6:].split(","))
            if h < 1 or w < 1:
                raise ValueError
            return Block((h, w))
        if text.startswith("channel_"):
            return Channel(int(text[8:]))
    except ValueError:
        pass
    raise ValueError(f"unknown sparsity type {spec!r}; use 'unstructured', 'nm_N,M', 'block_H,W' or 'channel_AXIS'")


def _ordered_bits(x: Array) -> Array:
    """float32 → uint32 with the same order (−inf < … < −0 ≤ +0 < … < +inf)."""
    u = jax.lax.bitcast_convert_type(x.astype(jnp.float32) + 0.0, jnp.uint32)  # + 0.0: −0 becomes +0
    return jnp.where(u >> 31 == 1, ~u, u | jnp.uint32(0x80000000))


@jax.jit
def _keep_top(flat_scores: Array, k: Array) -> Array:
    """uint8 mask of the ``k`` (traced) highest scores of a 1-D array; ties broken by position, count exact.

    Selection without sorting (XLA's CPU sort takes ~0.5 s for 10⁵ elements): the k-th largest
    score's order-preserving 32-bit key T is built bit by bit from the top, keeping a bit when
    at least k keys are ≥ it (32 counting passes); keys > T are kept, then the first
    k − #{key > T} keys equal to T by position. Equal to a stable descending argsort's top k.
    """
    keys = _ordered_bits(flat_scores)
    k = jnp.asarray(k, jnp.int32)

    def add_bit(i, threshold):
        candidate = threshold | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        return jnp.where(jnp.sum(keys >= candidate, dtype=jnp.int32) >= k, candidate, threshold)

    threshold = jax.lax.fori_loop(0, 32, add_bit, jnp.uint32(0))
    greater = keys > threshold
    ties = keys == threshold
    room = k - jnp.sum(greater, dtype=jnp.int32)
    keep = greater | (ties & (jnp.cumsum(ties, dtype=jnp.int32) <= room))
    return (keep & (k > 0)).astype(jnp.uint8)


def _count(density: Array, size: int) -> Array:
    return jnp.clip(jnp.round(density * size), 0, size).astype(jnp.int32)


def topk_mask(scores: Array, density: Union[float, Array], structure: SparsityType = Unstructured()) -> Array:
    """The uint8 mask keeping the highest ``scores`` at ``density`` = 1 − sparsity, under ``structure``.

    Unstructured keeps exactly round(density · size) weights (ties broken by position), so
    the mask's density is the target up to 1/size. ``density`` may be traced. Scores of
    −inf are kept last (used to exclude weights from growth).

    Args:
      scores: ``[*shape]`` float scores (|w|, |w·g|, random, ...).
      density: the fraction of weights kept (ignored by :class:`NByM`, whose density is N/M).
      structure: :class:`Unstructured`, :class:`NByM`, :class:`Block` or :class:`Channel`.

    Returns:
      ``[*shape]`` uint8 mask, 1 = kept.
    """
    density = jnp.asarray(density, jnp.float32)
    if isinstance(structure, Unstructured) or scores.ndim == 0:
        return _keep_top(scores.reshape(-1), _count(density, scores.size)).reshape(scores.shape)
    if isinstance(structure, NByM):
        return _n_by_m_mask(scores, structure)
    if isinstance(structure, Block):
        return _block_mask(scores, density, structure)
    if isinstance(structure, Channel):
        axis = structure.axis % scores.ndim
        per_channel = jnp.mean(scores, axis=tuple(a for a in range(scores.ndim) if a != axis))
        keep = _keep_top(per_channel, _count(density, per_channel.size))
        shape = [1] * scores.ndim
        shape[axis] = -1
        return jnp.broadcast_to(keep.reshape(shape), scores.shape).astype(jnp.uint8)
    raise TypeError(f"unknown sparsity structure {structure!r}")


def _n_by_m_mask(scores: Array, structure: NByM) -> Array:
    axis = structure.axis % scores.ndim if scores.ndim >= 2 else 0
    moved = jnp.moveaxis(scores, axis, -1)
    length = moved.shape[-1]
    pad = (-length) % structure.m
    padded = jnp.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)], constant_values=-jnp.inf)
    groups = padded.reshape(*padded.shape[:-1], -1, structure.m)
    # rank of each weight in its group (0 = best; ties by position) from M×M comparisons, no sort
    a, b = groups[..., :, None], groups[..., None, :]  # a: weight i, b: weight j
    earlier = jnp.arange(structure.m)[None, :] < jnp.arange(structure.m)[:, None]  # j < i
    rank = jnp.sum((b > a) | ((b == a) & earlier), axis=-1)
    keep = (rank < structure.n).astype(jnp.uint8).reshape(padded.shape)[..., :length]
    return jnp.moveaxis(keep, -1, axis)


def _block_mask(scores: Array, density: Array, structure: Block) -> Array:
    bh, bw = structure.block_shape
    if scores.ndim < 2:
        return topk_mask(scores, density, Unstructured())
    h, w = scores.shape[-2:]
    ph, pw = (-h) % bh, (-w) % bw
    lead = scores.shape[:-2]
    pad = [(0, 0)] * len(lead) + [(0, ph), (0, pw)]
    padded = jnp.pad(scores, pad)
    count = jnp.pad(jnp.ones(scores.shape, jnp.float32), pad)
    nh, nw = (h + ph) // bh, (w + pw) // bw
    blocks = padded.reshape(*lead, nh, bh, nw, bw).sum(axis=(-3, -1))
    blocks = blocks / count.reshape(*lead, nh, bh, nw, bw).sum(axis=(-3, -1))  # mean over real entries
    keep = _keep_top(blocks.reshape(-1), _count(density, blocks.size)).reshape(blocks.shape)
    full = jnp.repeat(jnp.repeat(keep, bh, axis=-2), bw, axis=-1)
    return full[..., :h, :w].astype(jnp.uint8)


# --------------------------------------------------------------------------- masks


def pack_mask(mask: Array) -> Array:
    """Bit-packs a 0/1 mask: ``[*shape]`` → ``[⌈size / 8⌉]`` uint8 (8 weights per byte)."""
    return jnp.packbits(mask.reshape(-1).astype(jnp.uint8))


def unpack_mask(packed: Array, shape: Sequence[int]) -> Array:
    """Inverse of :func:`pack_mask`: ``[⌈size / 8⌉]`` uint8 → ``[*shape]`` uint8 0/1."""
    size = int(np.prod(shape))
    return jnp.unpackbits(packed, count=size).reshape(tuple(shape))


def apply_masks(params: Any, masks: Any) -> Any:
    """θ ⊙ m for every masked parameter; parameters whose mask is ``None`` pass unchanged."""
    return jax.tree.map(lambda m, p: p if m is None else p * m.astype(p.dtype), masks, params,
                        is_leaf=lambda x: x is None)


def mask_density(mask: Array) -> Array:
    """The fraction of ones in a (unpacked) mask."""
    return jnp.mean(mask.astype(jnp.float32))


class SparsitySummary(NamedTuple):
    """Sparsity of a parameter pytree: per-parameter fractions of zeros and the total."""

    per_param: dict  # {name: [] float32} fraction of exact zeros of each parameter
    total: Array  # [] float32 zeros over all counted parameters / their size
    total_prunable: Array  # [] float32 the same over the prunable (masked) parameters only


def summarize_sparsity(params: Any, masks: Any = None, *, filter_fn: FilterFn = default_filter) -> SparsitySummary:
    """Fractions of zero weights per parameter and in total (JaxPruner's ``summarize_sparsity``).

    "Prunable" parameters are those with a mask in ``masks`` (when given), else those passing ``filter_fn``.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if masks is not None:
        mask_leaves = jax.tree.leaves(jax.tree.map(lambda m: m is not None, masks, is_leaf=lambda x: x is None))
    else:
        mask_leaves = [bool(filter_fn(param_name(path), p)) for path, p in leaves]
    per_param, zeros, size, pzeros, psize = {}, 0.0, 0, 0.0, 0
    for (path, p), prunable in zip(leaves, mask_leaves):
        z = jnp.sum(p == 0).astype(jnp.float32)
        per_param[param_name(path)] = z / p.size
        zeros, size = zeros + z, size + p.size
        if prunable:
            pzeros, psize = pzeros + z, psize + p.size
    return SparsitySummary(per_param=per_param, total=jnp.asarray(zeros / max(size, 1), jnp.float32),
                           total_prunable=jnp.asarray(pzeros / max(psize, 1), jnp.float32))
