"""Latency of each export runtime against the jitted JAX model, on this machine.

  python -m s2r_jax.benchmarks.export [--height 192 --width 640] [--steps 5] \
      [--formats stablehlo,savedmodel,tflite,onnx] [--workdir DIR [--reuse_exports]]

The official network (official widths, random official-init weights: speed does not
depend on the values) is written as a checkpoint in `s2r_jax.convert`'s layout and
exported to each format (float32, batch 1, lowered for the CPU) by the CLI,
`python -m s2r_jax.export`, in its own process, as a user would (its wall time and peak
memory are reported). Each file is then run in its runtime, in this process, on one
image already in memory, by the same method as the two JAX rows (the library's jitted
`metric_depth`, on the CPU with the convolution rewrites as prediction runs it, and the
same function with the plain lowering that the StableHLO and SavedModel exports hold):
the median of `--steps` calls after 2 warm-up calls, the runtimes timed in turns
(`benchmarks.common.interleaved_median_seconds`). Every runtime uses all cores (LiteRT
is told `num_threads`). Prints a table and one JSON line per row, with each output's max
abs difference from the JAX model. Needs tensorflow and the `export` extra for the
formats other than stablehlo.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from s2r_jax import export
from s2r_jax.benchmarks.common import interleaved_median_seconds
from s2r_jax.export.common import output_bytes, plain_lowering
from s2r_jax.model_loader import load_model

FILE_NAMES = {"stablehlo": "s2r.stablehlo", "savedmodel": "s2r_savedmodel", "tflite": "s2r.tflite",
              "onnx": "s2r.onnx"}


def define_flags():
    flags.DEFINE_integer("height", 192, "Input height.")
    flags.DEFINE_integer("width", 640, "Input width.")
    flags.DEFINE_integer("steps", 5, "Timed calls (after 2 warm-up calls).")
    flags.DEFINE_list("formats", list(export.FORMATS), "Formats to export and time.")
    flags.DEFINE_string("workdir", None, "Keep the checkpoint and the exports here (default: a temporary "
                        "directory, deleted).")
    flags.DEFINE_bool("reuse_exports", False, "Time the checkpoint and exports an earlier run (same size) left in "
                      "--workdir instead of writing them again.")


def official_checkpoint(directory: str, height: int, width: int) -> None:
    """Random official-init weights of the official network, written as `s2r_jax.convert`
    writes the released weights."""
    from s2r_jax.convert import write_checkpoint
    from s2r_jax.models import S2RDepthNet
    from s2r_jax.training.init import official_init

    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = official_init(jax.eval_shape(S2RDepthNet().init, jax.random.key(0), image), jax.random.key(0))
    meta = {"written_by": "s2r_jax.convert", "format": "official_pytorch", "sources": {},
            "modules": sorted(variables["params"])}
    write_checkpoint(jax.device_get(variables), meta, directory, overwrite=True)


def export_with_cli(checkpoint: str, fmt: str, path: str, height: int, width: int) -> dict:
    """`python -m s2r_jax.export` in its own process: its wall time and peak memory."""
    cmd = [sys.executable, "-m", "s2r_jax.export", "--checkpoint", checkpoint, "--format", fmt, "--output", path,
           "--image_size", f"{height},{width}", "--platforms", "cpu", "--overwrite"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return {"export_s": time.perf_counter() - start, "export_peak_gb": usage.ru_maxrss / 2**20,
            "size_mb": output_bytes(path) / 2**20}


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
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every step of a save at INFO
    unknown = [x for x in f.formats if x not in export.FORMATS]
    if unknown:
        raise app.UsageError(f"--formats: unknown {unknown}; expected some of {export.FORMATS}")
    if f.reuse_exports and not f.workdir:
        raise app.UsageError("--reuse_exports needs the --workdir of an earlier run")
    workdir = f.workdir or tempfile.mkdtemp(prefix="s2r_export_bench_")
    checkpoint = os.path.join(workdir, "checkpoint")
    try:
        if not f.reuse_exports:
            official_checkpoint(checkpoint, f.height, f.width)
        exported = {}
        for fmt in f.formats:
            path = os.path.join(workdir, FILE_NAMES[fmt])
            if f.reuse_exports:
                exported[fmt] = dict(path=path, size_mb=output_bytes(path) / 2**20)
                continue
            exported[fmt] = dict(path=path, **export_with_cli(checkpoint, fmt, path, f.height, f.width))
            print(f"exported {fmt}: {json.dumps(exported[fmt])}", flush=True)
        model = load_model(checkpoint, image_size=(f.height, f.width))
        image = np.random.default_rng(0).uniform(0, 1, (1, f.height, f.width, 3)).astype(np.float32)
        jitted = jax.jit(model.metric_depth)
        with plain_lowering():
            plain = jax.jit(lambda v, x: model.metric_depth(v, x))
            plain(model.variables, image)  # traced here, with the plain convolutions
        calls = {"jax (library, CPU rewrites)": lambda: jitted(model.variables, image),
                 "jax (plain lowering)": lambda: plain(model.variables, image)}
        extra = {name: {"jax": jax.__version__} for name in calls}
        for fmt, info in exported.items():
            run, version = runner(fmt, info.pop("path"))
            calls[fmt] = functools.partial(run, image)
            extra[fmt] = dict(info, version=version)
        reference = np.asarray(jitted(model.variables, image))
        errors = {name: float(np.abs(np.asarray(call()) - reference).max()) for name, call in calls.items()}
        latency = interleaved_median_seconds(calls, f.steps)
        rows = [dict(runtime=name, latency_ms=latency[name] * 1e3, image_size=[f.height, f.width], batch_size=1,
                     max_abs_diff_m=errors[name], **extra[name]) for name in calls]
        for row in rows:
            print(json.dumps(row), flush=True)
    finally:
        if not f.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    jax_ms = rows[0]["latency_ms"]
    print(f"\n{'runtime':<30}{'latency ms':>12}{'vs JAX':>8}{'max |diff| m':>14}{'file MB':>9}{'export s':>10}"
          f"{'export GB':>11}")
    for r in rows:
        size, made, peak = (f"{r[k]:.{d}f}" if k in r else "-" for k, d in
                            (("size_mb", 0), ("export_s", 0), ("export_peak_gb", 1)))
        print(f"{r['runtime']:<30}{r['latency_ms']:>12.0f}{r['latency_ms'] / jax_ms:>8.2f}{r['max_abs_diff_m']:>14.1e}"
              f"{size:>9}{made:>10}{peak:>11}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
