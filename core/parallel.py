"""Data-parallel learner updates over all local devices (``jax.shard_map``).

The batch is split along its leading axis across a 1-D device mesh (axis ``"data"``),
every device computes gradients on its shard, gradients (and reported metrics) are
averaged with ``lax.pmean``, and each device applies the same optimiser update to its
replica of the parameters. On one device this is the plain update; on D devices it gives
the same parameters up to float reassociation, because the mean of per-shard mean
gradients over equal shards is the full-batch mean gradient.

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` simulates 2 devices.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

AXIS = "data"


def local_mesh(num_devices: Optional[int] = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` local devices (all by default)."""
    devices = jax.local_devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (AXIS,))


def data_parallel(
    update: Callable[..., Any], mesh: Mesh, *, num_replicated: int, num_sharded: int
) -> Callable[..., Any]:
    """Wraps ``update(*replicated, *sharded)`` to run data-parallel over ``mesh``.

    ``update`` must average its gradients and metrics with ``jax.lax.pmean(x, AXIS)``
    (:func:`pmean` does nothing outside a mapped context, so the same ``update`` also runs
    unwrapped). The first ``num_replicated`` arguments (train state, keys, scalars) are
    replicated; the last ``num_sharded`` (batches) are split on their leading axis, which
    must be divisible by the number of devices. Outputs are replicated.
    """
    in_specs = (P(),) * num_replicated + (P(AXIS),) * num_sharded
    return jax.shard_map(update, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)


def pmean(tree: Any, axis_name: str = AXIS) -> Any:
    """``lax.pmean`` over ``axis_name`` when inside a mapped context, identity otherwise."""
    try:
        return jax.lax.pmean(tree, axis_name)
    except NameError:
        return tree


def all_gather(x: Any, axis_name: str = AXIS) -> Any:
    """Per-shard ``[b, ...]`` arrays concatenated to the full ``[D·b, ...]`` batch on every
    device (``lax.all_gather(tiled=True)``) inside a mapped context; identity outside."""
    try:
        return jax.lax.all_gather(x, axis_name, tiled=True)
    except NameError:
        return x
