"""Multi-process (multi-host) data-parallel learning over ``jax.distributed``.

Every process runs its own actors and replay on its local devices; the learner update is
one program over the global mesh of all processes' devices: each process contributes its
own rows of the batch, gradients are ``pmean``'d across processes (the same
:func:`core.parallel.data_parallel` update as on one host, given the global mesh), and
every process receives the same new parameters. Launch one process per host (or several
on one machine, over loopback)::

    python -m benchmarks.bench_multihost --num-processes 2 --process-id 0 --coordinator 10.0.0.1:23456 &
    python -m benchmarks.bench_multihost --num-processes 2 --process-id 1 --coordinator 10.0.0.1:23456

(on one machine, ``python -m benchmarks.bench_multihost --spawn 2`` starts both). On CPU the
cross-process collectives are gloo's (``jax_cpu_collectives_implementation``); on GPU/TPU
hosts jax uses NCCL/ICI and, on managed clusters (SLURM, Cloud TPU), ``initialize()``
with no arguments finds the coordinator itself.

The pieces:

* :func:`initialize` — ``jax.distributed.initialize`` with CPU collectives switched on;
* :func:`global_mesh` — the 1-D ``"data"`` mesh over every process's devices;
* :func:`replicate` / :func:`shard` — process-local values to global arrays (replicated,
  or split on the leading axis, this process holding its own rows);
* :func:`to_local` — replicated global arrays back to arrays on this process's first device;
* :func:`process_rows` — this process's rows of a replicated all-gathered ``[global B]`` output;
* :func:`make_global_step` — wraps an update ``(replicated..., sharded...) -> replicated``
  so that it takes and returns process-local values (compiled once);
* :func:`fingerprint` — a digest of a pytree, to compare replicas across processes.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from core.parallel import AXIS


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *, cpu_collectives: str = "gloo",
               local_device_ids: Optional[Sequence[int]] = None) -> None:
    """Joins this process to the job (call before any other jax call that touches devices).

    Args:
      coordinator_address: ``host:port`` of process 0's coordinator service (None: detected
        on managed clusters).
      num_processes: processes in the job.
      process_id: this process's index in ``[0, num_processes)``.
      cpu_collectives: ``"gloo"`` (or ``"mpi"``) for cross-process collectives on CPU.
      local_device_ids: the local devices this process uses (default all).
    """
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids)


def global_mesh() -> Mesh:
    """A 1-D mesh (axis ``"data"``) over all devices of all processes, grouped by process."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (AXIS,))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Process-local values (identical on every process) as replicated global arrays."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def shard(tree: Any, mesh: Mesh) -> Any:
    """Process-local batches ``[b, ...]`` as global ``[num_processes·b, ...]`` arrays split on axis 0.

    Process p's rows occupy the positions of its devices in ``mesh`` (rows ``p·b`` to
    ``(p+1)·b`` for :func:`global_mesh`).
    """
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_local(tree: Any) -> Any:
    """Replicated global arrays as single-device arrays on this process's first local device."""
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def process_rows(x: Any, mesh: Mesh) -> Any:
    """This process's rows of a replicated ``[global B, ...]`` array gathered from :func:`shard`ed rows."""
    local = to_local(x)
    positions = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    per_device = local.shape[0] // mesh.devices.size
    return local[positions[0] * per_device:(positions[-1] + 1) * per_device]


def make_global_step(update: Callable[..., Any], mesh: Mesh, *, num_replicated: int) -> Callable[..., Any]:
    """``update(*replicated, *sharded) -> replicated outputs`` on process-local values.

    The returned function takes this process's values (the first ``num_replicated``
    arguments identical on every process, the rest this process's rows of the batch),
    runs the compiled ``update`` over the global mesh and returns its (replicated) outputs
    as arrays on this process's first device. ``update`` itself splits the batch across
    the mesh (e.g. the learner update of :func:`algorithms.dqn.agent.make_agent` built
    with ``mesh=global_mesh()``). Every process must call it the same number of times.
    """
    jitted = jax.jit(update)

    def step(*args):
        replicated = replicate(args[:num_replicated], mesh)
        sharded = shard(args[num_replicated:], mesh)
        return to_local(jitted(*replicated, *sharded))

    return step


def fingerprint(tree: Any) -> str:
    """SHA-256 of every leaf's bytes, shapes and dtypes (equal replicas give equal digests)."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.shape}{leaf.dtype}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()
