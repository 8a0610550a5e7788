"""Prediction on image files: a restored model with its official preprocessing, run in
batches under `jax.jit` while threads read and write the files.

S2R-DepthNet (`Predictor`): the official test's preprocessing at the model's size, the
finest output resized to each image's size, then metres. ZoeDepth (`ZoeDepthPredictor`):
the official `model.infer(x)` on each image at its own size."""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import sys
import time
from typing import Iterable, Sequence, TextIO

import numpy as np
from absl import logging

from s2r_jax.data.preprocessing import model_input
from s2r_jax.model_loader import CheckpointModelError, LoadedModel, LoadedZoeDepth, load_model
from s2r_jax.predict.inputs import expand_inputs, output_names
from s2r_jax.predict.intrinsics import Intrinsics
from s2r_jax.predict.writers import write_outputs

PredictError = CheckpointModelError  # an argument or checkpoint prediction cannot work with


class Predictor:
    """A restored S2R-DepthNet (`model_loader.LoadedModel`) with what prediction adds: the official
    test preprocessing (`data.preprocessing.model_input`, shared with evaluation) and the
    jitted map back to each image's size in metres (align_corners resize, then metres; the
    metric-bins variant's metres are only resized)."""

    def __init__(self, loaded: LoadedModel):
        import jax

        from s2r_jax.models import to_metres
        from s2r_jax.models.layers import resize_bilinear

        self.loaded = loaded
        self.spec, self.meta = loaded.spec, loaded.meta
        self.image_size, self.use_attention = loaded.image_size, loaded.use_attention
        self.depth_range_m = loaded.depth_range_m  # None: the metric-bins variant predicts metres
        self.input_dtype = np.float64 if loaded.spec.model["dtype"] == "float64" else np.float32
        self._depth = jax.jit(loaded.depth_fn)
        if self.depth_range_m is None:
            self._metres = jax.jit(lambda raw, size: resize_bilinear(raw.astype("float32"), size),
                                   static_argnames=("size",))
        else:
            self._metres = jax.jit(functools.partial(to_metres, max_depth=self.depth_range_m),
                                   static_argnames=("size",))

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> (H, W, 3) in [-1, 1] at the model's size, as the official test."""
        return model_input(rgb, self.image_size, self.input_dtype)

    def predict_raw(self, images: np.ndarray):
        """(N, H, W, 3) in [-1, 1] -> the finest depth output (N, H, W, 1) in [-1, 1] (metres for the
        metric-bins variant), on device."""
        return self._depth(self.loaded.variables, images)

    def metres(self, raw, size: Sequence[int]) -> np.ndarray:
        """One raw map (H, W, 1) or (1, H, W, 1) -> float32 metres (h, w) at `size` = (h, w)."""
        raw = raw.reshape((1,) + tuple(raw.shape[-3:]))
        out = self._metres(raw, size=tuple(int(s) for s in size))
        return np.asarray(out, dtype=np.float32)[0, :, :, 0]


class ZoeDepthPredictor:
    """A restored ZoeDepth (`model_loader.LoadedZoeDepth`) as the official `model.infer(x)` runs
    it on each image at its own size: RGB / 255 (`ToTensor`), reflect padding, the network at a
    multiple of 32 near its size keeping the aspect ratio, torch's bicubic back to the padded
    size, flip averaging (`pad_input`, `with_flip_aug`: the official defaults, True)."""

    def __init__(self, loaded: LoadedZoeDepth, pad_input: bool = True, with_flip_aug: bool = True):
        import jax

        self.loaded, self.meta, self.image_size = loaded, loaded.meta, loaded.image_size
        self.depth_range_m, self.use_attention = None, False
        self.input_dtype = np.float64 if loaded.dtype == "float64" else np.float32
        self._infer = jax.jit(functools.partial(loaded.metric_depth, pad_input=pad_input,
                                                with_flip_aug=with_flip_aug))

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> (h, w, 3) in [0, 1]."""
        t = self.input_dtype
        return rgb.astype(t) / t(255)

    def predict_raw(self, images: np.ndarray):
        """(N, h, w, 3) in [0, 1] -> (N, h, w) metres, on device."""
        return self._infer(self.loaded.variables, images)

    def metres(self, raw, size: Sequence[int]) -> np.ndarray:
        """One image's (h, w) metres (already at its size) as float32."""
        out = np.asarray(raw, dtype=np.float32)
        if out.shape != tuple(size):
            raise PredictError(f"ZoeDepth's prediction is {out.shape}, the image {tuple(size)}")
        return out


def load_predictor(checkpoint: str | os.PathLike, depth_range_m: float | None = None,
                   image_size: Sequence[int] | None = None, step: int | None = None,
                   dtype: str | None = None, **zoedepth_infer) -> Predictor | ZoeDepthPredictor:
    """A `Predictor` (S2R-DepthNet) or `ZoeDepthPredictor` for the latest (or given) step of a
    checkpoint directory (see `model_loader.load_model` for the arguments; `zoedepth_infer`:
    `pad_input`, `with_flip_aug` of ZoeDepth's infer path)."""
    loaded = load_model(checkpoint, step=step, depth_range_m=depth_range_m, image_size=image_size, dtype=dtype)
    if isinstance(loaded, LoadedZoeDepth):
        return ZoeDepthPredictor(loaded, **zoedepth_infer)
    if zoedepth_infer:
        raise PredictError(f"{checkpoint} holds S2R-DepthNet: {sorted(zoedepth_infer)} apply to ZoeDepth only")
    return Predictor(loaded)


def predict_batch(predictor, loaded: list, batch_size: int) -> list[np.ndarray]:
    """Metres at each image's size for `loaded` = [(index, uint8 image, model input)]. Inputs of
    one shape share a call on a batch of `batch_size` (padded: one compilation per shape; all
    of S2R-DepthNet's inputs have the model's size, ZoeDepth's keep the image's)."""
    out: list = [None] * len(loaded)
    by_shape: dict = {}
    for k, (_, _, pre) in enumerate(loaded):
        by_shape.setdefault(pre.shape, []).append(k)
    for shape, ks in by_shape.items():
        x = np.zeros((batch_size,) + shape, predictor.input_dtype)
        for j, k in enumerate(ks):
            x[j] = loaded[k][2]
        raw = predictor.predict_raw(x)
        for j, k in enumerate(ks):
            out[k] = predictor.metres(raw[j], loaded[k][1].shape[:2])
    return out


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
            depths = predict_batch(predictor, loaded, batch_size)
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
