r"""KITTI ground-truth depth from raw velodyne scans, as the official evaluation makes it.

  python -m s2r_jax.data.kitti_gt --kitti_root /data/kitti_raw \
      --split_file splits/kitti/test.txt --output gt_eigen_test.npz [--value velodyne_x]

The official S2R-DepthNet evaluation (`loaddata.KITTI.get_depth`, the monodepth
recipe) projects each scan into the left colour camera on the fly. Its reported
numbers depend on its quirks, so this module reproduces them bit for bit (checked
against maps the official code made) rather than doing the "right" thing; only the
duplicate handling is vectorised. Exporting once to an `.npz` keeps the velodyne
files and this projection out of the evaluation loop.

NumPy and Pillow only: no tensorflow, no jax.
"""
from __future__ import annotations

import os
import sys
import time
import zipfile

import numpy as np

from s2r_jax.data.imageio import image_size
from s2r_jax.data.lists import DataFormatError, read_list

VALUES = ("camera_z", "velodyne_x")
_FLOAT_CHARS = set("0123456789.e+- ")


def read_calib_file(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    """`key: values` lines as {key: float64 array}; non-numeric values (calib_time) stay str."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"calibration file {path}: no such file")
    data = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if ":" not in line:
                raise DataFormatError(f"{path}:{lineno}: expected 'key: values', got {line.strip()!r}")
            key, value = (s.strip() for s in line.split(":", 1))
            data[key] = value
            if value and _FLOAT_CHARS.issuperset(value):  # the official parser's test
                try:
                    data[key] = np.array([float(v) for v in value.split()], dtype=np.float64)
                except ValueError:
                    pass
    missing = [k for k in required if k not in data]
    if missing:
        raise DataFormatError(f"calibration file {path}: missing key(s) {', '.join(missing)}")
    return data


def _matrix(calib: dict, key: str, shape: tuple[int, int], path: str) -> np.ndarray:
    v = calib[key]
    if isinstance(v, str) or v.size != shape[0] * shape[1]:
        raise DataFormatError(f"calibration file {path}: {key} should hold {shape[0] * shape[1]} numbers")
    return v.reshape(shape)


def read_velodyne(path: str | os.PathLike) -> np.ndarray:
    """A KITTI velodyne scan: float32 (N, 4) of forward, left, up, reflectance."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"velodyne file {path}: no such file")
    size = os.path.getsize(path)
    if size % 16:
        raise DataFormatError(f"velodyne file {path}: size {size} bytes is not a multiple of 16 "
                              "(4 float32 per point)")
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def focal_times_baseline(calib_dir: str | os.PathLike, cam: int = 2) -> float:
    """focal length (px) x stereo baseline (m) of camera `cam`: depth = this / disparity."""
    path = os.path.join(os.fspath(calib_dir), "calib_cam_to_cam.txt")
    calib = read_calib_file(path, required=("P_rect_02", "P_rect_03"))
    p2, p3 = (_matrix(calib, f"P_rect_0{c}", (3, 4), path) for c in (2, 3))
    baseline = p3[0, 3] / -p3[0, 0] - p2[0, 3] / -p2[0, 0]  # offsets of the cameras from cam 0
    return float((p2 if cam == 2 else p3)[0, 0] * baseline)


def velo_to_image(calib_dir: str | os.PathLike, cam: int = 2) -> np.ndarray:
    """The float64 (3, 4) projection velodyne -> rectified image of camera `cam`."""
    calib_dir = os.fspath(calib_dir)
    c2c_path = os.path.join(calib_dir, "calib_cam_to_cam.txt")
    v2c_path = os.path.join(calib_dir, "calib_velo_to_cam.txt")
    c2c = read_calib_file(c2c_path, required=("R_rect_00", f"P_rect_0{cam}"))
    v2c = read_calib_file(v2c_path, required=("R", "T"))
    velo2cam = np.eye(4)
    velo2cam[:3, :3] = _matrix(v2c, "R", (3, 3), v2c_path)
    velo2cam[:3, 3] = _matrix(v2c, "T", (3, 1), v2c_path)[:, 0]
    rect = np.eye(4)
    rect[:3, :3] = _matrix(c2c, "R_rect_00", (3, 3), c2c_path)
    # Same association as the official code, so the float64 rounding is the same.
    return np.dot(np.dot(_matrix(c2c, f"P_rect_0{cam}", (3, 4), c2c_path), rect), velo2cam)


def project_points(p_velo2im: np.ndarray, scan: np.ndarray, image_shape: tuple[int, int],
                   value: str = "camera_z") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of the scan's points that land in the image, in scan order.

    Points behind the velodyne (x < 0) are dropped; pixel coordinates are
    `round(u) - 1` ("minus 1 to get the exact same value as KITTI matlab code").
    """
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")
    velo = scan[scan[:, 0] >= 0]  # a float32 copy, as in the official code
    velo[:, 3] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        pts = np.dot(p_velo2im, velo.T).T  # the official call: identical BLAS rounding
        pts[:, :2] = pts[:, :2] / pts[:, 2][..., np.newaxis]
    if value == "velodyne_x":
        pts[:, 2] = velo[:, 0]
    u = np.round(pts[:, 0]) - 1
    v = np.round(pts[:, 1]) - 1
    h, w = image_shape
    ok = (u >= 0) & (v >= 0) & (u < w) & (v < h)
    return v[ok].astype(np.int64), u[ok].astype(np.int64), pts[ok, 2]


def depth_from_points(p_velo2im: np.ndarray, scan: np.ndarray, image_shape: tuple[int, int],
                      value: str = "camera_z") -> np.ndarray:
    """The official sparse depth map, float32 (H, W), 0 = no point; see `velodyne_depth`."""
    rows, cols, z = project_points(p_velo2im, scan, image_shape, value)
    # The official code clamps negatives to 0 and casts to float32 at the end; both are
    # monotone, so doing them first gives the same map and spares a float64 one.
    z = np.where(z < 0, 0.0, z).astype(np.float32)
    depth = np.zeros(image_shape, dtype=np.float32)
    depth[rows, cols] = z  # several points on one pixel: the last one wins (NumPy assigns in order)
    # Official `sub2ind`: row * (width - 1) + col - 1. The width - 1 (a bug) makes
    # (r, width - 1) and (r + 1, 0) share an index, so "duplicates" can span those
    # two pixels. Each index seen more than once puts the minimum value of its
    # points on the pixel of its FIRST point; the other pixel keeps its last value.
    key = rows * (image_shape[1] - 1) + cols  # the official index + 1, >= 0 for bincount
    dup = np.flatnonzero(np.bincount(key)[key] > 1)  # points of duplicated indices, in scan order
    if dup.size:
        order = dup[np.argsort(key[dup], kind="stable")]  # stable: each group starts at its first point
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        first = order[starts]
        depth[rows[first], cols[first]] = np.minimum.reduceat(z[order], starts)
    return depth


def velodyne_depth(calib_dir: str | os.PathLike, velo_path: str | os.PathLike,
                   image_shape: tuple[int, int], value: str = "camera_z") -> np.ndarray:
    """Ground-truth depth (float32 (H, W), metres, 0 = no data) of camera 2 for one scan.

    `value`: "camera_z" (the official default, depth along the camera axis) or
    "velodyne_x" (the velodyne forward distance, the official `vel_depth` option and
    monodepth2's exported ground truth).
    """
    return depth_from_points(velo_to_image(calib_dir), read_velodyne(velo_path),
                             tuple(image_shape), value)


def _list_linenos(split_file: str) -> list[int]:
    with open(split_file) as f:  # read_list skips blank lines; map its rows back to line numbers
        return [n for n, line in enumerate(f, 1) if line.split()]


def export_gt(kitti_root: str | os.PathLike, split_file: str | os.PathLike,
              output: str | os.PathLike, value: str = "camera_z") -> int:
    """Write the ground truth of every frame of an official KITTI split list to an `.npz`.

    Each list line is `left_image right_image date_dir velodyne_file`, relative to
    `kitti_root`. The file holds `gt_00000`, `gt_00001`, ... (float32 (H, W), list
    order), `files` (the left images) and `value`. Arrays are streamed into the zip
    one at a time, so the whole split never sits in memory. Returns the frame count.
    """
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}")
    kitti_root, split_file, output = map(os.fspath, (kitti_root, split_file, output))
    rows = read_list(split_file, 4)
    linenos = _list_linenos(split_file)
    tmp = output + ".partial"
    start = time.perf_counter()
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            def put(name, array):
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)

            for i, ((left, _, date, velo), lineno) in enumerate(zip(rows, linenos)):
                where = f"{split_file}:{lineno}"
                try:
                    shape = image_size(os.path.join(kitti_root, left))
                    gt = velodyne_depth(os.path.join(kitti_root, date), os.path.join(kitti_root, velo),
                                        shape, value)
                except (FileNotFoundError, DataFormatError) as e:
                    raise type(e)(f"{where}: {e}") from e
                put(f"gt_{i:05d}", gt)
                if (i + 1) % 50 == 0 or i + 1 == len(rows):
                    dt = time.perf_counter() - start
                    print(f"{i + 1}/{len(rows)} frames, {(i + 1) / max(dt, 1e-9):.1f} frames/s", flush=True)
            put("files", np.array([r[0] for r in rows], dtype=str))
            put("value", np.array(value))
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(rows)


def load_gt(path: str | os.PathLike) -> list[np.ndarray]:
    """The ground-truth maps written by `export_gt`, in list order."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with np.load(path, allow_pickle=False) as data:
        if "files" not in data.files:
            raise DataFormatError(f"{path}: not a ground-truth export (no 'files' entry)")
        n = len(data["files"])
        keys = [f"gt_{i:05d}" for i in range(n)]
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise DataFormatError(f"{path}: {len(missing)} of {n} maps missing, first {missing[0]}")
        return [data[k] for k in keys]


def _main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    try:
        export_gt(f.kitti_root, f.split_file, f.output, f.value)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    # Flags are defined only when run as a program, so importing this module never
    # clashes with another CLI's flags of the same name.
    from absl import app, flags

    flags.DEFINE_string("kitti_root", None, "KITTI raw root (holds the 2011_09_26/... folders).")
    flags.DEFINE_string("split_file", None, "Split list in the official format: left right date velodyne.")
    flags.DEFINE_string("output", None, "The .npz to write.")
    flags.DEFINE_enum("value", "camera_z", VALUES, "camera_z (official default) or velodyne_x "
                      "(forward distance, monodepth2's exported ground truth).")
    flags.mark_flags_as_required(["kitti_root", "split_file", "output"])
    app.run(_main)
