"""Beyond one device: data parallelism with JAX's own SPMD (``jax.sharding``).

Nothing here is home-made communication: a :class:`jax.sharding.Mesh` over a ``"batch"``
axis, batches placed with ``NamedSharding(mesh, P("batch"))``, parameters and optimizer
state replicated with ``NamedSharding(mesh, P())``. The same jitted step then runs on every
device and XLA inserts the gradient all-reduce. Multi-host runs call
``jax.distributed.initialize()`` first (see :func:`initialize_multihost`); each process
then feeds its own slice of the batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "batch_mesh",
    "initialize_multihost",
    "process_rows",
    "replicate",
    "shard_batch",
]

BATCH_AXIS = "batch"


def batch_mesh(n_devices: int | None = None, *, devices=None) -> Mesh:
    """A 1D mesh over the batch axis.

    Args:
        n_devices: how many devices to use (default: all visible devices,
            ``jax.devices()``, across all hosts).
        devices: an explicit device list (overrides ``n_devices``).

    Examples:
        >>> from tnjax import batch_mesh
        >>> batch_mesh(1).shape["batch"]
        1
    """
    if devices is None:
        available = jax.devices()
        if n_devices is None:
            n_devices = len(available)
        if not 1 <= n_devices <= len(available):
            raise ValueError(
                f"asked for {n_devices} devices but {len(available)} are visible "
                f"({available[0].platform}); on CPU, simulate more with "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N set before importing jax"
            )
        devices = available[:n_devices]
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def _check_splits(size: int, n: int) -> None:
    if size % n:
        raise ValueError(
            f"batch of {size} does not split over {n} devices: use a batch size that is a "
            f"multiple of {n}, or fewer devices (batch_mesh(n_devices=...))"
        )


def process_rows(mesh: Mesh, global_size: int) -> slice:
    """The rows of a global batch of ``global_size`` samples that this process feeds: those
    its own devices hold under the batch sharding (all rows in a single-process run).

    Examples:
        >>> from tnjax import batch_mesh, process_rows
        >>> process_rows(batch_mesh(1), 8)
        slice(0, 8, None)
    """
    _check_splits(global_size, mesh.shape[BATCH_AXIS])
    index = NamedSharding(mesh, P(BATCH_AXIS)).addressable_devices_indices_map((global_size,))
    spans = sorted(
        (sl[0].start or 0, global_size if sl[0].stop is None else sl[0].stop)
        for sl in index.values()
    )
    lo, hi = spans[0]
    for a, b in spans[1:]:
        if a != hi:
            raise ValueError(
                "this process's devices hold rows that are not contiguous in the batch mesh: "
                "build the mesh from jax.devices() in their default order"
            )
        hi = b
    return slice(lo, hi)


def shard_batch(x, mesh: Mesh, *, global_size: int | None = None):
    """Place a batch (any pytree of arrays with a leading batch axis) split over the mesh.

    In a single-process run ``x`` is the whole batch. In a multi-host run each process
    passes only its own rows (:func:`process_rows`) and the global batch of
    ``global_size`` samples is assembled with ``jax.make_array_from_process_local_data``.
    """
    n = mesh.shape[BATCH_AXIS]
    sharding = NamedSharding(mesh, P(BATCH_AXIS))

    def put(a):
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        if not a.ndim:
            raise ValueError("shard_batch needs arrays with a leading batch axis, got a scalar")
        if jax.process_count() > 1:
            shape = None if global_size is None else (global_size, *a.shape[1:])
            return jax.make_array_from_process_local_data(sharding, np.asarray(a), shape)
        _check_splits(a.shape[0], n)
        return jax.device_put(a, sharding)

    return jax.tree_util.tree_map(put, x)


def replicate(tree, mesh: Mesh):
    """Copy a pytree (parameters, optimizer state, a TreeTN) to every device of the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def initialize_multihost(**kwargs) -> None:
    """Start JAX's multi-host runtime: a thin call of ``jax.distributed.initialize``.

    On managed clusters (SLURM, Cloud TPU, Kubernetes with the usual variables) no
    arguments are needed; otherwise pass ``coordinator_address``, ``num_processes`` and
    ``process_id``. Call it before any other JAX call, on every host, then run the same
    script everywhere: :func:`batch_mesh` spans the devices of all hosts.
    Set ``TNJAX_DISTRIBUTED=1`` to have ``tnjax train`` call it for you.
    """
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        # CPU processes need a collectives backend for the gradient all-reduce
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)


def _distributed_requested() -> bool:
    return os.environ.get("TNJAX_DISTRIBUTED", "0") not in ("", "0", "false", "False")
