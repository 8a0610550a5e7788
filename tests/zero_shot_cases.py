"""Inputs of the golden checks against ZoeDepth's official compute_metrics.

Each case is a (ground truth, prediction) pair drawn from integer hashes of the pixel
coordinates with exactly rounded arithmetic only, so that the test and the script that
ran the official code (see tests/fixtures/README.md) build the same arrays on any machine.
The prediction is smaller than the ground truth, so the official bilinear
(align_corners=True) upsampling is part of what is checked.
"""
import numpy as np

# name: (gt shape, pred shape, official crop ('eigen' | 'garg' | 'kb+garg'), min_depth_eval,
#        max_depth_eval, our crop). One case per crop/cap combination the zero-shot protocols use.
CASES = {
    "nyu_480x640_eigen_1e-3_10": ((480, 640), (120, 160), "eigen", 1e-3, 10.0, "zoedepth_eigen"),
    "ibims_480x640_eigen_0_10": ((480, 640), (120, 160), "eigen", 0.0, 10.0, "zoedepth_eigen"),
    "sunrgbd_530x730_eigen_0_8": ((530, 730), (132, 182), "eigen", 0.0, 8.0, "zoedepth_eigen"),
    "sunrgbd_441x591_eigen_0_8": ((441, 591), (110, 148), "eigen", 0.0, 8.0, "zoedepth_eigen"),
    "diode_indoor_768x1024_eigen_1e-3_10": ((768, 1024), (480, 640), "eigen", 1e-3, 10.0, "zoedepth_eigen"),
    "hypersim_768x1024_eigen_1e-3_80": ((768, 1024), (480, 640), "eigen", 1e-3, 80.0, "zoedepth_eigen"),
    "kitti_375x1242_garg_1e-3_80": ((375, 1242), (94, 311), "garg", 1e-3, 80.0, "garg"),
    "diode_outdoor_768x1024_garg_1e-3_80": ((768, 1024), (480, 640), "garg", 1e-3, 80.0, "garg"),
    "ddad_1216x1936_garg_1e-3_80": ((1216, 1936), (352, 1216), "garg", 1e-3, 80.0, "garg"),
    "diml_720x1280_garg_2_80": ((720, 1280), (180, 320), "garg", 2.0, 80.0, "garg"),
    "vkitti2_375x1242_kb_garg_1e-3_80": ((375, 1242), (88, 304), "kb+garg", 1e-3, 80.0, "kb_garg"),
}


def _hash(shape, seed, prime):
    i = np.arange(shape[0], dtype=np.int64)[:, None]
    j = np.arange(shape[1], dtype=np.int64)[None, :]
    return (i * 7919 + j * 104729 + seed * 15485863) % prime


def case_arrays(name):
    """(gt float32 (H, W) in metres with holes and out-of-range values, pred float32 (h, w) > 0)."""
    gt_shape, pred_shape, _, _, max_depth, _ = CASES[name]
    seed = sorted(CASES).index(name) + 1
    # gt spans (0, 1.25 max]: some pixels beyond the cap; every 17th pixel (by hash) a hole, and
    # every 23rd 0.5 mm (inside a min_depth of 0, outside one of 1e-3).
    gt = (_hash(gt_shape, seed, 9973) + 1) / 9973.0 * 1.25 * max_depth
    gt = np.where(_hash(gt_shape, seed + 5, 17) == 0, 0.0, gt)
    gt = np.where(_hash(gt_shape, seed + 7, 23) == 0, 0.0005, gt)
    # pred: gt-like values at a lower resolution, from 0.2 % to 1.3 x the cap (clamping is exercised)
    pred = (_hash(pred_shape, seed + 11, 7919) + 17) / 7919.0 * 1.3 * max_depth
    return gt.astype(np.float32), pred.astype(np.float32)
