"""Depth evaluation under the published protocols.

`protocols` (the presets), `crops`, `resize` (the official align_corners resize),
`metrics` (per-frame metrics and their means), `report` (the table and files),
`prediction_files` (predictions made by any model) are NumPy only; `evaluator` runs a
model over a dataset on a mesh of one or many hosts.
"""
from s2r_jax.data.preprocessing import kb_crop
from s2r_jax.evaluation.crops import crop_box, crop_mask, input_window, make3d_image_window
from s2r_jax.evaluation.metrics import compute_metrics, evaluate, evaluate_frame, mean_metrics
from s2r_jax.evaluation.protocols import (
    METRIC_NAMES,
    OFFICIAL_METRIC_ORDER,
    PROTOCOLS,
    Protocol,
    get_protocol,
    protocol_from_config,
)
from s2r_jax.evaluation.report import format_table
from s2r_jax.evaluation.resize import resize_nearest, upsample_to

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
    "protocol_from_config",
    "resize_nearest",
    "upsample_to",
]
