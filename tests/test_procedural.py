"""The procedural stand-in dataset: vKITTI 1.3.1 layout, determinism, analytic depth, style gap."""
import filecmp
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from s2r_jax.data import procedural as P
from s2r_jax.data.imageio import read_png16, read_rgb
from s2r_jax.data.lists import read_list

H, W = 96, 160


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("pvkitti")
    rows = P.write_dataset(root, 5, "synthetic", seed=3, height=H, width=W, frames_per_world=2,
                           verbose=False)
    return root, rows


def test_layout_and_formats(tree):
    root, rows = tree
    assert sorted(os.listdir(root)) == ["depth", "rgb", "train.txt"]
    frames = [("0001", 0), ("0001", 1), ("0002", 0), ("0002", 1), ("0003", 0)]
    assert rows == [[f"rgb/{w}/clone/{k:05d}.png", f"depth/{w}/clone/{k:05d}.png"] for w, k in frames]
    lines = (root / "train.txt").read_text().splitlines()
    assert len(lines) == 5
    for line, row in zip(lines, rows):
        assert re.fullmatch(r"rgb/(\d{4}/clone/\d{5}\.png) depth/\1", line), line
        assert line.split() == row
    assert read_list(root / "train.txt", 2) == rows
    for i, (rgb_rel, depth_rel) in enumerate(rows):
        with Image.open(root / rgb_rel) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (W, H))
        with Image.open(root / depth_rel) as im:
            assert im.format == "PNG" and im.mode.startswith("I;16") and im.size == (W, H)
        rgb, depth = P.render_frame((3, i), H, W, "synthetic")
        assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3) and depth.dtype == np.uint16
        np.testing.assert_array_equal(read_rgb(root / rgb_rel), rgb)
        np.testing.assert_array_equal(read_png16(root / depth_rel), depth)
        assert (depth == P.SKY_CM).any() and (depth < P.SKY_CM).mean() > 0.5
        finite = depth[depth < P.SKY_CM]
        assert finite.min() >= 100 and finite.max() <= 12000  # 1 m to 120 m


def test_determinism(tree, tmp_path):
    root, rows = tree
    P.write_dataset(tmp_path, 5, "synthetic", seed=3, height=H, width=W, frames_per_world=2, verbose=False)
    for row in rows:
        for rel in row:
            assert filecmp.cmp(root / rel, tmp_path / rel, shallow=False), rel
    a = P.render_frame(np.random.default_rng(5), H, W, "real")
    b = P.render_frame(np.random.default_rng(5), H, W, "real")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    depths = [P.render_frame((seed, 0), H, W)[1] for seed in (3, 4, 5)] + [P.render_frame((3, 1), H, W)[1]]
    for i in range(len(depths)):
        for j in range(i):
            assert (depths[i] != depths[j]).mean() > 0.2


def test_geometry_independent_of_style():
    for i in range(3):
        rgb_s, depth_s = P.render_frame((7, i), H, W, "synthetic")
        rgb_r, depth_r = P.render_frame((7, i), H, W, "real")
        np.testing.assert_array_equal(depth_s, depth_r)
        assert np.abs(rgb_s.astype(int) - rgb_r).mean() > 10


@pytest.mark.parametrize("max_pitch_deg", [0.0, 3.0])
def test_analytic_depth(max_pitch_deg):
    for i in range(4):
        scene = P.sample_scene((11, i), H, W, max_pitch_deg=max_pitch_deg)
        _, depth, labels = P.render_scene(scene, "synthetic")
        fx, fy, cx, cy = scene.K
        v = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, W))
        c, s = np.cos(scene.pitch), np.sin(scene.pitch)
        # ground plane y = h in a camera pitched by `pitch`: z = h / (cos * (v - cy) / fy + sin)
        z = scene.cam_height / (c * (v - cy) / fy + s)
        if max_pitch_deg == 0:
            assert scene.pitch == 0
            np.testing.assert_allclose(z, scene.cam_height * fy / (v - cy))
        ground = np.isin(labels, [P.ROAD, P.SIDEWALK])
        assert ground.mean() > 0.15
        assert np.abs(depth[ground] - z[ground] * 100).max() <= 0.5 + 1e-6
        sky = labels == P.SKY
        assert sky.any() and np.array_equal(sky, depth == P.SKY_CM)
        horizon = cy - fy * np.tan(scene.pitch)  # the image row of the vanishing line
        assert v[sky].max() < horizon
        # front faces of boxes, planes z_world = z0: z = z0 / (cos - sin * (v - cy) / fy)
        _, surf, axis, _ = P.ray_cast(scene)
        front = (surf >= 3) & (axis == 2)
        assert front.any()
        z = scene.boxes[surf[front] - 3, 0, 2] / (c - s * (v[front] - cy) / fy)
        assert np.abs(depth[front] - z * 100).max() <= 0.5 + 1e-6


def test_style_gap():
    lap = {"synthetic": [], "real": []}
    for i in range(4):
        for style in P.STYLES:
            rgb, depth = P.render_frame((2, i), H, W, style)
            d = depth.astype(np.int64)
            flat = (ndimage.maximum_filter(d, 3) == ndimage.minimum_filter(d, 3)) & (d < P.SKY_CM)
            assert flat.sum() > 50  # façades facing the camera and the backdrop
            lap[style].append(np.abs(ndimage.laplace(rgb.astype(np.float64).mean(-1)))[flat].mean())
            if style == "synthetic":
                n_synthetic = len(np.unique(rgb.reshape(-1, 3), axis=0))
                hist_synthetic = np.histogramdd(rgb.reshape(-1, 3), bins=8, range=[(0, 256)] * 3)[0]
        n_real = len(np.unique(rgb.reshape(-1, 3), axis=0))
        hist_real = np.histogramdd(rgb.reshape(-1, 3), bins=8, range=[(0, 256)] * 3)[0]
        assert n_synthetic < 200 and n_real > 20 * n_synthetic
        assert 0.5 * np.abs(hist_real - hist_synthetic).sum() / (H * W) > 0.3
    assert max(lap["synthetic"]) < 0.5 and min(lap["real"]) > 5


def test_cli(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "s2r_jax.data.procedural", "--output", str(out), "--num", "3",
           "--style", "real", "--seed", "1", "--height", str(H), "--width", str(W)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "3/3 frames written" in res.stdout
    rows = read_list(out / "train.txt", 2)
    assert rows == [[f"rgb/0001/real/{k:05d}.png", f"depth/0001/real/{k:05d}.png"] for k in range(3)]
    np.testing.assert_array_equal(read_png16(out / rows[2][1]), P.render_frame((1, 2), H, W, "real")[1])
    bad = subprocess.run(cmd[:3] + ["--num", "2", "--style", "cartoon"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and not (tmp_path / "out2").exists()
    code = ("import sys, s2r_jax.data.procedural; "
            "sys.exit(bool({'jax', 'tensorflow'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
