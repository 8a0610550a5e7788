"""The zero-shot transfer datasets' evaluation settings, as data, and ZoeDepth's mRI.

For every dataset (`DATASETS`): where it is stored (TFDS name, split, depth feature and
its unit, validity mask) and two protocols:

- `zoedepth`: ZoeDepth's evaluation (zoedepth/utils/config.py `DATASETS_CONFIG`, its
  loaders in zoedepth/data/, `compute_metrics` in zoedepth/utils/misc.py): its crop and
  min/max depth, no scaling, flip TTA (its evaluate.py always averages with the mirrored
  image). For Make3D, Cityscapes and DrivingStereo, which ZoeDepth does not evaluate, the
  same procedure with the crop and cap their literature uses.
- `s2r`: median-scaled, as S2R-DepthNet reports transfer. On ZoeDepth's datasets: ZoeDepth's
  crop and cap with S2R-DepthNet's own scaling (test.py: clamp to the range, then
  x median(gt) / median(pred)), min depth 1e-3 as in test.py. On Make3D, Cityscapes and
  DrivingStereo: the protocol their literature uses (monodepth2-derived code: scale the raw
  prediction, then clamp), whose numbers S2R-DepthNet's comparisons quote.

Each protocol is a `Protocol` (printed with its description, written to metrics.json);
`get_protocol(p, median_scaling=...)` changes any field. No tensorflow here.

mRI (ZoeDepth paper, Sec. 4.3): for a reference score r and a target score t,
RI = (r - t) / r for metrics where lower is better (REL, RMSE) and (t - r) / r where higher
is better (delta_1); mRI_theta is the mean of RI over the metrics (delta_1, REL, RMSE) on one
dataset, mRI_D the mean of one metric's RI over datasets.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from s2r_jax.evaluation import Protocol, input_window, make3d_image_window

PROTOCOL_KEYS: Tuple[str, ...] = ("zoedepth", "s2r")
# ZoeDepth's mRI_theta metrics, in our metric names: delta_1, REL, RMSE.
MRI_METRICS: Tuple[str, ...] = ("a1", "abs_rel", "rmse")
HIGHER_IS_BETTER = frozenset({"a1", "a2", "a3"})


@dataclasses.dataclass(frozen=True)
class TransferDataset:
    """One zero-shot dataset: where its frames are stored and how each protocol scores them.

    depth_scale: metres per stored depth unit (0.001 for millimetre PNGs, 1 for float metres).
    valid_feature: the stored mask of pixels the dataset declares valid beyond depth > 0;
      `masked` lists the protocol keys that apply it (ZoeDepth applies iBims-1's, ignores DIODE's).
    """
    name: str
    title: str
    domain: str                        # indoor | outdoor
    tfds_name: str                     # as given to tfds.builder / the build command
    split: str
    zoedepth: Protocol
    s2r: Protocol
    depth_feature: str = "depth"
    depth_scale: float = 1.0
    valid_feature: Optional[str] = None
    masked: Tuple[str, ...] = ()
    notes: str = ""

    def protocol(self, key: str) -> Protocol:
        if key not in PROTOCOL_KEYS:
            raise ValueError(f"unknown protocol key {key!r} for {self.name}; choose one of {PROTOCOL_KEYS}")
        return getattr(self, key)

    def uses_mask(self, key: str) -> bool:
        return self.valid_feature is not None and key in self.masked

    def image_window(self, key: str, image_shape: Sequence[int]) -> Tuple[int, int, int, int]:
        """(top, bottom, left, right) of the image to show the model under protocol `key`:
        the KB crop (vkitti2), the top 75 % (Cityscapes), the 2:1 centre crop (Make3D,
        whose image and laser grid differ in size), else the whole image."""
        crop = self.protocol(key).crop
        return make3d_image_window(image_shape) if crop == "make3d_c1" else input_window(image_shape, crop)


def _zoedepth(name: str, crop: str, lo: float, hi: float, source: str) -> Protocol:
    return Protocol(f"{name}_zoedepth", crop=crop, min_depth=lo, max_depth=hi, median_scaling="none",
                    flip_tta=True, description=source + " No scaling; prediction clamped to the range; flip TTA.")


def _s2r(name: str, crop: str, hi: float, source: str, scaling: str = "official", lo: float = 1e-3) -> Protocol:
    order = ("S2R-DepthNet's scaling (test.py): prediction clamped to the range, then x median(gt)/median(pred) "
             "over the valid pixels, no clamp after" if scaling == "official" else
             "median scaling of the raw prediction, then clamped to the range (monodepth2-derived code)")
    return Protocol(f"{name}_s2r", crop=crop, min_depth=lo, max_depth=hi, median_scaling=scaling,
                    description=f"{source} {order}; no flip TTA.")


def _zoe_eigen(lo, hi, what):
    return (f"ZoeDepth config '{what}': eigen_crop, {lo:g} < gt < {hi:g} m; compute_metrics applies the NYU box "
            f"[45:471, 41:601] by absolute indices whatever the image size.")


def _zoe_garg(lo, hi, what):
    return f"ZoeDepth config '{what}': garg_crop (fractions of the ground truth's size), {lo:g} < gt < {hi:g} m."


def _dataset(name, title, domain, tfds_name, split, crop, lo, hi, zoe_source, *, s2r_crop=None, s2r_hi=None,
             s2r_scaling="official", s2r_source=None, **fields) -> TransferDataset:
    s2r_source = s2r_source or f"{title}: the crop and cap of the zoedepth protocol ({crop}, < {hi:g} m);"
    return TransferDataset(name=name, title=title, domain=domain, tfds_name=tfds_name, split=split,
                           zoedepth=_zoedepth(name, crop, lo, hi, zoe_source),
                           s2r=_s2r(name, s2r_crop or crop, s2r_hi or hi, s2r_source, s2r_scaling), **fields)


DATASETS: Dict[str, TransferDataset] = {d.name: d for d in (
    # --- indoor (ZoeDepth Table 3) -----------------------------------------------------------
    _dataset("sun_rgbd", "SUN RGB-D", "indoor", "sun_rgbd", "test", "zoedepth_eigen", 0.0, 8.0,
             _zoe_eigen(0, 8, "sunrgbd") + " Its loader also drops depth > 8 m (the same pixels).",
             depth_scale=1e-3, notes="5050 test images; raw sensor depth (mm)."),
    _dataset("ibims", "iBims-1", "indoor", "ibims", "test", "zoedepth_eigen", 0.0, 10.0,
             _zoe_eigen(0, 10, "ibims") + " Its loader sets depth to -1 outside mask_invalid and "
             "mask_transp (the stored `valid`).",
             depth_scale=50.0 / 65535.0, valid_feature="valid", masked=("zoedepth", "s2r"),
             notes="100 images; depth PNG value x 50/65535 m."),
    _dataset("diode_indoor", "DIODE Indoor", "indoor", "diode/indoor", "val", "zoedepth_eigen", 1e-3, 10.0,
             _zoe_eigen(1e-3, 10, "diode_indoor") + " The release's validity mask is loaded "
             "but not used (reproduced).",
             valid_feature="valid", masked=("s2r",), notes="DIODE val, indoors; 768x1024."),
    _dataset("hypersim", "HyperSim", "indoor", "hypersim", "test", "zoedepth_eigen", 1e-3, 80.0,
             _zoe_eigen(1e-3, 80, "hypersim_test"),
             notes="Official test partition (7690 frames); planar depth from distance; 768x1024."),
    # --- outdoor (ZoeDepth Table 4) ----------------------------------------------------------
    _dataset("vkitti2", "Virtual KITTI 2", "outdoor", "virtual_kitti/2", "train", "kb_garg", 1e-3, 80.0,
             "ZoeDepth config 'vkitti2': its loader KB-crops image and depth to 352x1216 and drops depth > 80 m; "
             "garg_crop on the crop, 1e-3 < gt < 80 m.",
             depth_scale=0.01,
             notes="The virtual_kitti/2 build holds every frame of both cameras in 'train'; ZoeDepth tests on a "
                   "random 8 % of Camera_0 per scene that it does not publish: give a split list "
                   "(build --split_file) to evaluate a fixed subset."),
    _dataset("ddad", "DDAD", "outdoor", "ddad", "val", "garg", 1e-3, 80.0,
             _zoe_garg(1e-3, 80, "ddad") + " Its loader shows the model the image resized to 352x1216.",
             notes="ZoeDepth's preprocessed validation export."),
    _dataset("diml_outdoor", "DIML Outdoor", "outdoor", "diml_outdoor", "test", "garg", 2.0, 80.0,
             _zoe_garg(2, 80, "diml_outdoor"),
             depth_scale=1e-3, notes="Depth PNG in mm."),
    _dataset("diode_outdoor", "DIODE Outdoor", "outdoor", "diode/outdoor", "val", "garg", 1e-3, 80.0,
             _zoe_garg(1e-3, 80, "diode_outdoor") + " The release's validity mask is loaded "
             "but not used (reproduced).",
             valid_feature="valid", masked=("s2r",), notes="DIODE val, outdoor; 768x1024."),
    # --- the transfer sets S2R-DepthNet's comparisons use ---------------------------------------
    _dataset("make3d", "Make3D", "outdoor", "make3d", "test", "make3d_c1", 1e-3, 70.0,
             "Make3D C1 (not a ZoeDepth dataset): the model sees the 2:1 centre crop, compared with rows 17:38 of "
             "the 55x305 laser grid after a nearest-neighbour resize, 1e-3 < gt < 70 m.",
             s2r_scaling="monodepth2",
             s2r_source="Make3D C1 as T2Net / GASDA / monodepth evaluate it: 2:1 centre crop, grid rows 17:38, "
                        "nearest-neighbour resize, 1e-3 < gt < 70 m;",
             notes="Test134: 134 images."),
    _dataset("cityscapes", "Cityscapes", "outdoor", "cityscapes_depth", "val", "cityscapes", 1e-3, 80.0,
             "Cityscapes (not a ZoeDepth dataset), ManyDepth's crop: the model sees the image without its bottom "
             "25 %; rows 256: and columns 192:1856 of that are evaluated, 1e-3 < gt < 80 m.",
             s2r_scaling="monodepth2",
             s2r_source="Cityscapes as ManyDepth evaluates it (bottom 25 % removed, [256:, 192:1856], "
                        "1e-3 < gt < 80 m);",
             notes="500 val images; depth from disparity and the camera files."),
    _dataset("driving_stereo", "DrivingStereo", "outdoor", "driving_stereo/test", "test", "none", 1e-3, 80.0,
             "DrivingStereo (not a ZoeDepth dataset): whole frame, 1e-3 < gt < 80 m.",
             s2r_scaling="monodepth2",
             s2r_source="DrivingStereo as monodepth2-derived code evaluates it (whole frame, 1e-3 < gt < 80 m; "
                        "that code's mask is gt > 0 without a cap);",
             depth_scale=1.0 / 256.0, notes="Depth PNG in m x 256; the weather sets are driving_stereo/<weather>."),
)}


def get_dataset(name: str) -> TransferDataset:
    if name not in DATASETS:
        raise ValueError(f"unknown zero-shot dataset {name!r}; choose from {list(DATASETS)}")
    return DATASETS[name]


def ground_truth_metres(depth: np.ndarray, dataset: str, protocol_key: str,
                        valid: Optional[np.ndarray] = None) -> np.ndarray:
    """A stored depth map (in the dataset's unit) as float64 metres, 0 where the dataset's
    validity mask says invalid (when this protocol applies the mask).

    The mask is applied by zeroing: 0 is outside every protocol's valid range (min < gt).
    """
    spec = get_dataset(dataset)
    gt = np.asarray(depth, dtype=np.float64)
    if gt.ndim == 3 and gt.shape[-1] == 1:
        gt = gt[..., 0]
    gt = gt * spec.depth_scale
    if spec.uses_mask(protocol_key):
        if valid is None:
            raise ValueError(f"{dataset} protocol {protocol_key!r} applies the {spec.valid_feature!r} mask; "
                             "pass valid=")
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != gt.shape:
            raise ValueError(f"{dataset}: mask shape {valid.shape} differs from depth shape {gt.shape}")
        gt = np.where(valid, gt, 0.0)
    return gt


# ----------------------------------------------------------------------------- mRI


def relative_improvement(target: float, reference: float, metric: str) -> float:
    """ZoeDepth's RI of `target` over `reference` for one metric (positive = better)."""
    if not reference:
        raise ValueError(f"relative improvement of {metric}: the reference score is {reference}")
    if metric in HIGHER_IS_BETTER:
        return (float(target) - float(reference)) / float(reference)
    return (float(reference) - float(target)) / float(reference)


def mean_relative_improvement(target: Mapping[str, float], reference: Mapping[str, float],
                              metrics: Sequence[str] = MRI_METRICS) -> float:
    """mRI_theta: the mean of `relative_improvement` over `metrics` (delta_1, REL, RMSE)."""
    missing = [m for m in metrics if m not in target or m not in reference]
    if missing:
        raise ValueError(f"mRI needs {list(metrics)}; missing {missing} in the "
                         f"{'target' if any(m not in target for m in missing) else 'reference'}")
    return float(np.mean([relative_improvement(target[m], reference[m], m) for m in metrics]))


def mean_relative_improvement_over_datasets(targets: Mapping[str, Mapping[str, float]],
                                            references: Mapping[str, Mapping[str, float]],
                                            metric: str = "abs_rel") -> float:
    """mRI_D: the mean over the datasets of `targets` of one metric's RI."""
    if not targets:
        raise ValueError("mRI over datasets needs at least one dataset")
    missing = sorted(set(targets) - set(references))
    if missing:
        raise ValueError(f"no reference for datasets {missing}")
    return float(np.mean([relative_improvement(targets[d][metric], references[d][metric], metric)
                          for d in targets]))


# ----------------------------------------------------------------------------- published numbers

PUBLISHED_SOURCE = ("Bhat et al., ZoeDepth: Zero-shot Transfer by Combining Relative and Metric Depth, "
                    "arXiv:2302.12288 (2023), Table 3 (indoor) and Table 4 (outdoor): zero-shot transfer, "
                    "delta_1 / REL / RMSE, and mRI_theta with respect to NeWCRFs. The baselines (BTS, AdaBins, "
                    "LocalBins, NeWCRFs) are trained on NYU Depth v2 (indoor table) or KITTI (outdoor table).")
PUBLISHED_REFERENCE = "NeWCRFs"

# {dataset: {method: (delta_1, REL, RMSE, mRI_theta as printed)}}
_TABLES: Dict[str, Dict[str, Tuple[float, float, float, float]]] = {
    "sun_rgbd": {"BTS": (0.740, 0.172, 0.515, -0.142), "AdaBins": (0.771, 0.159, 0.476, -0.070),
                 "LocalBins": (0.777, 0.156, 0.470, -0.056), "NeWCRFs": (0.798, 0.151, 0.424, 0.0),
                 "ZoeD-X-N": (0.857, 0.124, 0.363, 0.132), "ZoeD-M12-N": (0.864, 0.119, 0.346, 0.160),
                 "ZoeD-M12-NK": (0.856, 0.123, 0.356, 0.139)},
    "ibims": {"BTS": (0.538, 0.231, 0.919, -0.069), "AdaBins": (0.555, 0.212, 0.901, -0.021),
              "LocalBins": (0.558, 0.211, 0.880, -0.007), "NeWCRFs": (0.548, 0.206, 0.861, 0.0),
              "ZoeD-X-N": (0.668, 0.173, 0.730, 0.177), "ZoeD-M12-N": (0.658, 0.169, 0.711, 0.185),
              "ZoeD-M12-NK": (0.615, 0.186, 0.777, 0.106)},
    "diode_indoor": {"BTS": (0.210, 0.418, 1.905, 0.023), "AdaBins": (0.174, 0.443, 1.963, -0.072),
                     "LocalBins": (0.229, 0.412, 1.853, 0.071), "NeWCRFs": (0.187, 0.404, 1.867, 0.0),
                     "ZoeD-X-N": (0.400, 0.324, 1.581, 0.497), "ZoeD-M12-N": (0.376, 0.327, 1.588, 0.450),
                     "ZoeD-M12-NK": (0.386, 0.331, 1.598, 0.463)},
    "hypersim": {"BTS": (0.225, 0.476, 6.404, -0.086), "AdaBins": (0.221, 0.483, 6.546, -0.105),
                 "LocalBins": (0.234, 0.468, 6.362, -0.066), "NeWCRFs": (0.255, 0.442, 6.017, 0.0),
                 "ZoeD-X-N": (0.284, 0.421, 5.889, 0.061), "ZoeD-M12-N": (0.292, 0.410, 5.771, 0.086),
                 "ZoeD-M12-NK": (0.274, 0.419, 5.830, 0.053)},
    "vkitti2": {"BTS": (0.831, 0.115, 5.368, 0.025), "AdaBins": (0.826, 0.122, 5.420, 0.0),
                "LocalBins": (0.810, 0.127, 5.981, -0.053), "NeWCRFs": (0.829, 0.117, 5.691, 0.0),
                "ZoeD-X-K": (0.837, 0.112, 5.338, 0.038), "ZoeD-M12-K": (0.864, 0.100, 4.974, 0.105),
                "ZoeD-M12-NK": (0.850, 0.105, 5.095, 0.078)},
    "ddad": {"BTS": (0.805, 0.147, 7.550, -0.178), "AdaBins": (0.766, 0.154, 8.560, -0.267),
             "LocalBins": (0.777, 0.151, 8.139, -0.232), "NeWCRFs": (0.874, 0.119, 6.183, 0.0),
             "ZoeD-X-K": (0.790, 0.137, 7.734, -0.166), "ZoeD-M12-K": (0.835, 0.129, 7.108, -0.093),
             "ZoeD-M12-NK": (0.824, 0.138, 7.225, -0.128)},
    "diml_outdoor": {"BTS": (0.016, 1.785, 5.908, 0.243), "AdaBins": (0.013, 1.941, 6.272, 0.097),
                     "LocalBins": (0.016, 1.820, 6.706, 0.195), "NeWCRFs": (0.010, 1.918, 6.283, 0.0),
                     "ZoeD-X-K": (0.005, 1.756, 6.180, -0.133), "ZoeD-M12-K": (0.003, 1.921, 6.978, -0.271),
                     "ZoeD-M12-NK": (0.292, 0.641, 3.610, 9.764)},
    "diode_outdoor": {"BTS": (0.171, 0.837, 10.48, -0.048), "AdaBins": (0.161, 0.863, 10.35, -0.072),
                      "LocalBins": (0.170, 0.821, 10.27, -0.036), "NeWCRFs": (0.176, 0.854, 9.228, 0.0),
                      "ZoeD-X-K": (0.242, 0.799, 7.806, 0.198), "ZoeD-M12-K": (0.269, 0.852, 6.898, 0.261),
                      "ZoeD-M12-NK": (0.208, 0.757, 7.569, 0.158)},
}

# {dataset: {method: {"a1", "abs_rel", "rmse", "mri"}}}: the tables in our metric names.
PUBLISHED: Dict[str, Dict[str, Dict[str, float]]] = {
    dataset: {method: dict(zip(("a1", "abs_rel", "rmse", "mri"), row)) for method, row in rows.items()}
    for dataset, rows in _TABLES.items()}


def reference_metrics(reference: str, dataset: str) -> Dict[str, float]:
    """The reference scores of `dataset` for mRI: a method of ZoeDepth's tables (`PUBLISHED`,
    e.g. 'NeWCRFs'), or a metrics.json of another run: eval.py's ({"metrics": {...}}, one
    dataset) or a zero-shot run's ({"datasets": {name: {"metrics": {...}}}})."""
    if not os.path.isfile(reference):
        methods = sorted({m for rows in PUBLISHED.values() for m in rows})
        if reference not in methods:
            raise ValueError(f"reference {reference!r} is neither a metrics file nor a published method "
                             f"({', '.join(methods)})")
        if reference not in PUBLISHED.get(dataset, {}):
            raise ValueError(f"ZoeDepth's tables give no {reference} numbers for {dataset}")
        return {k: v for k, v in PUBLISHED[dataset][reference].items() if k != "mri"}
    with open(reference) as f:
        try:
            result = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{reference}: not a JSON metrics file ({e})") from e
    if isinstance(result.get("datasets"), dict):
        if dataset not in result["datasets"]:
            raise ValueError(f"{reference} has no results for {dataset} (it has {sorted(result['datasets'])})")
        result = result["datasets"][dataset]
    if not isinstance(result.get("metrics"), dict):
        raise ValueError(f"{reference}: expected a 'metrics' mapping (eval.py's metrics.json)")
    return {k: float(v) for k, v in result["metrics"].items() if isinstance(v, (int, float))}
