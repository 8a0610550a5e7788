"""Latency of each export runtime against the jitted JAX model, on this machine.

  python -m s2r_jax.benchmarks.export [--height 192 --width 640] [--steps 5] \
      [--formats stablehlo,savedmodel,tflite,onnx] [--workdir DIR]

The official network (official widths, random official-init weights: speed does not
depend on the values) is written as a checkpoint in `s2r_jax.convert`'s layout, loaded
with `model_loader.load_model` and exported to each format (float32, batch 1) with
`s2r_jax.export`, as a user would. Then each file is run in its runtime, in this
process, on one image already in memory: the median of `--steps` calls after 2
warm-up calls (`benchmarks.common.median_seconds`), the same method as the two JAX
rows: the library's jitted `metric_depth` (on the CPU with the convolution rewrites,
as prediction runs it) and the same function with the plain lowering the exports hold.
Every runtime uses all cores (LiteRT is told `num_threads`). Prints a table and one
JSON line per row, with each output's max abs difference from the JAX model.
Needs tensorflow and the `export` extra for the formats other than stablehlo.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax import export
from s2r_jax.benchmarks.common import median_seconds
from s2r_jax.export.common import output_bytes, plain_lowering

FILE_NAMES = {"stablehlo": "s2r.stablehlo", "savedmodel": "s2r_savedmodel", "tflite": "s2r.tflite",
              "onnx": "s2r.onnx"}


def define_flags():
    flags.DEFINE_integer("height", 192, "Input height.")
    flags.DEFINE_integer("width", 640, "Input width.")
    flags.DEFINE_integer("steps", 5, "Timed calls (after 2 warm-up calls).")
    flags.DEFINE_list("formats", list(export.FORMATS), "Formats to export and time.")
    flags.DEFINE_string("workdir", None, "Keep the checkpoint and the exports here (default: a temporary "
                        "directory, deleted).")


def official_checkpoint(directory: str, height: int, width: int):
    """Random official-init weights of the official network, written as `s2r_jax.convert`
    writes the released weights, and loaded back at `height` x `width`."""
    from s2r_jax.convert import write_checkpoint
    from s2r_jax.model_loader import load_model
    from s2r_jax.models import S2RDepthNet
    from s2r_jax.training.init import official_init

    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = official_init(jax.eval_shape(S2RDepthNet().init, jax.random.key(0), image), jax.random.key(0))
    meta = {"written_by": "s2r_jax.convert", "format": "official_pytorch", "sources": {},
            "modules": sorted(variables["params"])}
    write_checkpoint(jax.device_get(variables), meta, directory, overwrite=True)
    return load_model(directory, image_size=(height, width))


def runner(fmt: str, path: str):
    """A function images -> depth running the exported file in its runtime (as docs/export.md)."""
    if fmt == "stablehlo":
        with open(path, "rb") as f:
            run = jax.jit(jax.export.deserialize(bytearray(f.read())).call)
        return lambda x: np.asarray(run(x)), jax.__version__
    if fmt == "savedmodel":
        import tensorflow as tf
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        return (lambda x: serve(images=tf.constant(x))["depth"].numpy()), tf.__version__
    if fmt == "tflite":
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
        run = interpreter.get_signature_runner("serving_default")
        return (lambda x: run(images=x)["depth"]), getattr(ai_edge_litert, "__version__", "ai-edge-litert")
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return (lambda x: session.run(["depth"], {"images": x})[0]), ort.__version__


def main(argv):
    del argv
    f = flags.FLAGS
    unknown = [x for x in f.formats if x not in export.FORMATS]
    if unknown:
        raise app.UsageError(f"--formats: unknown {unknown}; expected some of {export.FORMATS}")
    workdir = f.workdir or tempfile.mkdtemp(prefix="s2r_export_bench_")
    try:
        model = official_checkpoint(os.path.join(workdir, "checkpoint"), f.height, f.width)
        image = np.random.default_rng(0).uniform(0, 1, (1, f.height, f.width, 3)).astype(np.float32)
        rows = []

        def record(name, call, extra):
            out = np.asarray(call())
            dt = median_seconds(call, f.steps)
            rows.append(dict(runtime=name, latency_ms=dt * 1e3, image_size=[f.height, f.width], batch_size=1,
                             max_abs_diff_m=float(np.abs(out - reference).max()), **extra))
            print(json.dumps(rows[-1]), flush=True)

        jitted = jax.jit(model.metric_depth)
        reference = np.asarray(jitted(model.variables, image))
        record("jax (library, CPU rewrites)", lambda: jitted(model.variables, image), {"jax": jax.__version__})
        with plain_lowering():
            plain = jax.jit(lambda v, x: model.metric_depth(v, x))
            plain(model.variables, image)  # traced here, with the plain convolutions
        record("jax (plain lowering)", lambda: plain(model.variables, image), {"jax": jax.__version__})
        for fmt in f.formats:
            path = os.path.join(workdir, FILE_NAMES[fmt])
            start = time.perf_counter()
            export.export_model(model, fmt, path, export.ExportOptions(batch=1, platforms=("cpu",)), overwrite=True)
            export_s = time.perf_counter() - start
            run, version = runner(fmt, path)
            record(fmt, lambda: run(image),
                   {"version": version, "export_s": export_s, "size_mb": output_bytes(path) / 2**20})
    finally:
        if not f.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    jax_ms = rows[0]["latency_ms"]
    print(f"\n{'runtime':<30}{'latency ms':>12}{'vs JAX':>8}{'max |diff| m':>14}{'file MB':>9}{'export s':>10}")
    for r in rows:
        size = f"{r['size_mb']:.0f}" if "size_mb" in r else "-"
        made = f"{r['export_s']:.0f}" if "export_s" in r else "-"
        print(f"{r['runtime']:<30}{r['latency_ms']:>12.0f}{r['latency_ms'] / jax_ms:>8.2f}{r['max_abs_diff_m']:>14.1e}"
              f"{size:>9}{made:>10}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
