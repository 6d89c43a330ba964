"""JaxPruner's entry points: switching from the original library is a change of import.

Lee et al. 2023, "JaxPruner: A concise library for sparsity research", arXiv 2304.14082.

    from algorithms.jaxpruner import api as jaxpruner

    updater = jaxpruner.create_updater_from_config(
        dict(algorithm="magnitude", dist_type="erk", sparsity=0.9,
             update_freq=100, update_start_step=200, update_end_step=1000))
    tx = updater.wrap_optax(optax.adam(1e-3))          # state holds the masks
    opt_state = tx.init(params)
    ...
    forward_params = updater.pre_forward_update(params, opt_state)   # STE algorithms mask here
    grads = jax.grad(loss)(forward_params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)                    # exactly sparse
    params = updater.post_gradient_update(params, opt_state)         # idempotent θ ⊙ m
    jaxpruner.summarize_sparsity(params, only_total_sparsity=True)

Vendorable: imports jax, optax and this directory's ``algorithms``/``sparsity``/``schedules``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Type

import jax

from . import schedules
from . import sparsity as sp
from .algorithms import (  # noqa: F401  (re-exported: the library's public names)
    SET, BaseUpdater, GlobalMagnitudePruning, GlobalSaliencyPruning, MagnitudePruning, NoPruning, RandomPruning,
    RigL, SaliencyPruning, SparseState, StaticRandomSparse, SteMagnitudePruning, SteRandomPruning,
)
from .schedules import (  # noqa: F401
    NoUpdateSchedule, OneShotSchedule, PeriodicSchedule, PolynomialSchedule,
)
from .sparsity import Block, Channel, NByM, Unstructured, apply_masks, erk, uniform  # noqa: F401

ALGORITHM_REGISTRY: dict[str, Type[BaseUpdater]] = {
    "no_prune": NoPruning,
    "magnitude": MagnitudePruning,
    "random": RandomPruning,
    "saliency": SaliencyPruning,
    "magnitude_ste": SteMagnitudePruning,
    "random_ste": SteRandomPruning,
    "global_magnitude": GlobalMagnitudePruning,
    "global_saliency": GlobalSaliencyPruning,
    "static_sparse": StaticRandomSparse,
    "rigl": RigL,
    "set": SET,
}
"""name -> updater class; extend with :func:`register_algorithm`."""

CONFIG_KEYS = ("algorithm", "dist_type", "sparsity", "update_freq", "update_start_step", "update_end_step",
               "sparsity_type", "drop_fraction", "rng_seed", "filter_fn", "custom_sparsity_map", "bit_packing")
"""The keys :func:`create_updater_from_config` reads; any other key is passed to the updater class."""


def all_algorithm_names() -> tuple[str, ...]:
    """Every registered algorithm name."""
    return tuple(ALGORITHM_REGISTRY)


def register_algorithm(name: str, algorithm: Type[BaseUpdater]) -> None:
    """Makes ``algorithm`` (a :class:`BaseUpdater` subclass) available to :func:`create_updater_from_config`."""
    if not (isinstance(algorithm, type) and issubclass(algorithm, BaseUpdater)):
        raise TypeError(f"{algorithm!r} is not a BaseUpdater subclass")
    ALGORITHM_REGISTRY[name] = algorithm


def _as_dict(config: Any) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):  # ml_collections.ConfigDict
        return dict(config.to_dict())
    if dataclasses.is_dataclass(config):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return dict(vars(config))


def create_updater_from_config(sparsity_config: Any) -> BaseUpdater:
    """An updater from a plain config (dict, dataclass, namespace or ``ml_collections.ConfigDict``).

    Keys (JaxPruner's):

    * ``algorithm``: one of :func:`all_algorithm_names` (required).
    * ``sparsity``: the target sparsity s ∈ [0, 1) (required unless ``no_prune``).
    * ``dist_type``: ``"erk"`` or ``"uniform"`` (default ``"erk"``).
    * ``update_start_step``, ``update_end_step``, ``update_freq``: no start → NoUpdateSchedule;
      start = end → OneShotSchedule(end); otherwise PolynomialSchedule(freq, start, end)
      (for SET/RigL only its update steps matter: they keep the sparsity; ``static_sparse``
      never updates its masks).
    * ``sparsity_type``: ``"unstructured"`` (default), ``"nm_N,M"``, ``"block_H,W"``, ``"channel_AXIS"``.
    * ``drop_fraction``: SET/RigL's initial drop fraction (0.1), cosine-decayed to 0 at ``update_end_step``.
    * ``rng_seed``: int or PRNG key (8). ``filter_fn(name, param)``: which params are prunable.
      ``custom_sparsity_map``: ``{name: s_l}``. ``bit_packing``: store masks 8 per byte.

    Raises:
      ValueError: naming the bad key and the allowed values.
    """
    config = _as_dict(sparsity_config)
    name = config.pop("algorithm", None)
    if name not in ALGORITHM_REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {all_algorithm_names()} "
                         "or register it with register_algorithm()")
    cls = ALGORITHM_REGISTRY[name]
    sparsity = config.pop("sparsity", None)
    dist_type = config.pop("dist_type", "erk")
    start = config.pop("update_start_step", None)
    end = config.pop("update_end_step", None)
    freq = config.pop("update_freq", None)
    drop_fraction = config.pop("drop_fraction", 0.1)
    filter_fn = config.pop("filter_fn", None) or sp.default_filter
    custom = config.pop("custom_sparsity_map", None)
    kwargs = {k: config.pop(k) for k in ("rng_seed", "bit_packing") if k in config}
    kwargs["sparsity_type"] = sp.parse_sparsity_type(config.pop("sparsity_type", None))
    if cls is NoPruning:
        return NoPruning(**kwargs, **config)
    if sparsity is None or not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be a float in [0, 1), got {sparsity!r}")
    if dist_type not in sp.DISTRIBUTIONS:
        raise ValueError(f"dist_type {dist_type!r} is not supported; use 'erk' or 'uniform'")
    if name.startswith("global_"):
        distribution = functools.partial(sp.uniform, sparsity=float(sparsity), filter_fn=filter_fn)
    else:
        distribution = functools.partial(sp.DISTRIBUTIONS[dist_type], sparsity=float(sparsity), filter_fn=filter_fn,
                                         custom_sparsity_map=custom)
    if start is None or cls is StaticRandomSparse:
        scheduler = schedules.NoUpdateSchedule()
    elif end is None:
        if freq is None:
            raise ValueError("update_freq is required with update_start_step and no update_end_step")
        scheduler = schedules.PeriodicSchedule(update_freq=int(freq), update_start_step=int(start))
    elif int(start) == int(end):
        scheduler = schedules.OneShotSchedule(target_step=int(end))
    else:
        if freq is None or int(freq) < 1 or int(end) < int(start):
            raise ValueError(f"need update_freq >= 1 and update_end_step >= update_start_step, "
                             f"got freq={freq}, start={start}, end={end}")
        scheduler = schedules.PolynomialSchedule(update_freq=int(freq), update_start_step=int(start),
                                                 update_end_step=int(end))
    if issubclass(cls, SET):
        kwargs["drop_fraction_fn"] = functools.partial(schedules.cosine_drop_fraction, initial=float(drop_fraction),
                                                       decay_steps=int(end) if end is not None else 1 << 30)
    return cls(scheduler=scheduler, sparsity_distribution_fn=distribution, **kwargs, **config)


def summarize_sparsity(params: Any, only_total_sparsity: bool = False, masks: Any = None,
                       filter_fn=sp.default_filter) -> dict:
    """``{"_total_sparsity": s, "_prunable_sparsity": s_p, name: s_l ...}``: fractions of exact zeros.

    ``only_total_sparsity`` keeps the two totals. Prunable parameters are those with a mask in
    ``masks`` when given, else those passing ``filter_fn``.
    """
    summary = sp.summarize_sparsity(params, masks, filter_fn=filter_fn)
    out = {"_total_sparsity": summary.total, "_prunable_sparsity": summary.total_prunable}
    if not only_total_sparsity:
        out.update(summary.per_param)
    return out


def mask_bytes(opt_state: SparseState) -> int:
    """Bytes the masks of a wrapped optimizer's state occupy."""
    return int(sum(m.size * m.dtype.itemsize for m in jax.tree.leaves(opt_state.masks)))
