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

import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from s2r_jax.evaluation.crops import crop_mask, input_window
from s2r_jax.evaluation.protocols import METRIC_NAMES, Protocol, as_protocol
from s2r_jax.evaluation.resize import resize_nearest, upsample_to


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
    protocol = as_protocol(protocol)
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
    protocol = as_protocol(protocol)
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
    mean = summarise(per_image, protocol)
    return mean, per_image


def summarise(per_image: Sequence[Optional[Dict[str, float]]], protocol: Union[Protocol, str]) -> Dict[str, float]:
    """The means over frames, plus 'frames' (averaged), 'frames_skipped' (no valid pixel) and,
    with median scaling, 'scale_median' and 'scale_std' of the per-frame scales."""
    protocol = as_protocol(protocol)
    mean: Dict[str, float] = dict(mean_metrics(per_image))
    done = [d for d in per_image if d is not None]
    mean["frames"] = len(done)
    mean["frames_skipped"] = len(per_image) - len(done)
    if protocol.median_scaling != "none":
        scales = np.array([d["scale"] for d in done])
        mean["scale_median"] = float(np.median(scales))
        mean["scale_std"] = float(np.std(scales))
    return mean
