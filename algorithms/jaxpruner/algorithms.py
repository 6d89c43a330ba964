"""The pruning and sparse-training algorithms of JaxPruner, as updaters wrapping any optax optimizer.

Lee et al. 2023, "JaxPruner: A concise library for sparsity research", arXiv 2304.14082.
An updater is a frozen dataclass of static settings whose methods are pure functions:

* ``wrap_optax(tx)`` → an optax ``GradientTransformation`` whose state is a
  :class:`SparseState` (the masks, the inner optimizer's state, the step count and a PRNG
  key), so that checkpoints of the optimizer state carry the masks. Its ``update`` runs the
  inner optimizer, recomputes the masks on the schedule's steps (inside ``lax.cond``), and
  returns updates u' such that θ + u' = (θ + u) ⊙ m: the parameters stay exactly sparse.
* ``pre_forward_update(params, opt_state)``: the parameters the forward pass should use
  (θ ⊙ m with a straight-through gradient for the STE algorithms; θ otherwise).
* ``post_gradient_update(params, opt_state)``: θ ⊙ m (a no-op after ``wrap_optax``'s update
  for the non-STE algorithms; needed once after ``init`` for sparse training).
* ``instant_sparsify(params, grads=None)``: one-shot masks at the target sparsities and the
  masked parameters.

=========================  ====================================  ==============================================
algorithm                  score of a weight                     notes
=========================  ====================================  ==============================================
``no_prune``               —                                     no masks at all
``magnitude``              |θ|                                   Zhu & Gupta 2017 with a polynomial schedule
``random``                 u ~ U(0, 1) on active weights
``saliency``               |θ · ∂L/∂θ|                           Molchanov et al. 2017 (first-order Taylor)
``magnitude_ste``          |θ| before every forward              dense θ kept; ∂L/∂θ passes straight through m
``random_ste``             U(0, 1) before every forward          idem
``global_magnitude``       |θ| / ‖θ_l‖₂, one top-k over layers   layer sparsities follow from the global top-k
``global_saliency``        |θ·g| / ‖θ_l·g_l‖₂, one top-k
``static_sparse``          random at initialisation              masks fixed (NoUpdateSchedule)
``set``                    drop lowest |θ|, grow at random       Mocanu et al. 2018, arXiv 1707.04780
``rigl``                   drop lowest |θ|, grow highest |g|     Evci et al. 2020, arXiv 1911.11134
=========================  ====================================  ==============================================

SET and RigL drop f_t · |active| weights per layer (f_t on a cosine decay), regrow as many,
set the regrown weights to 0 and reset their optimizer moments, so each layer's sparsity is
constant. Vendorable: imports jax, optax and this directory's ``sparsity``/``schedules``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from . import schedules as schedules_lib
from . import sparsity as sp

Array = jax.Array


class SparseState(NamedTuple):
    """The state of a wrapped optimizer (``updater.wrap_optax(tx)``)."""

    masks: Any  # pytree like params: [*shape] uint8 (bit-packed: [⌈size/8⌉] uint8) per prunable param, None elsewhere
    inner_state: Any  # the wrapped optax transformation's state
    count: Array  # [] int32 optimizer updates taken (the schedules' step t)
    key: Array  # [2] uint32 key stream of the random masks (random, static sparse, SET growth, random STE)


class MaskUpdate(NamedTuple):
    """New masks and the weights that were (re)grown (SET/RigL; zeros for the other algorithms)."""

    masks: Any  # pytree like params: [*shape] uint8, None for unprunable params
    regrown: Any  # pytree like params: [*shape] bool, None for unprunable params


def _is_none(x) -> bool:
    return x is None


def _map_masked(fn: Callable, masks: Any, *trees: Any) -> Any:
    """``fn(mask, *leaves)`` for masked parameters, ``None`` for the others (masks lead the structure)."""
    return jax.tree.map(lambda m, *xs: None if m is None else fn(m, *xs), masks, *trees, is_leaf=_is_none)


def _as_key(seed: Union[int, Array]) -> Array:
    if isinstance(seed, int):
        return jax.random.PRNGKey(seed)
    return jnp.asarray(seed, jnp.uint32)


def reset_moments(inner_state: Any, regrown: Any, params_treedef) -> Any:
    """Zeroes the optimizer moments of regrown weights: every sub-pytree of ``inner_state`` shaped like the params.

    Adam's μ and ν (and any other per-parameter statistic) are found by their tree structure.
    """
    def params_like(x) -> bool:
        return not isinstance(x, (jax.Array, float, int)) and jax.tree.structure(x) == params_treedef

    def reset(sub):
        if not params_like(sub):
            return sub
        return jax.tree.map(lambda r, v: v if r is None else jnp.where(r, jnp.zeros_like(v), v), regrown, sub,
                            is_leaf=_is_none)

    return jax.tree.map(reset, inner_state, is_leaf=params_like)


@dataclasses.dataclass(frozen=True)
class BaseUpdater:
    """A pruning algorithm: scores weights and keeps the best under a schedule, distribution and structure.

    Subclasses define :meth:`scores` (or override :meth:`update_masks`); class attributes say
    whether the algorithm starts sparse (sparse training) or keeps dense weights (STE).
    """

    scheduler: schedules_lib.Schedule = schedules_lib.NoUpdateSchedule()
    """When masks are updated and at which sparsity (:mod:`algorithms.jaxpruner.schedules`)."""
    sparsity_distribution_fn: Callable = functools.partial(sp.uniform, sparsity=0.0)
    """``params -> pytree of per-layer target sparsities`` (None for unpruned params): ``sparsity.uniform`` / ``erk``."""
    sparsity_type: sp.SparsityType = sp.Unstructured()
    """Unstructured, NByM, Block or Channel."""
    rng_seed: Union[int, Any] = 8
    """Seed (or PRNG key) of the random masks."""
    bit_packing: bool = False
    """Store masks bit-packed (8 weights per byte) in the optimizer state rather than one uint8 per weight."""

    starts_sparse: ClassVar[bool] = False  # initial masks at the target sparsity (sparse training)
    straight_through: ClassVar[bool] = False  # dense weights kept; masks applied in the forward pass
    needs_grads: ClassVar[bool] = False  # scores read gradients
    regrows: ClassVar[bool] = False  # mask updates regrow weights (SET, RigL): their moments are reset

    # ----------------------------------------------------------------- targets and masks

    def target_sparsities(self, params: Any) -> Any:
        """Per-parameter final sparsities s_l (Python floats), ``None`` for parameters never pruned."""
        return self.sparsity_distribution_fn(params)

    def scores(self, params: Any, grads: Any, masks: Any, key: Array) -> Any:
        """Per-weight scores of the masked parameters (higher = kept)."""
        raise NotImplementedError

    def get_initial_masks(self, params: Any, key: Optional[Array] = None) -> Any:
        """All ones (dense until the schedule prunes), or random at the target sparsity for sparse training."""
        targets = self.target_sparsities(params)
        if not self.starts_sparse:
            return _map_masked(lambda s, p: jnp.ones(jnp.shape(p), jnp.uint8), targets, params)
        key = _as_key(self.rng_seed) if key is None else key
        leaves = jax.tree.leaves(jax.tree.map(lambda s: s is not None, targets, is_leaf=_is_none))
        keys = iter(jax.random.split(key, max(len(leaves), 1)))
        return _map_masked(lambda s, p: sp.topk_mask(jax.random.uniform(next(keys), jnp.shape(p)), 1.0 - s,
                                                      self.sparsity_type), targets, params)

    def update_masks(self, params: Any, grads: Any, masks: Any, count: Array, key: Array) -> MaskUpdate:
        """Masks at step ``count``: the top scores of each layer at density 1 − schedule.sparsity(s_l, count)."""
        targets = self.target_sparsities(params)
        scores = self.scores(params, grads, masks, key)
        new = _map_masked(lambda s, score: sp.topk_mask(score, 1.0 - self.scheduler.sparsity(s, count),
                                                         self.sparsity_type), targets, scores)
        return MaskUpdate(masks=new, regrown=_map_masked(lambda m: jnp.zeros(m.shape, bool), new))

    # ----------------------------------------------------------------- storage

    def _store(self, masks: Any) -> Any:
        return _map_masked(sp.pack_mask, masks) if self.bit_packing else masks

    def _load(self, stored: Any, params: Any) -> Any:
        if not self.bit_packing:
            return stored
        return _map_masked(lambda m, p: sp.unpack_mask(m, jnp.shape(p)), stored, params)

    def masks_of(self, opt_state: SparseState, params: Any) -> Any:
        """The unpacked uint8 masks held by a wrapped optimizer's state."""
        return self._load(opt_state.masks, params)

    # ----------------------------------------------------------------- the optax wrapper

    def wrap_optax(self, inner: optax.GradientTransformation) -> optax.GradientTransformation:
        """``inner`` with masks: init → :class:`SparseState`; update keeps θ + u' = (θ + u) ⊙ m.

        ``update(grads, state, params)`` needs ``params``. On the schedule's mask-update steps
        the masks are recomputed from θ + u (and ``grads``, for saliency and RigL); SET/RigL's
        regrown weights start at 0 with their moments in ``inner``'s state reset.
        """
        base_key = _as_key(self.rng_seed)

        def init_fn(params):
            init_key, key = jax.random.split(base_key)
            masks = self.get_initial_masks(params, init_key)
            return SparseState(masks=self._store(masks), inner_state=inner.init(params),
                               count=jnp.zeros((), jnp.int32), key=key)

        def update_fn(updates, state: SparseState, params=None):
            if params is None:
                raise ValueError("the pruning wrapper needs params: call update(grads, state, params)")
            grads = updates
            updates, inner_state = inner.update(updates, state.inner_state, params)
            masks = self._load(state.masks, params)
            key, mask_key = jax.random.split(state.key)
            if all(m is None for m in jax.tree.leaves(masks, is_leaf=_is_none)):
                return updates, state._replace(inner_state=inner_state, count=state.count + 1, key=key)
            new_params = optax.apply_updates(params, updates)
            no_change = MaskUpdate(masks=masks, regrown=_map_masked(lambda m: jnp.zeros(m.shape, bool), masks))
            change = jax.lax.cond(self.scheduler.is_mask_update_iter(state.count),
                                  lambda: self.update_masks(new_params, grads, masks, state.count, mask_key),
                                  lambda: no_change)
            if self.regrows:
                inner_state = reset_moments(inner_state, change.regrown, jax.tree.structure(params))
            if not self.straight_through:
                # θ + u' = (θ + u) ⊙ m, and regrown weights start at 0: u' = −θ wherever the result is 0.
                updates = jax.tree.map(
                    lambda m, r, u, p: u if m is None else jnp.where((m > 0) & ~r, u, -p),
                    change.masks, change.regrown, updates, params, is_leaf=_is_none)
            return updates, SparseState(masks=self._store(change.masks), inner_state=inner_state,
                                        count=state.count + 1, key=key)

        return optax.GradientTransformation(init_fn, update_fn)

    def pre_forward_update(self, params: Any, opt_state: SparseState) -> Any:
        """The parameters of the forward pass: θ (already sparse), or θ ⊙ m with a straight-through gradient (STE)."""
        del opt_state
        return params

    def post_gradient_update(self, params: Any, opt_state: SparseState) -> Any:
        """θ ⊙ m with the masks of ``opt_state`` (STE algorithms keep θ dense: returned unchanged)."""
        if self.straight_through:
            return params
        return sp.apply_masks(params, self.masks_of(opt_state, params))

    def instant_sparsify(self, params: Any, grads: Any = None, key: Optional[Array] = None):
        """One-shot pruning to the target sparsities now: returns ``(sparse params, masks)``."""
        key = _as_key(self.rng_seed) if key is None else key
        targets = self.target_sparsities(params)
        ones = _map_masked(lambda s, p: jnp.ones(jnp.shape(p), jnp.uint8), targets, params)
        if self.starts_sparse:
            masks = self.get_initial_masks(params, key)
        else:
            scores = self.scores(params, grads, ones, key)
            masks = _map_masked(lambda s, score: sp.topk_mask(score, 1.0 - s, self.sparsity_type), targets, scores)
        return sp.apply_masks(params, masks), masks


# --------------------------------------------------------------------------- the algorithms


@dataclasses.dataclass(frozen=True)
class NoPruning(BaseUpdater):
    """Dense training through the same interface: no masks, the inner optimizer unchanged."""

    def target_sparsities(self, params):
        return jax.tree.map(lambda p: None, params)

    def scores(self, params, grads, masks, key):
        return jax.tree.map(lambda p: None, params)


@dataclasses.dataclass(frozen=True)
class MagnitudePruning(BaseUpdater):
    """Keeps the largest |θ| of each layer (gradual magnitude pruning with a PolynomialSchedule)."""

    def scores(self, params, grads, masks, key):
        return _map_masked(lambda m, p: jnp.abs(p), masks, params)


def _random_active(masks, key):
    leaves = jax.tree.leaves(jax.tree.map(lambda m: m is not None, masks, is_leaf=_is_none))
    keys = iter(jax.random.split(key, max(len(leaves), 1)))
    # Active weights get U(0, 1) scores, already-pruned ones −1: pruned weights stay pruned.
    return _map_masked(lambda m: jnp.where(m > 0, jax.random.uniform(next(keys), m.shape), -1.0), masks)


@dataclasses.dataclass(frozen=True)
class RandomPruning(BaseUpdater):
    """Prunes active weights uniformly at random."""

    def scores(self, params, grads, masks, key):
        return _random_active(masks, key)


@dataclasses.dataclass(frozen=True)
class SaliencyPruning(BaseUpdater):
    """Keeps the largest |θ · g| (first-order Taylor saliency; g the gradient of the step)."""

    needs_grads: ClassVar[bool] = True

    def scores(self, params, grads, masks, key):
        if grads is None:
            raise ValueError("saliency scores need gradients: pass grads")
        return _map_masked(lambda m, p, g: jnp.abs(p * g), masks, params, grads)


def _straight_through(params, masks):
    """θ ⊙ m in the forward pass, ∂/∂θ = ∂/∂(θ ⊙ m): θ + stop_gradient(θ ⊙ m − θ)."""
    return jax.tree.map(lambda m, p: p if m is None else p + jax.lax.stop_gradient(p * m.astype(p.dtype) - p),
                        masks, params, is_leaf=_is_none)


@dataclasses.dataclass(frozen=True)
class SteMagnitudePruning(MagnitudePruning):
    """Straight-through magnitude pruning: masks from |θ| before every forward, dense θ trained."""

    straight_through: ClassVar[bool] = True

    def forward_masks(self, params, opt_state: SparseState):
        targets = self.target_sparsities(params)
        return _map_masked(lambda s, p: sp.topk_mask(jnp.abs(p), 1.0 - self.scheduler.sparsity(s, opt_state.count),
                                                      self.sparsity_type), targets, params)

    def pre_forward_update(self, params, opt_state):
        return _straight_through(params, self.forward_masks(params, opt_state))


@dataclasses.dataclass(frozen=True)
class SteRandomPruning(RandomPruning):
    """Straight-through random pruning: a fresh random mask before every forward, dense θ trained."""

    straight_through: ClassVar[bool] = True

    def forward_masks(self, params, opt_state: SparseState):
        targets = self.target_sparsities(params)
        key = jax.random.fold_in(opt_state.key, opt_state.count)
        leaves = jax.tree.leaves(jax.tree.map(lambda s: s is not None, targets, is_leaf=_is_none))
        keys = iter(jax.random.split(key, max(len(leaves), 1)))
        return _map_masked(lambda s, p: sp.topk_mask(jax.random.uniform(next(keys), jnp.shape(p)),
                                                      1.0 - self.scheduler.sparsity(s, opt_state.count),
                                                      self.sparsity_type), targets, params)

    def scores(self, params, grads, masks, key):
        return _map_masked(lambda m: jax.random.uniform(key, m.shape), masks)

    def pre_forward_update(self, params, opt_state):
        return _straight_through(params, self.forward_masks(params, opt_state))


def _layer_normalised(scores):
    return _map_masked(lambda s: s / (jnp.sqrt(jnp.sum(jnp.square(s))) + 1e-12), scores)


@dataclasses.dataclass(frozen=True)
class GlobalMagnitudePruning(MagnitudePruning):
    """One top-k of |θ| over all prunable layers (each layer's scores divided by their L2 norm first).

    ``sparsity_distribution_fn`` only marks the prunable parameters and the global target s
    (every prunable parameter must have the same target).
    """

    normalize_scores: bool = True
    """Divide each layer's scores by their L2 norm before the global top-k (False: raw scores)."""

    def update_masks(self, params, grads, masks, count, key):
        targets = self.target_sparsities(params)
        values = {s for s in jax.tree.leaves(targets)}
        if len(values) > 1:
            raise ValueError(f"global pruning takes one target sparsity, got per-layer targets {sorted(values)}")
        scores = self.scores(params, grads, masks, key)
        if self.normalize_scores:
            scores = _layer_normalised(scores)
        flat, treedef = jax.tree.flatten(scores, is_leaf=_is_none)
        present = [s for s in flat if s is not None]
        if not present:
            return MaskUpdate(masks=masks, regrown=masks)
        target = values.pop()
        joined = jnp.concatenate([s.reshape(-1) for s in present])
        keep = sp.topk_mask(joined, 1.0 - self.scheduler.sparsity(target, count))
        out, start = [], 0
        for s in flat:
            if s is None:
                out.append(None)
            else:
                out.append(keep[start:start + s.size].reshape(s.shape))
                start += s.size
        new = jax.tree.unflatten(treedef, out)
        return MaskUpdate(masks=new, regrown=_map_masked(lambda m: jnp.zeros(m.shape, bool), new))

    def instant_sparsify(self, params, grads=None, key=None):
        key = _as_key(self.rng_seed) if key is None else key
        ones = _map_masked(lambda s, p: jnp.ones(jnp.shape(p), jnp.uint8), self.target_sparsities(params), params)
        final = dataclasses.replace(self, scheduler=schedules_lib.NoUpdateSchedule())
        masks = final.update_masks(params, grads, ones, jnp.zeros((), jnp.int32), key).masks
        return sp.apply_masks(params, masks), masks


@dataclasses.dataclass(frozen=True)
class GlobalSaliencyPruning(GlobalMagnitudePruning):
    """One top-k of |θ · g| over all prunable layers."""

    needs_grads: ClassVar[bool] = True

    def scores(self, params, grads, masks, key):
        return SaliencyPruning.scores(self, params, grads, masks, key)


@dataclasses.dataclass(frozen=True)
class StaticRandomSparse(BaseUpdater):
    """Sparse training with a fixed random mask drawn at initialisation."""

    starts_sparse: ClassVar[bool] = True

    def scores(self, params, grads, masks, key):
        return _random_active(masks, key)


@dataclasses.dataclass(frozen=True)
class SET(BaseUpdater):
    """Sparse Evolutionary Training: drop the lowest-|θ| fraction f_t of each layer's active weights, regrow randomly.

    Mocanu et al. 2018, arXiv 1707.04780; f_t = ``drop_fraction_fn(t)`` (a cosine decay by default).
    """

    drop_fraction_fn: Callable = functools.partial(schedules_lib.cosine_drop_fraction, initial=0.1,
                                                   decay_steps=100_000)
    """``t -> f_t``: the fraction of active weights dropped (and regrown) at a mask update."""

    starts_sparse: ClassVar[bool] = True
    regrows: ClassVar[bool] = True

    def scores(self, params, grads, masks, key):
        return _map_masked(lambda m, p: jnp.abs(p), masks, params)

    def grow_scores(self, params, grads, masks, key):
        leaves = jax.tree.leaves(jax.tree.map(lambda m: m is not None, masks, is_leaf=_is_none))
        keys = iter(jax.random.split(key, max(len(leaves), 1)))
        return _map_masked(lambda m: jax.random.uniform(next(keys), m.shape), masks)

    def update_masks(self, params, grads, masks, count, key):
        if not isinstance(self.sparsity_type, sp.Unstructured):
            raise ValueError(f"{type(self).__name__} supports unstructured sparsity only")
        fraction = self.drop_fraction_fn(count)
        grow = self.grow_scores(params, grads, masks, key)

        def drop_and_grow(m, p, g):
            active = m.reshape(-1) > 0
            n_active = jnp.sum(active)
            n_drop = jnp.round(fraction * n_active).astype(jnp.int32)
            kept = sp._keep_top(jnp.where(active, jnp.abs(p.reshape(-1)), -jnp.inf), n_active - n_drop) > 0
            grown = sp._keep_top(jnp.where(kept, -jnp.inf, g.reshape(-1)), n_drop) > 0
            return ((kept | grown).astype(jnp.uint8).reshape(m.shape), grown.reshape(m.shape))

        pairs = _map_masked(drop_and_grow, masks, params, grow)
        is_pair = lambda x: isinstance(x, tuple) or x is None  # noqa: E731
        return MaskUpdate(masks=jax.tree.map(lambda x: None if x is None else x[0], pairs, is_leaf=is_pair),
                          regrown=jax.tree.map(lambda x: None if x is None else x[1], pairs, is_leaf=is_pair))


@dataclasses.dataclass(frozen=True)
class RigL(SET):
    """Rigging the Lottery: drop the lowest-|θ| fraction of active weights, regrow where |g| is largest.

    Evci et al. 2020, arXiv 1911.11134; g is the dense gradient of the step (the gradient of
    the masked forward pass exists for every weight).
    """

    needs_grads: ClassVar[bool] = True

    def grow_scores(self, params, grads, masks, key):
        if grads is None:
            raise ValueError("RigL grows by gradient magnitude: pass grads")
        return _map_masked(lambda m, g: jnp.abs(g), masks, grads)
