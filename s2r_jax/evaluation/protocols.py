"""The published evaluation protocols: how a predicted depth map is compared with its ground
truth (crop, depth range, median scaling, flip TTA), as named presets. NumPy only.

See docs/evaluation.md for which paper reports which protocol, and `s2r_jax.evaluation.metrics`
for what each step does.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple, Union

import numpy as np

METRIC_NAMES: Tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "a1", "a2", "a3")
OFFICIAL_METRIC_ORDER: Tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

CROPS: Tuple[str, ...] = ("none", "garg", "eigen", "kb_garg", "nyu_eigen", "zoedepth_eigen", "cityscapes",
                          "make3d_c1")
MEDIAN_SCALINGS: Tuple[str, ...] = ("official", "monodepth2", "none")

_SCALING_TEXT = {
    "official": "clamp prediction to range, then median-scale; no clamp after",
    "monodepth2": "median-scale raw prediction, then clamp to range",
    "none": "prediction only clamped to range",
}

Box = Tuple[int, int, int, int]




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
      For the three window crops (kb_garg, cityscapes, make3d_c1) see `crops.input_window`.
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
        Protocol(
            "zoedepth_nyu", crop="zoedepth_eigen", min_depth=1e-3, max_depth=10.0, median_scaling="none",
            flip_tta=True,
            description="ZoeDepth NYUv2 (config eigen_crop=True, garg_crop=False, min/max_depth_eval "
                        "1e-3/10): prediction of the 480x640 image bilinearly resized with "
                        "align_corners=True to the ground truth, clamped to [1e-3, 10], valid "
                        "1e-3 < gt < 10 inside rows 45:471, columns 41:601, no scaling, flip TTA in "
                        "ZoeDepth's evaluate.py; per-image metrics averaged."),
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


def as_protocol(protocol: Union[Protocol, str]) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, str):
        return get_protocol(protocol)
    raise TypeError(f"protocol must be a Protocol or a preset name, got {type(protocol).__name__}")


def protocol_from_config(config) -> Protocol:
    """`config.protocol` with the overrides an evaluation config (or `config.eval`) sets
    (empty / 0 / None = the preset's own value)."""
    overrides = {k: config[k] for k in ("crop", "median_scaling") if config[k]}
    if config.min_depth_eval:
        overrides["min_depth"] = config.min_depth_eval
    if config.max_depth_eval:
        overrides["max_depth"] = config.max_depth_eval
    if config.flip_tta is not None:
        overrides["flip_tta"] = bool(config.flip_tta)
    return get_protocol(config.protocol, **overrides)
