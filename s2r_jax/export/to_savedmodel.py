"""A TensorFlow SavedModel through jax2tf (native serialization).

The program is the same StableHLO as `to_stablehlo`, carried by one `XlaCallModule`
op; the weights are `tf.Variable`s of the SavedModel (its `variables/` files, not
constants in the graph, which protobuf limits to 2 GB). Signature `serving_default`:
`images` (N, H, W, 3) float32 in [0, 1] -> {'depth': (N, H, W) float32 metres}. Runs
wherever TensorFlow >= 2.12 runs (TF Serving, `tf.saved_model.load`); TensorFlow
executes XlaCallModule with XLA on the platforms it was lowered for.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.export.common import (INPUT_NAME, OUTPUT_NAME, DepthModel, ExportOptions, atomic_output,
                                   depth_function, exported_weights, fold_weights, image_size,
                                   plain_lowering, tflite_lowering)


def write_savedmodel(model: DepthModel, directory: str, options: ExportOptions, converter_input: bool = False) -> None:
    """Write the SavedModel to `directory` (not atomically: see `export_savedmodel`).

    The weights are `tf.Variable`s: as constants of the program they would be copied into
    the graph (which protobuf limits to 2 GB) and, by the TFLite converter, many times
    over (for the official network's 350 MB: 8 GB to save, > 12 GB to convert).

    `converter_input`: the SavedModel only feeds the TFLite converter. The network is
    then traced with `common.tflite_lowering`, and what depends on the weights alone is
    computed here (`common.fold_weights`), its results the variables: the converter does
    not fold large weight computations itself.
    """
    import tensorflow as tf
    from jax.experimental import jax2tf

    fn, weights = depth_function(model), exported_weights(model, options.dtype)
    h, w = image_size(model)
    if converter_input:
        with tflite_lowering():
            fn, weights = fold_weights(fn, weights, jax.ShapeDtypeStruct((options.batch, h, w, 3), jnp.float32))
    leaves, treedef = jax.tree_util.tree_flatten(weights)
    module = tf.Module()
    # A plain list: jax2tf flattens its arguments with JAX's pytrees, which do not see
    # through the dict wrappers TensorFlow puts around tracked attributes.
    module.weights = [tf.Variable(np.asarray(a), trainable=False, name=f"w{i}") for i, a in enumerate(leaves)]
    polymorphic = None if options.batch is not None else f"(batch, {h}, {w}, 3)"
    converted = jax2tf.convert(fn, polymorphic_shapes=[None, polymorphic], with_gradient=False,
                               native_serialization_platforms=options.platforms)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec((options.batch, h, w, 3), tf.float32,
                                                                 name=INPUT_NAME)])
    def serve(images):
        return {OUTPUT_NAME: converted(jax.tree_util.tree_unflatten(treedef, list(module.weights)), images)}

    module.serve = serve
    with plain_lowering():  # jax2tf traces `fn` here (already traced if converter_input)
        tf.saved_model.save(module, directory, signatures={"serving_default": serve.get_concrete_function()})


def export_savedmodel(model: DepthModel, output: str | os.PathLike, options: ExportOptions,
                      overwrite: bool = False) -> None:
    with atomic_output(output, overwrite, directory=True) as tmp:
        write_savedmodel(model, tmp, options)
