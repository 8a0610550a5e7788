"""Host-local NumPy batches -> global `jax.Array`s on a mesh (no tensorflow here).

Each host's pipeline yields its slice of the global batch; the trainer turns the
slices into one array sharded over the mesh's data axis, wherever the hosts are.
"""
from __future__ import annotations

import collections
import itertools
from typing import Iterable, Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def batch_sharding(mesh: Mesh, data_axis: str | tuple[str, ...] = "data") -> NamedSharding:
    """Leading (batch) axis split over `data_axis`, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(data_axis))


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh, data_axis: str | tuple[str, ...] = "data") -> dict:
    """Assemble the global batch from this host's slice (`jax.make_array_from_process_local_data`)."""
    sharding = batch_sharding(mesh, data_axis)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}


def prefetch_to_mesh(batches: Iterable[Mapping[str, np.ndarray]], mesh: Mesh, size: int = 2,
                     data_axis: str | tuple[str, ...] = "data") -> Iterator[dict]:
    """Keep `size` global batches in flight on the devices while the step runs
    (transfers are asynchronous, so enqueueing ahead overlaps them with compute)."""
    queue: collections.deque = collections.deque()
    it = iter(batches)
    for local in itertools.islice(it, size):
        queue.append(global_batch(local, mesh, data_axis))
    while queue:
        yield queue.popleft()
        for local in itertools.islice(it, 1):
            queue.append(global_batch(local, mesh, data_axis))
