"""Meshes and sharding rules: one program on every host, data-parallel by default.

The mesh comes from `config.mesh` (default: every device on one `data` axis), with
Auto axis types (`jax.make_mesh` now defaults to Explicit). Parameters and optimizer
state are replicated, or with `param_sharding='fsdp'` arrays of at least
`config.fsdp_min_size` elements are split along their largest dimension divisible by the
data axis (ZeRO-3 style; XLA gathers them for the computation). Rules depend only on an
array's shape, so Adam's moments get the sharding of their parameter.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# [ours] the configs' default fsdp_min_size: arrays smaller than this (biases, norms, small
# kernels) stay replicated, their gathers costing more than the memory they would save
FSDP_MIN_SIZE = 2 ** 18


def make_mesh(shape=(-1,), axes=("data",)) -> Mesh:
    """A mesh over every device of every host (`config.mesh`; -1: what the other axes leave)."""
    shape, axes = tuple(shape), tuple(axes)
    requested = shape
    if "data" not in axes:
        raise ValueError(f"config.mesh.axes must contain 'data' (the batch axis), got {axes}")
    n = jax.device_count()
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(n // known if s == -1 else s for s in shape)
    if int(np.prod(shape)) != n:
        raise ValueError(f"config.mesh.shape {requested} does not cover the {n} devices")
    return jax.make_mesh(shape, axes, axis_types=(jax.sharding.AxisType.Auto,) * len(axes))


def param_spec(shape: tuple[int, ...], mesh: Mesh, mode: str, min_size: int = FSDP_MIN_SIZE) -> P:
    if mode == "replicated" or int(np.prod(shape)) < min_size:
        return P()
    n = mesh.shape["data"]
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % n == 0:
            spec = [None] * len(shape)
            spec[dim] = "data"
            return P(*spec)
    return P()


def state_sharding(abstract_state, mesh: Mesh, mode: str, min_size: int = FSDP_MIN_SIZE):
    """A NamedSharding per leaf of an (abstract) tree: a train state, or model variables."""
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(tuple(x.shape), mesh, mode, min_size)),
                        abstract_state)


def split_arrays(tree) -> tuple[int, int]:
    """(arrays split over a mesh axis, arrays) among the jax.Array leaves of `tree`: what a run's
    `param_sharding` actually did, for its log (fsdp splits nothing under `fsdp_min_size`)."""
    arrays = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]
    split = [x for x in arrays if not x.sharding.is_fully_replicated]  # P('data') on a 1-device axis is not split
    return len(split), len(arrays)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
