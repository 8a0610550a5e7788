"""TFLite (LiteRT) through the TF converter, from the jax2tf SavedModel.

The converter legalizes the StableHLO inside the SavedModel's XlaCallModule op into
TFLite built-in ops only (no Flex/Select TF ops: the file runs in the plain LiteRT
interpreter and its delegates). The network is traced with sub-pixel transposed
convolutions, which the converter gets right where it gets PyTorch-style transposed
convolutions wrong (`common.tflite_lowering`). It folds BatchNorm into the
convolutions and fuses activations, so outputs differ from JAX's by float rounding
(docs/export.md). float16 is the converter's float16 quantization: weights stored in
float16, dequantized to float32 on the CPU; the GPU delegate computes in float16.
The batch size must be fixed (`ExportOptions.check`).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from s2r_jax.export.common import DepthModel, ExportError, ExportOptions, atomic_output
from s2r_jax.export.to_savedmodel import write_savedmodel


def tflite_bytes(model: DepthModel, options: ExportOptions) -> bytes:
    import tensorflow as tf

    # The SavedModel is only the converter's input: lowered for the CPU, float32 weights
    # (float16 is the converter's own quantization below).
    intermediate = dataclasses.replace(options, dtype="float32", platforms=("cpu",))
    with tempfile.TemporaryDirectory(prefix="s2r_export_") as tmp:
        write_savedmodel(model, os.path.join(tmp, "savedmodel"), intermediate, converter_input=True)
        converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(tmp, "savedmodel"))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if options.dtype == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        try:
            return converter.convert()
        except Exception as e:  # the converter raises its own ConverterError with MLIR diagnostics
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"the TFLite converter failed: {first}") from e


def export_tflite(model: DepthModel, output: str | os.PathLike, options: ExportOptions,
                  overwrite: bool = False) -> None:
    blob = tflite_bytes(model, options)
    with atomic_output(output, overwrite) as tmp, open(tmp, "wb") as f:
        f.write(blob)
