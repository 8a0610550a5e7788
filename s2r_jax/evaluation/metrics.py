"""Monocular depth metrics under the published evaluation protocols (NumPy only).

The reference is S2R-DepthNet's `test.py` (microsoft/S2R-DepthNet):
`kitti_metrics_preprocess` / `kitti_compute_metrics` for KITTI and
`nyu_metrics_preprocess` / `nyu_compute_metrics` for NYUv2. What it does, and what
`Protocol("s2r_official")` / `Protocol("s2r_official_nyu")` reproduce:

1. The network output is upsampled to the ground-truth size with
   `F.interpolate(mode="bilinear", align_corners=True)` (`upsample_to` here) and
   mapped to metres by the caller ((x + 1) / 2 * 80 for KITTI, * 8 for NYUv2; the
   NYUv2 ground-truth PNG is in millimetres and divided by 1000). Everything in this
   module takes depth in metres.
2. The prediction is clamped to [min_depth, max_depth] (1e-3..80 m KITTI, 1e-3..8 m
   NYUv2).
3. Valid pixels: min_depth < gt < max_depth (both strict), and for KITTI only, inside
   the Garg crop, whose box is `np.array([0.40810811 H, 0.99189189 H, 0.03594771 W,
   0.96405229 W]).astype(np.int32)` (truncation). NYUv2 uses no crop at all.
4. The prediction is multiplied by median(gt[valid]) / median(clamped pred[valid]),
   and is NOT clamped again: scaled values above max_depth stay as they are.
   (monodepth2 does the opposite order: scale the raw prediction, then clamp.)
5. Metrics on the valid pixels of each image; the reported numbers are the mean of
   the per-image metrics.

Arithmetic here is float64, except that a float32 prediction is resized in
float32 exactly as torch's float32 kernel does (see `upsample_to`). The official
script also keeps the scaled prediction in float32 (`pred[mask] *= scalar` is in
place on the float32 network output); that changes the metrics by ~1e-8 relative,
far below the 4 decimals it prints.

Metric definitions (`compute_metrics`; gt and pred are the valid pixels, in metres):
  abs_rel  = mean(|gt - pred| / gt)
  sq_rel   = mean((gt - pred)^2 / gt)
  rmse     = sqrt(mean((gt - pred)^2))
  rmse_log = sqrt(mean((log gt - log pred)^2))
  log10    = mean(|log10 gt - log10 pred|)
  silog    = 100 * sqrt(mean(d^2) - mean(d)^2), d = log pred - log gt
             (the scale-invariant log error of Eigen et al., NIPS 2014, as the square
             root of its lambda = 1 form, times 100: the KITTI depth-prediction
             benchmark's "SILog" and the `silog` of BTS / AdaBins / ZoeDepth's
             `compute_errors`. The difference of means is clamped at 0 so that a
             prediction exactly proportional to gt gives 0 instead of NaN from a
             -1e-17 rounding residue.)
  a1/a2/a3 = fraction of pixels with max(gt / pred, pred / gt) < 1.25, 1.25^2, 1.25^3
             (strict).
The official S2R script reports only [abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3]
(`OFFICIAL_METRIC_ORDER`).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

METRIC_NAMES: Tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "a1", "a2", "a3")
OFFICIAL_METRIC_ORDER: Tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

CROPS: Tuple[str, ...] = ("none", "garg", "eigen", "kb_garg", "nyu_eigen", "zoedepth_eigen", "cityscapes",
                          "make3d_c1")
MEDIAN_SCALINGS: Tuple[str, ...] = ("official", "monodepth2", "none")

# Garg et al., ECCV 2016 crop, as fractions of (H, H, W, W): rows [top, bottom), cols [left, right).
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al., NIPS 2014 crop for KITTI, as used by monodepth / BTS / ZoeDepth ("eigen_crop").
EIGEN_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# NYUv2 Eigen crop, defined for 480x640 images only (BTS / AdaBins / ZoeDepth: eval_mask[45:471, 41:601]).
NYU_EIGEN_BOX = (45, 471, 41, 601)
NYU_EIGEN_SHAPE = (480, 640)
# KB crop (Kitti benchmark / BTS / ZoeDepth "do_kb_crop"): the bottom-centred 352x1216 window.
KB_HEIGHT, KB_WIDTH = 352, 1216
# Cityscapes (ManyDepth's evaluate_depth.py): the model sees the image without its bottom 25 %
# (the ego car): rows [0, round(0.75 H)); evaluation uses rows 256: and columns 192:1856 of that.
CITYSCAPES_KEEP_FRACTION, CITYSCAPES_BOX = 0.75, (256, None, 192, 1856)
# Make3D C1 (T2Net / GASDA / monodepth evaluations): the image is centre-cropped to 2:1 and the
# 55-row laser grid to its 21 middle rows, int((55 - 21) / 2):int((55 + 21) / 2) = 17:38.
MAKE3D_GRID_ROWS, MAKE3D_CROP_ROWS = 55, 21

_SCALING_TEXT = {
    "official": "clamp prediction to range, then median-scale; no clamp after",
    "monodepth2": "median-scale raw prediction, then clamp to range",
    "none": "prediction only clamped to range",
}

Box = Tuple[int, int, int, int]


# ----------------------------------------------------------------------------- protocol


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a predicted depth map is compared with its ground truth.

    crop: 'garg' | 'eigen' (KITTI fractions of the image size, any KITTI size) |
      'kb_garg' (KB crop to 352x1216, then the Garg fractions of the 352x1216 image) |
      'nyu_eigen' (rows 45:471, cols 41:601 of a 480x640 image) |
      'zoedepth_eigen' (the same box by absolute indices on an image of any size, clipped
      to it: ZoeDepth's compute_metrics with eigen_crop on every dataset but KITTI) |
      'cityscapes' (ManyDepth: the prediction covers rows [0, round(0.75 H)); rows 256: and
      columns 192:1856 of those are evaluated) |
      'make3d_c1' (Make3D C1: the prediction covers the 2:1 centre crop of the image and is
      compared, resized by nearest neighbour as cv2.INTER_NEAREST does, with rows 17:38 of
      the 55x305 laser grid) | 'none'.
      For the three window crops (kb_garg, cityscapes, make3d_c1) see `input_window`.
    min_depth, max_depth: valid ground truth is min_depth < gt < max_depth; the
      prediction is clamped to [min_depth, max_depth] (when, depends on the scaling).
      min_depth may be 0 (ZoeDepth's SUN RGB-D and iBims-1 settings: any gt > 0).
    median_scaling: 'official' (S2R test.py: clamp, then scale by median(gt)/median(pred)
      over the valid pixels, no clamp after) | 'monodepth2' (scale the raw prediction,
      then clamp) | 'none' (clamp only).
    flip_tta: whether predictions are to be averaged with the prediction of the
      horizontally flipped image. Recorded for the caller; this module does not run models.
    """

    name: str
    crop: str = "garg"
    min_depth: float = 1e-3
    max_depth: float = 80.0
    median_scaling: str = "official"
    flip_tta: bool = False
    description: str = ""

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"protocol {self.name!r}: unknown crop {self.crop!r}; choose one of {CROPS}")
        if self.median_scaling not in MEDIAN_SCALINGS:
            raise ValueError(f"protocol {self.name!r}: unknown median_scaling {self.median_scaling!r}; "
                             f"choose one of {MEDIAN_SCALINGS}")
        if not (np.isfinite(self.min_depth) and np.isfinite(self.max_depth)) or not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"protocol {self.name!r}: need 0 <= min_depth < max_depth, got "
                             f"{self.min_depth}..{self.max_depth}")

    def to_dict(self) -> Dict[str, Any]:
        """Plain-JSON description of the protocol (all fields)."""
        d = dataclasses.asdict(self)
        d["min_depth"] = float(d["min_depth"])
        d["max_depth"] = float(d["max_depth"])
        d["flip_tta"] = bool(d["flip_tta"])
        return d

    def summary(self) -> str:
        """One line: the settings, in words."""
        return (f"protocol {self.name}: crop {self.crop}, valid {self.min_depth:g} < gt < {self.max_depth:g} m, "
                f"median scaling {self.median_scaling} ({_SCALING_TEXT[self.median_scaling]}), "
                f"flip TTA {'on' if self.flip_tta else 'off'}")


PROTOCOLS: Dict[str, Protocol] = {
    p.name: p for p in (
        Protocol(
            "s2r_official", crop="garg", min_depth=1e-3, max_depth=80.0, median_scaling="official",
            description="S2R-DepthNet test.py, KITTI (kitti_metrics_preprocess): prediction clamped to "
                        "[1e-3, 80], valid 1e-3 < gt < 80 inside the Garg crop, median-scaled over the "
                        "valid pixels with no clamp after; per-image metrics averaged."),
        Protocol(
            "s2r_official_nyu", crop="none", min_depth=1e-3, max_depth=8.0, median_scaling="official",
            description="S2R-DepthNet test.py, NYUv2 (nyu_metrics_preprocess): prediction clamped to "
                        "[1e-3, 8], valid 1e-3 < gt < 8, no crop, median-scaled with no clamp after; "
                        "per-image metrics averaged."),
        Protocol(
            "monodepth2", crop="garg", min_depth=1e-3, max_depth=80.0, median_scaling="monodepth2",
            description="monodepth2 evaluate_depth.py, Eigen split: valid 1e-3 < gt < 80 inside the Garg "
                        "crop, raw prediction median-scaled, then clamped to [1e-3, 80]."),
        Protocol(
            "metric", crop="garg", min_depth=1e-3, max_depth=80.0, median_scaling="none",
            description="Metric depth, no scaling: valid 1e-3 < gt < 80 inside the Garg crop, prediction "
                        "clamped to [1e-3, 80]."),
        Protocol(
            "zoedepth_kitti", crop="kb_garg", min_depth=1e-3, max_depth=80.0, median_scaling="none",
            flip_tta=True,
            description="ZoeDepth KITTI (config do_kb_crop=True, garg_crop=True, eigen_crop=False, "
                        "min/max_depth_eval 1e-3/80): ground truth KB-cropped to 352x1216, prediction "
                        "(of the KB-cropped image) bilinearly resized with align_corners=True to it, "
                        "clamped to [1e-3, 80], valid 1e-3 < gt < 80 inside the Garg fractions of the "
                        "352x1216 crop, no scaling, flip TTA in ZoeDepth's evaluate.py."),
    )
}


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """A preset from `PROTOCOLS`, with fields optionally overridden.

    Overrides keep the preset's name; the description records them.
    """
    if isinstance(name, Protocol):
        base = name
    elif name in PROTOCOLS:
        base = PROTOCOLS[name]
    else:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    if not overrides:
        return base
    fields = {f.name for f in dataclasses.fields(Protocol)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown protocol field(s) {unknown}; fields are {sorted(fields)}")
    if "description" not in overrides:
        changed = ", ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))
        overrides["description"] = f"{base.description} [overridden: {changed}]".strip()
    return dataclasses.replace(base, **overrides)


def _as_protocol(protocol: Union[Protocol, str]) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, str):
        return get_protocol(protocol)
    raise TypeError(f"protocol must be a Protocol or a preset name, got {type(protocol).__name__}")


# ----------------------------------------------------------------------------- crops


def _shape2(shape: Sequence[int]) -> Tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"need an (H, W) shape, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def kb_offsets(shape: Sequence[int]) -> Tuple[int, int]:
    """(top, left) of the KB crop: top = H - 352, left = (W - 1216) // 2."""
    h, w = _shape2(shape)
    if h < KB_HEIGHT or w < KB_WIDTH:
        raise ValueError(f"KB crop needs an image of at least {KB_HEIGHT}x{KB_WIDTH}, got {h}x{w}")
    return h - KB_HEIGHT, (w - KB_WIDTH) // 2


def kb_crop(array: np.ndarray) -> np.ndarray:
    """The KB / BTS crop: the 352x1216 window at the bottom, horizontally centred.

    Works on (H, W) and (H, W, ...) arrays; returns a view.
    """
    array = np.asarray(array)
    top, left = kb_offsets(array.shape)
    return array[top:top + KB_HEIGHT, left:left + KB_WIDTH]


def _fraction_box(h: int, w: int, fractions: Sequence[float]) -> Box:
    # Truncation toward zero, as `np.array([...]).astype(np.int32)` (official) and `int()` (ZoeDepth).
    f0, f1, f2, f3 = fractions
    return int(f0 * h), int(f1 * h), int(f2 * w), int(f3 * w)


def _clipped_box(h: int, w: int, top: int, bottom: Optional[int], left: int, right: Optional[int]) -> Box:
    """The box numpy slicing [top:bottom, left:right] selects in an (h, w) image."""
    rows, cols = range(h)[top:bottom], range(w)[left:right]
    return rows.start, max(rows.start, rows.stop), cols.start, max(cols.start, cols.stop)


def _make3d_rows(h: int) -> Tuple[int, int]:
    if h != MAKE3D_GRID_ROWS:
        raise ValueError(f"the Make3D C1 crop is defined on the {MAKE3D_GRID_ROWS}-row laser grid, got {h} rows")
    return int((h - MAKE3D_CROP_ROWS) / 2), int((h + MAKE3D_CROP_ROWS) / 2)


def input_window(shape: Sequence[int], crop: str) -> Box:
    """(top, bottom, left, right): the part of a ground-truth frame of `shape` that the
    prediction covers under `crop` -- what the model is shown.

    'kb_garg': the KB crop; 'cityscapes': rows [0, round(0.75 H)) (Python's round, as
    ManyDepth); 'make3d_c1': the grid rows 17:38 that match the image's 2:1 centre crop
    (`make3d_image_window` gives the image's rows); any other crop: the whole frame.
    """
    h, w = _shape2(shape)
    if crop == "kb_garg":
        top, left = kb_offsets((h, w))
        return top, top + KB_HEIGHT, left, left + KB_WIDTH
    if crop == "cityscapes":
        return 0, int(round(h * CITYSCAPES_KEEP_FRACTION)), 0, w
    if crop == "make3d_c1":
        return (*_make3d_rows(h), 0, w)
    return 0, h, 0, w


def make3d_image_window(shape: Sequence[int]) -> Box:
    """The 2:1 centre crop of a Make3D image (2272x1704 portrait: rows 710:1562), which the
    model is shown under 'make3d_c1': height = width / 2, as the C1 evaluations crop it."""
    h, w = _shape2(shape)
    new_h = w / 2
    return int((h - new_h) / 2), int((h + new_h) / 2), 0, w


def crop_box(shape: Sequence[int], crop: str) -> Box:
    """(top, bottom, left, right) of the evaluation crop for an image of `shape`.

    Rows top:bottom and columns left:right (exclusive ends), in `shape`'s pixel
    coordinates. For 'kb_garg' the box is the Garg box of the KB-cropped
    352x1216 image, shifted back into the full image; 'cityscapes' and 'make3d_c1'
    likewise lie inside their `input_window`.
    """
    h, w = _shape2(shape)
    if crop == "none":
        return 0, h, 0, w
    if crop == "garg":
        return _fraction_box(h, w, GARG_FRACTIONS)
    if crop == "eigen":
        return _fraction_box(h, w, EIGEN_FRACTIONS)
    if crop == "kb_garg":
        top, left = kb_offsets((h, w))
        t, b, l, r = _fraction_box(KB_HEIGHT, KB_WIDTH, GARG_FRACTIONS)
        return top + t, top + b, left + l, left + r
    if crop == "nyu_eigen":
        if (h, w) != NYU_EIGEN_SHAPE:
            raise ValueError(f"the NYUv2 Eigen crop is defined for {NYU_EIGEN_SHAPE[0]}x{NYU_EIGEN_SHAPE[1]} "
                             f"images, got {h}x{w}")
        return NYU_EIGEN_BOX
    if crop == "zoedepth_eigen":
        # ZoeDepth's compute_metrics: eval_mask[45:471, 41:601] = 1 whatever the size.
        return _clipped_box(h, w, *NYU_EIGEN_BOX)
    if crop == "cityscapes":
        _, kept, _, _ = input_window((h, w), crop)
        return _clipped_box(kept, w, *CITYSCAPES_BOX)
    if crop == "make3d_c1":
        return (*_make3d_rows(h), 0, w)
    raise ValueError(f"unknown crop {crop!r}; choose one of {CROPS}")


def crop_mask(shape: Sequence[int], crop: str) -> np.ndarray:
    """Boolean (H, W) mask, True inside `crop_box(shape, crop)`."""
    h, w = _shape2(shape)
    top, bottom, left, right = crop_box((h, w), crop)
    mask = np.zeros((h, w), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


# ----------------------------------------------------------------------------- resize


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


# ----------------------------------------------------------------------------- metrics


def compute_metrics(gt: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """All metrics of `METRIC_NAMES` on already-masked 1-D arrays of positive depths (metres).

    See the module docstring for the definitions. Computed in float64.
    """
    gt = np.asarray(gt, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"compute_metrics: gt has {gt.size} values, pred {pred.size}")
    if gt.size == 0:
        raise ValueError("compute_metrics: no pixels")
    if not (np.all(gt > 0) and np.all(pred > 0)):
        raise ValueError("compute_metrics: depths must be positive")

    diff = gt - pred
    log_diff = np.log(pred) - np.log(gt)
    thresh = np.maximum(gt / pred, pred / gt)
    silog_var = np.mean(log_diff ** 2) - np.mean(log_diff) ** 2
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff ** 2))),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "silog": float(np.sqrt(max(silog_var, 0.0)) * 100.0),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25 ** 2)),
        "a3": float(np.mean(thresh < 1.25 ** 3)),
    }


def _where(index: Optional[int]) -> str:
    return f"frame {index}: " if index is not None else ""


def _as_map(array: np.ndarray, what: str, index: Optional[int]) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{_where(index)}{what} must be 2-D (H, W) or (H, W, 1), got shape {np.shape(array)}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{_where(index)}{what} must be numeric, got dtype {a.dtype}")
    return a


def _check_prediction(pred: np.ndarray, index: Optional[int]) -> None:
    bad = ~np.isfinite(pred)
    if bad.any():
        raise ValueError(f"{_where(index)}prediction has {int(np.isnan(pred).sum())} NaN and "
                         f"{int(np.isinf(pred).sum())} infinite values")
    neg = pred < 0
    if neg.any():
        raise ValueError(f"{_where(index)}prediction has {int(neg.sum())} negative values "
                         f"(min {float(pred.min()):g}); depths must be >= 0 metres")


def evaluate_frame(gt: np.ndarray, pred: np.ndarray, protocol: Union[Protocol, str], *,
                   index: Optional[int] = None,
                   pred_is_kb_cropped: Optional[bool] = None) -> Optional[Dict[str, float]]:
    """Metrics of one frame under `protocol`, or None when it has no valid pixel.

    gt: (H, W) or (H, W, 1) ground truth in metres, 0 (or anything outside the
      range) = no data. pred: prediction in metres, at any size; when its size
      differs from the ground truth's it is resized with `upsample_to`
      (align_corners=True), as the official test does.
    For crop 'kb_garg' the ground truth is KB-cropped to 352x1216. The prediction
      is taken as a prediction of the KB-cropped image when `pred_is_kb_cropped`
      (default: when its shape is exactly the crop's and differs from gt's) and
      resized to 352x1216 like ZoeDepth does; otherwise as a prediction of the
      full frame: resized to gt's size, then KB-cropped.
    For crops 'cityscapes' and 'make3d_c1' the ground truth is cut to `input_window`;
      a prediction of exactly gt's shape is taken as one of the full frame (cut the
      same way), any other as one of the window (what those protocols show the
      model), resized to it (nearest neighbour for 'make3d_c1', as its evaluations do).
    index: the frame number, used in error messages.

    Returns the `METRIC_NAMES` metrics plus 'scale' (the median scale applied,
    1.0 without scaling) and 'valid_pixels'. A frame without valid pixels gives
    None; `mean_metrics` leaves such frames out of the average (the official
    script would have produced NaN for it and a NaN mean).
    """
    protocol = _as_protocol(protocol)
    gt = _as_map(gt, "ground truth", index).astype(np.float64)
    pred = _as_map(pred, "prediction", index)  # dtype kept: a float32 map is resized as torch does
    _check_prediction(pred, index)

    try:
        top, bottom, left, right = input_window(gt.shape, protocol.crop)
        region = crop_mask(gt.shape, protocol.crop)[top:bottom, left:right]
    except ValueError as e:
        raise ValueError(f"{_where(index)}ground truth: {e}") from None
    gt_eval = gt[top:bottom, left:right]
    if gt_eval.shape == gt.shape:
        pred_eval = upsample_to(pred, gt.shape)
    else:
        if protocol.crop == "kb_garg":
            of_window = pred_is_kb_cropped if pred_is_kb_cropped is not None else (
                pred.shape == gt_eval.shape and pred.shape != gt.shape)
        else:
            of_window = pred.shape != gt.shape
        if of_window:
            resize = resize_nearest if protocol.crop == "make3d_c1" else upsample_to
            pred_eval = resize(pred, gt_eval.shape)
        else:
            pred_eval = upsample_to(pred, gt.shape)[top:bottom, left:right]
    pred_eval = pred_eval.astype(np.float64)
    lo, hi = float(protocol.min_depth), float(protocol.max_depth)
    with np.errstate(invalid="ignore"):
        mask = (gt_eval > lo) & (gt_eval < hi) & region
    n_valid = int(mask.sum())
    if n_valid == 0:
        return None

    gt_v = gt_eval[mask]
    pred_v = pred_eval[mask]
    if protocol.median_scaling == "official":
        pred_v = np.clip(pred_v, lo, hi)
        if np.median(pred_v) <= 0:  # only possible with min_depth 0
            raise ValueError(f"{_where(index)}the median clamped prediction over the valid pixels is 0; "
                             "median scaling is undefined")
        scale = float(np.median(gt_v) / np.median(pred_v))
        pred_v = pred_v * scale
    elif protocol.median_scaling == "monodepth2":
        med = float(np.median(pred_v))
        if med <= 0:
            raise ValueError(f"{_where(index)}the median prediction over the valid pixels is 0; "
                             "median scaling (monodepth2 order) is undefined")
        scale = float(np.median(gt_v) / med)
        pred_v = np.clip(pred_v * scale, lo, hi)
    else:
        scale = 1.0
        pred_v = np.clip(pred_v, lo, hi)

    out = compute_metrics(gt_v, pred_v)
    out["scale"] = scale
    out["valid_pixels"] = n_valid
    return out


def mean_metrics(per_image: Sequence[Optional[Dict[str, float]]]) -> Dict[str, float]:
    """Mean of each metric over frames (frames given as None are left out).

    This is how the official script aggregates: the mean of per-image metrics,
    not metrics of all pixels pooled. Averages the `METRIC_NAMES` keys present in
    every frame's dict.
    """
    valid = [d for d in per_image if d is not None]
    if not valid:
        raise ValueError("no frame with a valid ground-truth pixel to average")
    keys = [k for k in METRIC_NAMES if all(k in d for d in valid)]
    return {k: float(np.mean([d[k] for d in valid])) for k in keys}


def evaluate(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], protocol: Union[Protocol, str],
             progress: bool = True, *, progress_every: int = 50,
             pred_is_kb_cropped: Optional[bool] = None,
             ) -> Tuple[Dict[str, float], List[Optional[Dict[str, float]]]]:
    """Evaluate a list of frames: (mean over frames, per-frame results).

    gts, preds: sequences (lists, or stacked arrays) of per-frame maps in metres;
    see `evaluate_frame`. The mean dict has the `METRIC_NAMES` means plus
    'frames' (frames averaged) and 'frames_skipped' (frames without a valid
    pixel), and with median scaling 'scale_median' and 'scale_std' of the
    per-frame scales. per_image[i] is frame i's `evaluate_frame` result (or None).
    With `progress`, a line goes to stderr every `progress_every` frames and at the end.
    """
    protocol = _as_protocol(protocol)
    n, n_pred = len(gts), len(preds)
    if n != n_pred:
        raise ValueError(f"{n} ground-truth frames but {n_pred} predictions")
    if n == 0:
        raise ValueError("no frames to evaluate")
    every = max(1, int(progress_every))
    start = time.perf_counter()
    per_image: List[Optional[Dict[str, float]]] = []
    for i in range(n):
        per_image.append(evaluate_frame(gts[i], preds[i], protocol, index=i,
                                        pred_is_kb_cropped=pred_is_kb_cropped))
        if progress and ((i + 1) % every == 0 or i + 1 == n):
            print(f"[eval {protocol.name}] {i + 1}/{n} frames, {time.perf_counter() - start:.1f} s",
                  file=sys.stderr, flush=True)
    mean: Dict[str, float] = dict(mean_metrics(per_image))
    done = [d for d in per_image if d is not None]
    mean["frames"] = len(done)
    mean["frames_skipped"] = n - len(done)
    if protocol.median_scaling != "none":
        scales = np.array([d["scale"] for d in done])
        mean["scale_median"] = float(np.median(scales))
        mean["scale_std"] = float(np.std(scales))
    return mean, per_image


def format_table(mean: Dict[str, float], protocol: Union[Protocol, str]) -> str:
    """A terminal table: the protocol's settings, then one row of metric means."""
    protocol = _as_protocol(protocol)
    lines = [protocol.summary()]
    if "frames" in mean:
        lines.append(f"frames: {int(mean['frames'])} evaluated, "
                     f"{int(mean.get('frames_skipped', 0))} without valid ground truth")
    if "scale_median" in mean:
        lines.append(f"median scale: {mean['scale_median']:.4f} (std {mean.get('scale_std', float('nan')):.4f})")
    names = [k for k in METRIC_NAMES if k in mean]
    lines.append(" ".join(f"{k:>9}" for k in names))
    lines.append(" ".join(f"{mean[k]:9.4f}" for k in names))
    return "\n".join(lines)
