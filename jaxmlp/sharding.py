"""Data parallelism over a device mesh: the one place that lays arrays on devices.

jaxmlp uses ``jax.jit`` with :class:`jax.sharding.NamedSharding` (GSPMD), not ``pmap``:
a batch's arrays are split along their leading axis (graphs, nodes, edges) over the
``"data"`` axis of a 1-D mesh, params and optimizer state are replicated, and the
compiler inserts the communication (gathers of neighbor features, the all-reduce of the
gradients). The program is the 1-device program; only the layout changes, so results
equal the 1-device run up to the order of floating-point sums.

Static shapes stay static: :func:`sizes_for_devices` rounds every padding size to a
multiple of the device count once, when the buckets are made, so no batch recompiles.
Multi-host runs call :func:`initialize_distributed` (``jax.distributed.initialize()``)
first; :func:`is_writer` is True on process 0 only, which alone writes files.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmlp.padding import PaddingSizes

AXIS = "data"


def resolve_devices(devices: int | None) -> int:
    """The device count to use: ``None`` means every device jax sees (all hosts)."""
    available = jax.device_count()
    if devices is None:
        return available
    if isinstance(devices, bool) or int(devices) != devices or devices < 1:
        raise ValueError(f"devices must be a positive integer or None, got {devices!r}")
    if devices > available:
        raise ValueError(
            f"devices={devices} but jax sees {available} "
            f"({jax.default_backend()}); on CPU, fake devices with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N set before jax is imported"
        )
    return int(devices)


def data_mesh(devices: int | None) -> Mesh | None:
    """A 1-D ``("data",)`` mesh over the first ``devices`` devices; None for one device
    (today's single-device programs, unchanged)."""
    n = resolve_devices(devices)
    if n == 1:
        return None
    return Mesh(np.array(jax.devices()[:n]), (AXIS,))


def replica_mesh(n_replicas: int, devices: int | None = None) -> Mesh | None:
    """A mesh for ``n_replicas`` independent replicas: ``devices`` of them (None: the
    most devices that divide ``n_replicas``); None when that is one device."""
    if devices is None:
        devices = max(
            d for d in range(1, jax.device_count() + 1) if n_replicas % d == 0
        )
    n = resolve_devices(devices)
    if n_replicas % n:
        raise ValueError(f"{n_replicas} replicas cannot be split over {n} devices")
    return data_mesh(n)


def sizes_for_devices(sizes: PaddingSizes, n_devices: int) -> PaddingSizes:
    """``sizes`` with nodes, edges and graphs rounded up to multiples of ``n_devices``
    (the extra graphs are empty padding graphs)."""
    if n_devices == 1:
        return sizes
    up = lambda n: int(math.ceil(n / n_devices) * n_devices)
    return PaddingSizes(up(sizes.n_nodes), up(sizes.n_edges), up(sizes.n_graphs))


def shard_leading(tree, mesh: Mesh | None):
    """Every array of ``tree`` split along axis 0 over the mesh (scalars replicated)."""
    if mesh is None:
        return tree
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda x: jax.device_put(x, split if np.ndim(x) else whole), tree
    )


def replicate(tree, mesh: Mesh | None):
    """Every array of ``tree`` copied to every device of the mesh."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def initialize_distributed() -> None:
    """``jax.distributed.initialize()`` when a multi-process launch is configured
    (``JAX_COORDINATOR_ADDRESS`` or a cluster environment jax detects, e.g. SLURM);
    a no-op for a single process."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("SLURM_NTASKS"):
        if not jax.distributed.is_initialized():
            jax.distributed.initialize()


def is_writer() -> bool:
    """True on the process that writes checkpoints, logs and models (process 0)."""
    return jax.process_index() == 0
