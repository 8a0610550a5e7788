"""Time KITTI ground-truth projection: vectorised `velodyne_depth` vs the official loop.

  python -m s2r_jax.benchmarks.gt_export

The official code resolves duplicate pixels with a Python loop over
`Counter(inds)` and one `np.where` over all points per duplicate, which is
O(duplicates x points). `official_style_velodyne_depth` is that algorithm
written plainly; the tests use it as the oracle for the vectorised version.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import Counter

import numpy as np

from s2r_jax.data import kitti_gt

# The 2011_09_26 calibration (the KITTI Eigen test split's first date), keys needed only.
_CALIBRATION = {
    "calib_cam_to_cam.txt": {
        "R_rect_00": "9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 "
                     "-4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01",
        "P_rect_02": "7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 "
                     "1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03",
        "P_rect_03": "7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 "
                     "1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03",
    },
    "calib_velo_to_cam.txt": {
        "R": "7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 "
             "9.998621e-01 7.523790e-03 1.480755e-02",
        "T": "-4.069766e-03 -7.631618e-02 -2.717806e-01",
    },
}
IMAGE_SHAPE = (375, 1242)


def write_calibration(calib_dir: str) -> None:
    """Write the built-in calibration files into `calib_dir`."""
    for name, entries in _CALIBRATION.items():
        with open(os.path.join(calib_dir, name), "w") as f:
            f.writelines(f"{key}: {values}\n" for key, values in entries.items())


def backproject(p_velo2im: np.ndarray, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Velodyne points (float32 (N, 4)) that project to image coordinates (u, v) at camera depth z."""
    m = np.vstack([p_velo2im, [0.0, 0.0, 0.0, 1.0]])
    cam = np.stack([u * z, v * z, z, np.ones_like(z)])
    pts = np.linalg.solve(m, cam).T
    pts[:, 3] = 0.5  # reflectance: ignored by the projection
    return pts.astype(np.float32)


def official_style_velodyne_depth(p_velo2im: np.ndarray, scan: np.ndarray, image_shape: tuple[int, int],
                                  value: str = "camera_z") -> np.ndarray:
    """The official `get_depth` step by step, duplicates via Counter and a loop (float32 (H, W))."""
    h, w = image_shape
    velo = scan[scan[:, 0] >= 0]
    velo[:, 3] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        im = np.dot(p_velo2im, velo.T).T
        im[:, :2] = im[:, :2] / im[:, 2][..., np.newaxis]
    if value == "velodyne_x":
        im[:, 2] = velo[:, 0]
    im[:, 0] = np.round(im[:, 0]) - 1
    im[:, 1] = np.round(im[:, 1]) - 1
    im = im[(im[:, 0] >= 0) & (im[:, 1] >= 0) & (im[:, 0] < w) & (im[:, 1] < h)]
    depth = np.zeros(image_shape)
    depth[im[:, 1].astype(int), im[:, 0].astype(int)] = im[:, 2]
    inds = im[:, 1] * (w - 1) + im[:, 0] - 1  # the official sub2ind, width - 1 and all
    for ind, count in Counter(inds).items():
        if count > 1:
            group = np.where(inds == ind)[0]
            depth[int(im[group[0], 1]), int(im[group[0], 0])] = im[group, 2].min()
    depth[depth < 0] = 0
    return depth.astype(np.float32)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def time_velodyne_depth(num_points: int = 60000, repeats: int = 20, seed: int = 0) -> dict:
    """Median ms per frame of `velodyne_depth` and of the official-style loop on one synthetic scan.

    The scan: `num_points` points uniformly over the 375x1242 image (plus a pixel
    margin, so some fall outside) at camera depths 2..80 m, written to a temporary
    velodyne file with the built-in calibration. Both timings include reading the
    calibration and the scan.
    """
    rng = np.random.default_rng(seed)
    h, w = IMAGE_SHAPE
    with tempfile.TemporaryDirectory() as tmp:
        write_calibration(tmp)
        p = kitti_gt.velo_to_image(tmp)
        u = rng.uniform(-1.0, w + 2.0, num_points)
        v = rng.uniform(-1.0, h + 2.0, num_points)
        scan = backproject(p, u, v, rng.uniform(2.0, 80.0, num_points))
        velo_path = os.path.join(tmp, "scan.bin")
        scan.tofile(velo_path)

        ours = lambda: kitti_gt.velodyne_depth(tmp, velo_path, IMAGE_SHAPE)  # noqa: E731
        official = lambda: official_style_velodyne_depth(  # noqa: E731
            kitti_gt.velo_to_image(tmp), kitti_gt.read_velodyne(velo_path), IMAGE_SHAPE)
        if not np.array_equal(ours(), official()):
            raise AssertionError("velodyne_depth disagrees with the official-style loop")
        ours_ms, official_ms = _median_ms(ours, repeats), _median_ms(official, repeats)
    return {"ours_ms": round(ours_ms, 3), "official_style_ms": round(official_ms, 3),
            "speedup": round(official_ms / ours_ms, 1), "num_points": num_points}


def main() -> None:
    r = time_velodyne_depth()
    print(json.dumps(r))
    print(f"{'implementation':<28}{'ms/frame':>10}")
    print(f"{'velodyne_depth (vectorised)':<28}{r['ours_ms']:>10.2f}")
    print(f"{'official-style loop':<28}{r['official_style_ms']:>10.2f}")
    print(f"speedup x{r['speedup']} at {r['num_points']} points")


if __name__ == "__main__":
    main()
