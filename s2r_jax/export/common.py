"""What every export format shares: the function exported, its options, atomic writes.

The exported function is a loaded model's `metric_depth` (`model_loader.LoadedModel`, or
any object with `variables`, `image_size` and a pure `metric_depth(variables, images01)`),
the same in every format:

    images: float32 (N, H, W, 3), RGB in [0, 1], at the model's input size (H, W)
    depth:  float32 (N, H, W), metres, at that size

No tensorflow here: StableHLO export runs where tensorflow is not installed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models import layers

FORMATS = ("stablehlo", "savedmodel", "tflite", "onnx")
DTYPES = ("float32", "float16")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # jax.export's lowering platforms
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")
DEFAULT_OPSET = 17  # ONNX opset: onnxruntime >= 1.11, TensorRT >= 8.6; tf2onnx 1.17 writes up to 18
INPUT_NAME, OUTPUT_NAME = "images", "depth"


class ExportError(ValueError):
    """A model, option or output path that cannot be exported; the message says which and why."""


class DepthModel(Protocol):
    """What export needs of a loaded model (S2R-DepthNet's `LoadedModel`; any family with
    the same interface, e.g. ZoeDepth, needs no change here)."""

    variables: Any
    image_size: tuple[int, int]

    def metric_depth(self, variables: Any, images01: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How to export. `batch=None` is a dynamic (symbolic) batch size."""

    batch: int | None = 1
    dtype: str = "float32"
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS  # stablehlo and savedmodel only
    opset: int = DEFAULT_OPSET                       # onnx only

    def check(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if self.dtype not in DTYPES:
            raise ExportError(f"dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            raise ExportError(f"batch {self.batch!r}: expected a positive integer or 'dynamic'")
        if self.batch is None and fmt in ("tflite", "onnx"):
            # tensorflow 2.21's converter (which the ONNX path goes through) rejects the
            # bilinear resizes' gathers once the batch is symbolic (docs/export.md).
            raise ExportError(f"{fmt} needs a fixed batch size: the TFLite converter cannot convert the resizes' "
                              "gathers with a dynamic batch ('vhlo.dynamic_gather_v1' op is not part of the vhlo "
                              "support yet); give --batch N (1 for one image at a time)")
        if not self.platforms or any(p not in PLATFORMS for p in self.platforms):
            raise ExportError(f"platforms {','.join(self.platforms) or '(none)'}: expected some of "
                              f"{', '.join(PLATFORMS)}")
        if not 13 <= self.opset <= 18:
            raise ExportError(f"ONNX opset {self.opset}: tf2onnx writes opsets 13 to 18")


def parse_batch(value: str | int | None) -> int | None:
    """'dynamic' -> None, '4' -> 4 (the CLI's --batch)."""
    if value is None or value == "dynamic":
        return None
    try:
        batch = int(value)
    except (TypeError, ValueError):
        batch = 0
    if batch < 1:
        raise ExportError(f"batch {value!r}: expected a positive integer or 'dynamic'")
    return batch


def exported_weights(model: DepthModel, dtype: str) -> Any:
    """The model's variables as stored in the export: float16 halves the file (floating
    leaves only; computation stays float32, see `depth_function`)."""
    if dtype == "float32":
        return model.variables
    # NumPy casts: one jitted cast per variable shape would take seconds to compile.
    return jax.tree.map(lambda a: np.asarray(a).astype(np.float16) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                        model.variables)


def depth_function(model: DepthModel) -> Callable[[Any, jax.Array], jax.Array]:
    """`fn(weights, images01) -> metres`: `metric_depth` with the weights brought back to
    float32 *inside* the traced program, so float16 weights stay float16 in the file."""

    def fn(weights, images01):
        weights = jax.tree.map(
            lambda a: jax.lax.convert_element_type(a, jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a,
            weights)
        return model.metric_depth(weights, images01)

    return fn


def fold_weights(fn: Callable[[Any, jax.Array], jax.Array], weights: Any,
                 images: jax.ShapeDtypeStruct) -> tuple[Callable[[list, jax.Array], jax.Array], list]:
    """`fn(weights, images)` as `folded(constants, images)`, `constants`: everything that
    depends on the weights alone (BatchNorm's scale and shift, the kernels rearranged for
    sub-pixel convolutions...), computed now in one XLA computation.

    The TFLite converter folds such computations itself only while they are small: on the
    official network the sub-pixel kernels' scatters would stay in the file as
    STABLEHLO_SCATTER ops, run on every call (and unknown to tf2onnx). This is JAX's own
    partial evaluation (as `jax.linearize` splits a function), which JAX exposes only
    internally. Trace in the lowering `fn` should have.
    """
    from jax._src.interpreters import partial_eval as pe  # no public API for it
    from jax.extend.core import jaxpr_as_fun

    leaves, treedef = jax.tree_util.tree_flatten(weights)

    def flat(*args):
        return fn(jax.tree_util.tree_unflatten(treedef, args[:-1]), args[-1])

    program = jax.make_jaxpr(flat)(*leaves, images)
    known, unknown, _, _ = pe.partial_eval_jaxpr_nounits(program, [False] * len(leaves) + [True], instantiate=True)
    constants = [np.asarray(c) for c in jax.jit(jaxpr_as_fun(known))(*leaves)]
    return (lambda consts, x: jaxpr_as_fun(unknown)(*consts, x)[0]), constants


def image_size(model: DepthModel) -> tuple[int, int]:
    h, w = (int(s) for s in model.image_size)
    return h, w


@contextlib.contextmanager
def plain_lowering() -> Iterator[None]:
    """Trace with the network's plain convolutions, not the XLA:CPU rewrites.

    `layers.CPU_CONV_REWRITES` (on when JAX's backend is the CPU) replaces unpadded and
    transposed convolutions by padded-and-cropped and sub-pixel ones: same sums, faster
    on jaxlib's YNNPACK only. A StableHLO file (or SavedModel) lowered for several
    platforms would carry the CPU workaround to all of them, so these hold the network
    as stated (docs/benchmarks.md has the cost on XLA:CPU). The TFLite converter needs
    the other form of the transposed convolutions (`tflite_lowering`).
    """
    with layers.cpu_conv_rewrites(False):
        yield


@contextlib.contextmanager
def tflite_lowering() -> Iterator[None]:
    """Trace with transposed convolutions as sub-pixel convolutions (the XLA:CPU rewrites),
    for the TFLite converter.

    TensorFlow 2.21's converter mis-converts a transposed convolution whose padding crops
    its output (PyTorch's `padding=1, output_padding=1`, DepthNet's up-blocks): the TFLite
    TRANSPOSE_CONV it emits computes wrong values, silently (max abs error 17.6 on a random
    6x10x4 input and 3x3x4x5 kernel; `lax.conv_transpose(..., 'SAME')` comes out with the
    wrong shape; other paddings fail to legalize). The sub-pixel form
    (`layers.conv_transpose_subpixel`) is made of ordinary convolutions, reshapes and a
    transpose, which convert exactly; the same switch also pads-and-crops unpadded
    convolutions, which the converter handles either way.
    """
    with layers.cpu_conv_rewrites(True):
        yield


def _looks_like_savedmodel(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def check_output(path: str | os.PathLike, directory: bool, overwrite: bool) -> None:
    """Refuse an `--output` that exists (unless `overwrite`) or that an export may not replace."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    if directory and not (os.path.isdir(path) and (_looks_like_savedmodel(path) or not os.listdir(path))):
        raise ExportError(f"{path} exists and is not a SavedModel directory; choose another --output")
    if not directory and not os.path.isfile(path):
        raise ExportError(f"{path} exists and is not a file; choose another --output")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False, directory: bool = False) -> Iterator[str]:
    """Yield a temporary path beside `path` to write a file (or a directory) to; once the
    block completes it is renamed to `path`. An interrupted or failed export leaves
    nothing at `path`, and `overwrite` keeps the previous export until the new one is
    complete."""
    path = os.path.abspath(os.fspath(path))
    check_output(path, directory, overwrite)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        target = os.path.join(staging, name)
        yield target
        if not os.path.exists(target):
            raise ExportError(f"internal: nothing was written for {path}")
        if directory and os.path.isdir(path):  # a directory cannot be replaced in one rename
            old = os.path.join(staging, name + ".old")
            os.rename(path, old)  # deleted with the staging directory once the new one is in place
            try:
                os.rename(target, path)
            except BaseException:
                os.rename(old, path)
                raise
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def describe(model: DepthModel, fmt: str, options: ExportOptions) -> str:
    """One line saying what the export takes and returns."""
    h, w = image_size(model)
    n = "N" if options.batch is None else str(options.batch)
    depth_range_m = getattr(getattr(model, "spec", None), "depth_range_m", None)
    cap = f", at most {depth_range_m:g} m" if depth_range_m else ""
    weights = "float16 weights" if options.dtype == "float16" else "float32 weights"
    return (f"{fmt}: {INPUT_NAME} float32 ({n}, {h}, {w}, 3) RGB in [0, 1] -> {OUTPUT_NAME} float32 "
            f"({n}, {h}, {w}) metres{cap}; {weights}")


def output_bytes(path: str | os.PathLike) -> int:
    """The size of an export: a file, or all the files of a SavedModel directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)
    return os.path.getsize(path)
