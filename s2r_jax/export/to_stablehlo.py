"""Serialized StableHLO through `jax.export`: reloadable with JAX alone, no model code.

    exported = jax.export.deserialize(open(path, "rb").read())
    depth = exported.call(images)

The weights are constants of the program. It is lowered for every platform in
`ExportOptions.platforms` (one file runs on CPU, GPU or TPU); a dynamic batch becomes
the symbolic dimension `batch`. JAX promises to load such a file for at least six
months of JAX releases (jax.export's compatibility guarantee); the file records the
serialization version it was written with.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from s2r_jax.export.common import (DepthModel, ExportOptions, atomic_output, depth_function, exported_weights,
                                   image_size, plain_lowering)


def export_program(model: DepthModel, options: ExportOptions) -> jax.export.Exported:
    """The model's `metric_depth` with its weights as constants, lowered for `options.platforms`."""
    fn, weights = depth_function(model), exported_weights(model, options.dtype)
    h, w = image_size(model)
    batch = jax.export.symbolic_shape("batch")[0] if options.batch is None else options.batch
    images = jax.ShapeDtypeStruct((batch, h, w, 3), jnp.float32)
    with plain_lowering():
        return jax.export.export(jax.jit(lambda x: fn(weights, x)), platforms=options.platforms)(images)


def export_stablehlo(model: DepthModel, output: str | os.PathLike, options: ExportOptions,
                     overwrite: bool = False) -> None:
    blob = export_program(model, options).serialize()
    with atomic_output(output, overwrite) as tmp, open(tmp, "wb") as f:
        f.write(blob)
