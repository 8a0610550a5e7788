"""`python -m s2r_jax.export`: a checkpoint -> a file for a deployment runtime (see the
package docstring and docs/export.md)."""
from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging

from s2r_jax.export import (DEFAULT_OPSET, DEFAULT_PLATFORMS, DTYPES, FORMATS, PLATFORMS, ExportError, ExportOptions,
                            describe, export_model, parse_batch)
from s2r_jax.export.common import check_output, output_bytes
from s2r_jax.cli import parse_pair


def define_flags():
    flags.DEFINE_string("checkpoint", None, "Checkpoint directory: a training workdir or one written by "
                        "s2r_jax.convert.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_enum("format", None, FORMATS, "Export format.")
    flags.DEFINE_string("output", None, "File to write (a directory for savedmodel). Must not exist unless "
                        "--overwrite.")
    flags.DEFINE_list("image_size", None, "H,W the exported model takes instead of the checkpoint's (multiples "
                      "of 16, at least 96); the official KITTI model's is 192,640.")
    flags.DEFINE_string("batch", "1", "Batch size the exported model takes, or 'dynamic' (stablehlo and "
                        "savedmodel only).")
    flags.DEFINE_enum("dtype", "float32", DTYPES, "float16 stores the weights in float16 (half the file); the "
                      "computation stays float32 (docs/export.md).")
    flags.DEFINE_float("depth_range_m", None, "Metres for a network output of +1: default the training config's "
                       "data.depth_range_m, else 80 (KITTI); 8 for the official NYUv2 model.")
    flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS), f"stablehlo/savedmodel: platforms to lower for "
                      f"(of {', '.join(PLATFORMS)}).")
    flags.DEFINE_integer("opset", DEFAULT_OPSET, "onnx: the ONNX opset (13 to 18).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output (a file, or a SavedModel directory).")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # orbax warns about every read-only restore
    for name in ("checkpoint", "format", "output"):
        if not getattr(f, name):
            raise app.UsageError(f"--{name} is required")
    try:
        options = ExportOptions(batch=parse_batch(f.batch), dtype=f.dtype,
                                platforms=tuple(p.strip().lower() for p in f.platforms), opset=f.opset)
        options.check(f.format)
        check_output(f.output, directory=f.format == "savedmodel", overwrite=f.overwrite)
    except ExportError as e:
        raise app.UsageError(str(e)) from e
    image_size = parse_pair("image_size", f.image_size)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines, if a format imports it

    from s2r_jax.model_loader import load_model

    start = time.perf_counter()
    try:
        model = load_model(f.checkpoint, step=f.step, depth_range_m=f.depth_range_m, image_size=image_size)
    except (ValueError, OSError) as e:  # CheckpointModelError, CheckpointError, orbax's errors
        print(f"error: {f.checkpoint}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"exporting {f.checkpoint} -> {describe(model, f.format, options)}", flush=True)
    try:
        export_model(model, f.format, f.output, options, overwrite=f.overwrite)
    except (ExportError, OSError) as e:
        print(f"error: exporting {f.checkpoint} to {f.format}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {f.output} ({output_bytes(f.output) / 2**20:.1f} MiB) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    define_flags()
    app.run(main)
