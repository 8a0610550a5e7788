r"""Export a depth model for deployment: StableHLO, TF SavedModel, TFLite (LiteRT) or ONNX.

  python -m s2r_jax.export --checkpoint DIR --format onnx|tflite|savedmodel|stablehlo \
      --output PATH [--image_size H,W] [--batch N|dynamic] [--dtype float32|float16]

Every format holds the same function, a loaded model's `metric_depth`:

    images: float32 (N, H, W, 3), RGB in [0, 1], at the model's input size (H, W)
    depth:  float32 (N, H, W), metres, at that size

Resizing an image to (H, W) and the depth map back to the image's size stay outside
(docs/export.md shows both, and an example for each runtime). One module per format
(`to_stablehlo`, `to_savedmodel`, `to_tflite`, `to_onnx`); the last three import
tensorflow when they export, so StableHLO export runs where tensorflow is not installed.
"""
from __future__ import annotations

import os

from s2r_jax.export.common import (DEFAULT_OPSET, DEFAULT_PLATFORMS, DTYPES, FORMATS, PLATFORMS, DepthModel,
                                   ExportError, ExportOptions, describe, parse_batch)

__all__ = ["DEFAULT_OPSET", "DEFAULT_PLATFORMS", "DTYPES", "FORMATS", "PLATFORMS", "DepthModel", "ExportError",
           "ExportOptions", "describe", "export_model", "parse_batch"]


def export_model(model: DepthModel, fmt: str, output: str | os.PathLike, options: ExportOptions = ExportOptions(),
                 overwrite: bool = False) -> None:
    """Write `model` (a `model_loader.LoadedModel` or anything with its interface) to
    `output` in format `fmt`, atomically. Raises `ExportError` for an option the format
    cannot take or a conversion that fails."""
    options.check(fmt)
    if fmt == "stablehlo":
        from s2r_jax.export.to_stablehlo import export_stablehlo as write
    elif fmt == "savedmodel":
        from s2r_jax.export.to_savedmodel import export_savedmodel as write
    elif fmt == "tflite":
        from s2r_jax.export.to_tflite import export_tflite as write
    else:
        from s2r_jax.export.to_onnx import export_onnx as write
    write(model, output, options, overwrite)
