"""KITTI ground truth from velodyne: bit-exact against the official code's maps and loop."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s2r_jax.benchmarks.gt_export import backproject, official_style_velodyne_depth
from s2r_jax.data import kitti_gt
from s2r_jax.data.lists import DataFormatError

FIX = Path(__file__).parent / "fixtures"
ROOT = FIX / "kitti_raw_mini"
DATE = "2011_09_26"
VELO_REL = "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin"
SPLIT = FIX / "kitti_mini_test.txt"
SHAPE = (375, 1242)


@pytest.fixture(scope="module")
def golden():
    with np.load(FIX / "kitti_golden.npz") as g:
        return {k: g[k] for k in ("depth_camera_z", "depth_velodyne_x", "focal_times_baseline")}


@pytest.fixture(scope="module")
def p_velo2im():
    return kitti_gt.velo_to_image(ROOT / DATE)


@pytest.fixture
def tree(tmp_path):
    """A writable copy of the fixture tree and its split list."""
    root = tmp_path / "kitti"
    shutil.copytree(ROOT, root)
    shutil.copy(SPLIT, tmp_path / "split.txt")
    return root, tmp_path / "split.txt"


@pytest.mark.parametrize("value", kitti_gt.VALUES)
def test_matches_official_golden(golden, p_velo2im, value):
    depth = kitti_gt.velodyne_depth(ROOT / DATE, ROOT / VELO_REL, SHAPE, value)
    want = golden[f"depth_{value}"]
    assert depth.dtype == np.float32 and depth.shape == SHAPE
    assert depth.tobytes() == want.tobytes()  # bit for bit, signs of zeros included
    assert np.count_nonzero(depth) > 10000
    # The loop oracle of the random tests reproduces the official maps too.
    oracle = official_style_velodyne_depth(p_velo2im, kitti_gt.read_velodyne(ROOT / VELO_REL), SHAPE, value)
    assert oracle.tobytes() == want.tobytes()


def test_golden_scan_exercises_duplicates(golden, p_velo2im):
    """The golden map differs from plain last-point-wins, so the duplicate step is tested."""
    rows, cols, z = kitti_gt.project_points(p_velo2im, kitti_gt.read_velodyne(ROOT / VELO_REL), SHAPE)
    last_wins = np.zeros(SHAPE, np.float32)
    last_wins[rows, cols] = np.maximum(z, 0)
    assert np.count_nonzero(last_wins != golden["depth_camera_z"]) > 100


def test_focal_times_baseline(golden):
    # Exact: the same float64 operations as the official get_fb.
    assert kitti_gt.focal_times_baseline(ROOT / DATE) == golden["focal_times_baseline"]


def test_read_calib_file():
    calib = kitti_gt.read_calib_file(ROOT / DATE / "calib_cam_to_cam.txt", required=("P_rect_02",))
    assert calib["calib_time"] == "09-Jan-2012 13:57:47"
    assert calib["P_rect_02"].dtype == np.float64 and calib["P_rect_02"].shape == (12,)
    assert calib["P_rect_02"][0] == 721.5377
    assert kitti_gt.read_velodyne(ROOT / VELO_REL).shape == (60500, 4)


def _scan_at(p, pixels, z, rng):
    """Velodyne points landing on (row, col) pixels (within +-0.4 px) at camera depths z."""
    rows, cols = np.asarray(pixels).T
    jitter = rng.uniform(-0.4, 0.4, (2, len(z))) if rng is not None else np.zeros((2, len(z)))
    return backproject(p, cols + 1 + jitter[0], rows + 1 + jitter[1], np.asarray(z, np.float64))


@pytest.mark.parametrize("value", kitti_gt.VALUES)
@pytest.mark.parametrize("seed,shape", [(0, SHAPE), (1, SHAPE), (2, (6, 9)), (3, (20, 33)), (4, (50, 70))])
def test_random_scans_match_official_loop(p_velo2im, seed, shape, value):
    rng = np.random.default_rng(seed)
    h, w = shape
    # Few target pixels, many points each: lots of duplicates. Half the targets are
    # (r, w - 1) / (r + 1, 0) pairs, which the official sub2ind conflates.
    r = rng.integers(0, h - 1, 8)
    pairs = np.concatenate([np.stack([r, np.full(8, w - 1)], 1), np.stack([r + 1, np.zeros(8, int)], 1)])
    others = np.stack([rng.integers(0, h, 16), rng.integers(0, w, 16)], 1)
    targets = np.concatenate([pairs, others])

    def some_targets(k):
        return targets[rng.integers(0, len(targets), k)]

    n = 3000
    scan = _scan_at(p_velo2im, some_targets(n), rng.uniform(1.0, 80.0, n), rng)
    # Points within 27 cm in front of the velodyne are behind the camera: negative z
    # on an image pixel, which wins the group minimum and is then clamped to 0.
    near = _scan_at(p_velo2im, some_targets(100), rng.uniform(-0.25, -0.01, 100), rng)
    assert (near[:, 0] >= 0).all()
    # Plus points outside the image and behind the velodyne (dropped).
    outside = backproject(p_velo2im, rng.uniform(-5, w + 5, 500), rng.uniform(-5, h + 5, 500),
                          rng.uniform(1.0, 80.0, 500))
    behind = _scan_at(p_velo2im, some_targets(200), rng.uniform(-3, -0.3, 200), rng)
    assert (behind[:, 0] < 0).all()
    scan = np.concatenate([scan, near, outside, behind])[rng.permutation(n + 800)]

    ours = kitti_gt.depth_from_points(p_velo2im, scan, shape, value)
    oracle = official_style_velodyne_depth(p_velo2im, scan, shape, value)
    assert ours.tobytes() == oracle.tobytes()

    # Not vacuous: some official index really spans (r, w - 1) and (r + 1, 0).
    rows, cols, _ = kitti_gt.project_points(p_velo2im, scan, shape, value)
    idx = rows * (w - 1) + cols - 1
    last_col = set(idx[cols == w - 1]) & set(idx[cols == 0])
    assert len(last_col) >= 1


def test_sub2ind_collision_quirk(p_velo2im):
    """Official semantics on hand-made cases, (1, 7) and (2, 0) sharing an index at width 8."""
    shape = (5, 8)
    cases = [  # (pixels in scan order, depths) -> expected values at (1, 7), (2, 0)
        ([(1, 7), (2, 0)], [10.0, 5.0], (5.0, 5.0)),  # first point's pixel takes the group min
        ([(1, 7), (2, 0)], [5.0, 10.0], (5.0, 10.0)),
        ([(2, 0), (1, 7), (2, 0)], [3.0, 10.0, 7.0], (10.0, 3.0)),
        ([(2, 0), (2, 0)], [3.0, 7.0], (0.0, 3.0)),  # a true duplicate: the nearest point
    ]
    for pixels, z, (a, b) in cases:
        depth = kitti_gt.depth_from_points(p_velo2im, _scan_at(p_velo2im, pixels, z, None), shape)
        got = (depth[1, 7], depth[2, 0])
        assert got == pytest.approx((a, b), rel=1e-5), (pixels, z)
        assert np.count_nonzero(depth) == (a > 0) + (b > 0)


def test_cli_end_to_end(tmp_path, golden):
    out = tmp_path / "gt.npz"
    proc = subprocess.run([sys.executable, "-m", "s2r_jax.data.kitti_gt", "--kitti_root", str(ROOT),
                           "--split_file", str(SPLIT), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1/1 frames" in proc.stdout
    (gt,) = kitti_gt.load_gt(out)
    assert gt.tobytes() == golden["depth_camera_z"].tobytes()
    with np.load(out) as data:
        assert list(data["files"]) == [SPLIT.read_text().split()[0]] and str(data["value"]) == "camera_z"


def test_export_velodyne_x_and_cli_error(tmp_path, golden, tree):
    out = tmp_path / "gt_x.npz"
    assert kitti_gt.export_gt(ROOT, SPLIT, out, value="velodyne_x") == 1
    (gt,) = kitti_gt.load_gt(out)
    assert np.array_equal(gt, golden["depth_velodyne_x"])

    root, split = tree
    split.write_text("a b c\n")
    proc = subprocess.run([sys.executable, "-m", "s2r_jax.data.kitti_gt", "--kitti_root", str(root),
                           "--split_file", str(split), "--output", str(tmp_path / "bad.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {split}:1: expected 4")
    assert not (tmp_path / "bad.npz").exists()


def test_calibration_missing_key(tree, tmp_path):
    root, split = tree
    calib = root / DATE / "calib_velo_to_cam.txt"
    calib.write_text("".join(l for l in calib.read_text().splitlines(True) if not l.startswith("T:")))
    want = re.escape(f"{split}:1: calibration file {calib}: missing key(s) T")
    with pytest.raises(DataFormatError, match=want):
        kitti_gt.export_gt(root, split, tmp_path / "gt.npz")
    assert not (tmp_path / "gt.npz").exists() and not (tmp_path / "gt.npz.partial").exists()


def test_velodyne_size_not_multiple_of_16(tree, tmp_path):
    root, split = tree
    velo = root / VELO_REL
    velo.write_bytes(velo.read_bytes()[:-3])
    want = re.escape(f"{split}:1: velodyne file {velo}: size 967997 bytes")
    with pytest.raises(DataFormatError, match=want):
        kitti_gt.export_gt(root, split, tmp_path / "gt.npz")


def test_list_line_wrong_field_count(tree, tmp_path):
    root, split = tree
    split.write_text(SPLIT.read_text() + "only three fields\n")
    want = re.escape(f"{split}:2: expected 4 space-separated fields, got 3")
    with pytest.raises(DataFormatError, match=want):
        kitti_gt.export_gt(root, split, tmp_path / "gt.npz")


def test_missing_velodyne_file(tree, tmp_path):
    root, split = tree
    (root / VELO_REL).unlink()
    split.write_text("\n" + SPLIT.read_text())  # a blank first line: the frame is on line 2
    want = re.escape(f"{split}:2: velodyne file {root / VELO_REL}: no such file")
    with pytest.raises(FileNotFoundError, match=want):
        kitti_gt.export_gt(root, split, tmp_path / "gt.npz")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="value must be one of"):
        kitti_gt.export_gt(ROOT, SPLIT, tmp_path / "gt.npz", value="disparity")
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        kitti_gt.load_gt(tmp_path / "nothing.npz")
