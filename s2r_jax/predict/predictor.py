"""Prediction on image files: a restored model with the official test preprocessing, run in
batches under `jax.jit` while threads read and write the files."""
from __future__ import annotations

import collections
import concurrent.futures
import os
import sys
import time
from typing import Iterable, Sequence, TextIO

import numpy as np
from absl import logging

from s2r_jax.data.preprocessing import model_input
from s2r_jax.model_loader import CheckpointModelError, LoadedModel, load_model
from s2r_jax.predict.inputs import expand_inputs, output_names
from s2r_jax.predict.intrinsics import Intrinsics
from s2r_jax.predict.writers import write_outputs

PredictError = CheckpointModelError  # an argument or checkpoint prediction cannot work with


class Predictor:
    """A restored model (`model_loader.LoadedModel`) with what prediction adds: the official
    test preprocessing (`data.preprocessing.model_input`, shared with evaluation) and the
    jitted map back to each image's size in metres (align_corners resize, then metres)."""

    def __init__(self, loaded: LoadedModel):
        import jax

        from s2r_jax.models import to_metres

        self.loaded = loaded
        self.spec, self.meta = loaded.spec, loaded.meta
        self.image_size, self.use_attention = loaded.image_size, loaded.use_attention
        self.depth_range_m = float(loaded.spec.depth_range_m)
        self.input_dtype = np.float64 if loaded.spec.model["dtype"] == "float64" else np.float32
        self._metres = jax.jit(to_metres, static_argnames=("size", "max_depth"))

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> (H, W, 3) in [-1, 1] at the model's size, as the official test."""
        return model_input(rgb, self.image_size, self.input_dtype)

    def predict_raw(self, images: np.ndarray):
        """(N, H, W, 3) in [-1, 1] -> the finest depth output (N, H, W, 1) in [-1, 1], on device."""
        return self.loaded.finest(images)

    def metres(self, raw, size: Sequence[int]) -> np.ndarray:
        """One raw map (H, W, 1) or (1, H, W, 1) -> float32 metres (h, w) at `size` = (h, w)."""
        raw = raw.reshape((1,) + tuple(raw.shape[-3:]))
        out = self._metres(raw, size=tuple(int(s) for s in size), max_depth=self.depth_range_m)
        return np.asarray(out, dtype=np.float32)[0, :, :, 0]


def load_predictor(checkpoint: str | os.PathLike, depth_range_m: float | None = None,
                   image_size: Sequence[int] | None = None, step: int | None = None,
                   dtype: str | None = None) -> Predictor:
    """A `Predictor` for the latest (or given) step of a checkpoint directory (see
    `model_loader.load_model` for the arguments)."""
    return Predictor(load_model(checkpoint, step=step, depth_range_m=depth_range_m, image_size=image_size,
                                dtype=dtype))


class _Progress:
    """`predict: done/total images` on stderr: rewritten in place on a terminal, else a
    line at most every few seconds and at the end."""

    def __init__(self, total: int, stream: TextIO | None, every_s: float = 5.0):
        self.total, self.stream, self.every_s = total, stream, every_s
        self.tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        self.last, self.shown, self.state = -float("inf"), False, None

    def update(self, done: int, errors: int) -> None:
        if self.stream is None or self.total == 0 or self.state == (done, errors):
            return
        now = time.monotonic()
        if not self.tty and done < self.total and (done == 0 or now - self.last < self.every_s):
            return
        self.last, self.state = now, (done, errors)
        text = f"predict: {done}/{self.total} images" + (f" ({errors} failed)" if errors else "")
        if self.tty:
            width = 30
            fill = int(width * done / max(self.total, 1))
            self.stream.write(f"\r{text} [{'#' * fill}{'.' * (width - fill)}]")
            self.shown = done < self.total
            if not self.shown:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, line: str) -> None:
        if self.stream is None:
            return
        if self.tty and self.shown:
            self.stream.write("\r\033[K")
            self.shown = False
        self.stream.write(line + "\n")
        self.stream.flush()


def _read(path: str, predictor: Predictor):
    from s2r_jax.data.imageio import read_rgb

    rgb = read_rgb(path)
    return rgb, predictor.preprocess(rgb)


def _reason(e: BaseException) -> str:
    text = str(e)
    return text if text else type(e).__name__


def predict_paths(predictor: Predictor, paths: Iterable[str], output_dir: str, *, batch_size: int = 8,
                  recursive: bool = False, point_cloud: bool = False, intrinsics: Intrinsics | None = None,
                  colour_max: float | None = None, ply_binary: bool = True, log: TextIO | None = sys.stderr,
                  num_threads: int = 4) -> tuple[list[dict], list[tuple[str, str]]]:
    """Predict every image that `paths` (files, folders, globs) names; write its outputs.

    Returns `(written, errors)`: per written image `{"input": path, "name": stem, kind:
    output path...}` in input order, and `(path, reason)` for each input that could not
    be expanded, read or written. Each error is also printed to `log` as
    `error: <path>: <reason>`, with a progress line; `log=None` prints nothing.
    Images are read and written by `num_threads` threads while the device predicts.
    """
    if batch_size < 1:
        raise PredictError(f"batch_size must be at least 1, got {batch_size}")
    images, errors = expand_inputs(paths, recursive)
    progress = _Progress(len(images), log)
    for path, reason in errors:
        progress.message(f"error: {path}: {reason}")
    names = output_names(images)
    clashes = collections.Counter(os.path.splitext(os.path.basename(p))[0].casefold() for p in images)
    for path, name in zip(images, names):
        if clashes[os.path.splitext(os.path.basename(path))[0].casefold()] > 1:
            logging.info("%s shares its name with another input: written as %s", path, name)
    if images:
        os.makedirs(output_dir, exist_ok=True)
    h, w = predictor.image_size
    written, done, failed_images = [], 0, 0

    def fail(path, reason):
        nonlocal failed_images
        failed_images += 1
        errors.append((path, reason))
        progress.message(f"error: {path}: {reason}")

    batches = [list(range(i, min(i + batch_size, len(images)))) for i in range(0, len(images), batch_size)]
    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        def submit_reads(batch):
            return [pool.submit(_read, images[i], predictor) for i in batch]

        reads = submit_reads(batches[0]) if batches else []
        pending_writes: list = []
        for b, batch in enumerate(batches):
            loaded, failed = [], 0
            for i, fut in zip(batch, reads):
                try:
                    loaded.append((i, *fut.result()))
                except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not fatal
                    fail(images[i], _reason(e))
                    failed += 1
            reads = submit_reads(batches[b + 1]) if b + 1 < len(batches) else []
            if loaded:
                x = np.zeros((batch_size, h, w, 3), predictor.input_dtype)  # a fixed shape: one compilation
                for k, (_, _, pre) in enumerate(loaded):
                    x[k] = pre
                raw = predictor.predict_raw(x)
                depths = [predictor.metres(raw[k], rgb.shape[:2]) for k, (_, rgb, _) in enumerate(loaded)]
            else:
                depths = []
            done_writes = _finish(pending_writes, fail)
            written += done_writes
            done += len(done_writes)
            pending_writes = [(images[i], names[i], pool.submit(
                write_outputs, output_dir, names[i], rgb, depth, point_cloud, intrinsics, colour_max, ply_binary))
                for (i, rgb, _), depth in zip(loaded, depths)]
            done += failed
            progress.update(done, failed_images)
        done_writes = _finish(pending_writes, fail)
        written += done_writes
        done += len(done_writes)
    progress.update(len(images), failed_images)
    order = {p: k for k, p in enumerate(images)}
    written.sort(key=lambda r: order[r["input"]])
    return written, errors


def _finish(pending, fail) -> list[dict]:
    out = []
    for path, name, fut in pending:
        try:
            out.append({"input": path, "name": name, **fut.result()})
        except Exception as e:  # noqa: BLE001
            fail(path, f"cannot write its outputs ({_reason(e)})")
    return out
