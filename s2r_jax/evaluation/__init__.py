"""Depth evaluation: the official S2R-DepthNet KITTI/NYUv2 metrics and the other
published protocols (monodepth2, metric, ZoeDepth KITTI), in NumPy.

See `s2r_jax.evaluation.metrics` for the definitions.
"""
from s2r_jax.evaluation.metrics import (
    METRIC_NAMES,
    OFFICIAL_METRIC_ORDER,
    PROTOCOLS,
    Protocol,
    compute_metrics,
    crop_box,
    crop_mask,
    evaluate,
    evaluate_frame,
    format_table,
    get_protocol,
    input_window,
    kb_crop,
    make3d_image_window,
    mean_metrics,
    resize_nearest,
    upsample_to,
)

__all__ = [
    "METRIC_NAMES",
    "OFFICIAL_METRIC_ORDER",
    "PROTOCOLS",
    "Protocol",
    "compute_metrics",
    "crop_box",
    "crop_mask",
    "evaluate",
    "evaluate_frame",
    "format_table",
    "get_protocol",
    "input_window",
    "kb_crop",
    "make3d_image_window",
    "mean_metrics",
    "resize_nearest",
    "upsample_to",
]
