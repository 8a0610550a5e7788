"""Host-local NumPy batches -> global `jax.Array`s on a mesh (no tensorflow here).

The global batch is split over the mesh's data axis. Each host's pipeline yields the rows
of it that this host's devices hold (`host_rows`, ascending), and `global_batch` turns
them into one array sharded over the mesh, wherever the hosts are
(`jax.make_array_from_process_local_data` maps a host's rows, in ascending order, onto
its devices' slices).
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


def check_divisible(global_batch: int, mesh: Mesh, what: str, data_axis: str = "data") -> None:
    """A clear error for a batch the mesh's data axis cannot split evenly."""
    n = mesh.shape[data_axis]
    if global_batch % n:
        raise ValueError(f"{what} = {global_batch} is not divisible by the {n} devices of the mesh's "
                         f"'{data_axis}' axis; choose a multiple of {n}")


def host_rows(mesh: Mesh, global_batch: int, data_axis: str = "data") -> tuple[int, ...]:
    """The rows of a global batch of `global_batch` that this process's devices hold, ascending."""
    index_map = batch_sharding(mesh, data_axis).addressable_devices_indices_map((global_batch,))
    rows = set()
    for (rows_slice,) in index_map.values():
        rows.update(range(*rows_slice.indices(global_batch)))
    return tuple(sorted(rows))


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh, global_size: int | None = None,
                 data_axis: str = "data") -> dict:
    """The global batch from this host's rows of it (all rows on one host)."""
    sharding = batch_sharding(mesh, data_axis)
    out = {}
    for k, v in local.items():
        v = np.asarray(v)
        shape = None if global_size is None else (global_size,) + v.shape[1:]
        out[k] = jax.make_array_from_process_local_data(sharding, v, shape)
    return out


def local_rows(array: jax.Array) -> np.ndarray:
    """This host's rows of a batch-sharded global array, ascending (the inverse of `global_batch`)."""
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, parts = set(), []
    for s in shards:
        start = s.index[0].start or 0
        if start not in seen:  # replicas of the same rows on several local devices
            seen.add(start)
            parts.append(np.asarray(s.data))
    return np.concatenate(parts, axis=0)


def prefetch_to_mesh(batches: Iterable[Mapping[str, np.ndarray]], mesh: Mesh, global_size: int | None = None,
                     size: int = 2, data_axis: str = "data") -> Iterator[dict]:
    """Keep `size` global batches in flight on the devices while the step runs
    (transfers are asynchronous, so enqueueing ahead overlaps them with compute)."""
    queue: collections.deque = collections.deque()
    it = iter(batches)
    for local in itertools.islice(it, size):
        queue.append(global_batch(local, mesh, global_size, data_axis))
    while queue:
        yield queue.popleft()
        for local in itertools.islice(it, 1):
            queue.append(global_batch(local, mesh, global_size, data_axis))
