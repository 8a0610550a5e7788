"""The resizes evaluation applies to predictions: torch's bilinear with align_corners=True (the
official test's), bit-for-bit in float32, and cv2's nearest neighbour (Make3D C1). NumPy only."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from s2r_jax.evaluation.crops import _shape2


def _axis_taps(n_in: int, n_out: int, dtype) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weight of the upper tap, align_corners=True, on one axis.

    Mirrors ATen's `area_pixel_compute_scale` / `area_pixel_compute_source_index`:
    scale = (n_in - 1) / (n_out - 1) and src = scale * i, both rounded to `dtype`
    (torch's float32 kernels compute them in float32; their rounding moves a sample
    by up to ~1e-5 pixel on a 160 -> 1242 resize, which is visible in the output).
    """
    if n_out == 1 or n_in == 1:
        src = np.zeros(n_out, dtype=dtype)  # torch: scale 0 when the output has one sample
    else:
        scale = dtype(n_in - 1) / dtype(n_out - 1)
        src = dtype(scale) * np.arange(n_out, dtype=dtype)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0.astype(dtype)).astype(dtype)


def _lerp(x0: np.ndarray, w0: np.ndarray, x1: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """w0 * x0 + w1 * x1; in float32 as a fused multiply-add fma(w0, x0, w1 * x1).

    That is how torch's float32 CPU kernel rounds (bit-for-bit with torch 2.13 on x86): the
    product w1 * x1 is rounded to float32, w0 * x0 is not (it is exact in float64).
    """
    if x0.dtype == np.float32:
        fused = w0.astype(np.float64) * x0.astype(np.float64) + (w1 * x1).astype(np.float64)
        return fused.astype(np.float32)
    return w0 * x0 + w1 * x1


def resize_nearest(pred: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D map to `shape`, as cv2.resize(INTER_NEAREST):
    output (i, j) takes input (floor(i / (h_out / h_in)), floor(j / (w_out / w_in))),
    clipped to the last row / column. The Make3D C1 evaluations resize this way."""
    x = np.asarray(pred)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    h_out, w_out = _shape2(shape)

    def taps(n_in, n_out):
        inv_scale = 1.0 / (n_out / n_in)  # cv2: ifx = 1. / fx with fx = dsize / ssize, in double
        return np.minimum(np.floor(np.arange(n_out) * inv_scale).astype(np.int64), n_in - 1)

    return x[taps(x.shape[0], h_out)][:, taps(x.shape[1], w_out)]


def upsample_to(pred: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Bilinear resize of a 2-D (or (H, W, 1)) map to `shape` = (H, W), align_corners=True.

    The NumPy counterpart of `torch.nn.functional.interpolate(x[None, None], size,
    mode="bilinear", align_corners=True)`, which the official test uses to bring
    the prediction to the ground-truth size (and of `s2r_jax.models.layers.
    resize_bilinear`). A float32 (or narrower float) input is resized in float32
    arithmetic the way torch's float32 kernel does it (source coordinates and
    weights rounded to float32, h0 * (w0 * x00 + w1 * x01) + h1 * (...) with fused
    multiply-adds) and a float32 array is returned, so the official float32 network
    output is reproduced to the last bit or so; any other input is resized and
    returned in float64. Works for down-sizing too.
    """
    x = np.asarray(pred)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"upsample_to needs a 2-D map, got shape {x.shape}")
    dtype = np.float32 if (np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize <= 4) else np.float64
    x = x.astype(dtype)
    h_out, w_out = _shape2(shape)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"bad output shape {tuple(shape)}")
    if x.shape == (h_out, w_out):
        return x
    one = dtype(1)
    c0, c1, cw = _axis_taps(x.shape[1], w_out, dtype)
    x = _lerp(x[:, c0], (one - cw)[None, :], x[:, c1], cw[None, :])
    r0, r1, rw = _axis_taps(x.shape[0], h_out, dtype)
    return _lerp(x[r0, :], (one - rw)[:, None], x[r1, :], rw[:, None])
