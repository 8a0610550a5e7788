"""Tiny trees of the zero-shot transfer datasets, in the layouts their owners publish.

Each writer returns what the test needs to check values read back (the arrays written,
in metres or the dataset's stored unit, keyed by frame name) and, where the builder takes
one, the split list it wrote.
"""
import json
import os

import numpy as np
from PIL import Image

from s2r_jax.data import imageio


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mkdir_for(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def _write_mask_png(path, mask):
    Image.fromarray(np.asarray(mask, np.uint8)).save(_mkdir_for(path))


def sunrgbd_rotate(mm):
    """The release's encoding of millimetres: the 16 bits rotated left by 3."""
    mm = np.asarray(mm, np.uint16)
    return (mm << 3) | (mm >> 13)


def write_sunrgbd(root, h=12, w=16, seed=0):
    """Two sequences of two sensors; the second names its depth file differently from the
    image (as some SUN RGB-D sensors do). Returns (list path, {key: depth in mm})."""
    rng = np.random.default_rng(seed)
    seqs = [("SUNRGBD/realsense/lg/2014_10_24-23_11_21-1311000073", "0000103", "0000103_depth"),
            ("SUNRGBD/kv1/NYUdata/NYU0001", "NYU0001", "NYU0001")]  # not sorted: the list's order is kept
    lines, expected = [], {}
    for seq, image_name, depth_name in seqs:
        rel = f"{seq}/image/{image_name}.jpg"
        imageio.write_rgb(_mkdir_for(os.path.join(root, rel)), _rgb(rng, h, w))
        mm = rng.integers(0, 65536, (h, w)).astype(np.uint16)  # every bit used: the rotation must be exact
        mm[0, 0], mm[0, 1] = 1, 8192
        imageio.write_png16(_mkdir_for(os.path.join(root, seq, "depth", depth_name + ".png")), sunrgbd_rotate(mm))
        lines.append(rel)
        expected[rel] = mm
    path = os.path.join(root, "test.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, expected


def write_ibims(root, n=2, h=12, w=16, seed=0):
    """ibims1_core_raw/ with imagelist.txt; returns {key: (depth uint16, valid bool)}."""
    rng = np.random.default_rng(seed)
    root = os.path.join(root, "ibims1_core_raw")
    names, expected = [f"corridor_{i:02d}" for i in range(n)], {}
    for name in names:
        imageio.write_rgb(_mkdir_for(os.path.join(root, "rgb", name + ".png")), _rgb(rng, h, w))
        depth = rng.integers(1, 65536, (h, w)).astype(np.uint16)
        imageio.write_png16(_mkdir_for(os.path.join(root, "depth", name + ".png")), depth)
        invalid = rng.integers(0, 2, (h, w)) * 255  # published as 0 / 255 PNGs
        transp = rng.integers(0, 2, (h, w))
        _write_mask_png(os.path.join(root, "mask_invalid", name + ".png"), invalid)
        _write_mask_png(os.path.join(root, "mask_transp", name + ".png"), transp)
        expected[f"rgb/{name}.png"] = (depth, (invalid != 0) & (transp != 0))
    with open(os.path.join(root, "imagelist.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return expected


def write_diode(root, h=12, w=16, seed=0):
    """val/{indoors,outdoor}/scene_*/scan_*/: two indoor frames, one outdoor.
    Returns {key: (depth float32, valid bool)}."""
    rng = np.random.default_rng(seed)
    expected = {}
    for folder, scene, scan, k in (("indoors", "00019", "00183", 0), ("indoors", "00019", "00183", 1),
                                   ("outdoor", "00022", "00193", 0)):
        rel = f"{folder}/scene_{scene}/scan_{scan}/{scene}_{scan}_{folder}_000_{k:03d}"
        base = _mkdir_for(os.path.join(root, "val", rel))
        imageio.write_rgb(base + ".png", _rgb(rng, h, w))
        depth = rng.uniform(0.6, 60.0, (h, w, 1)).astype(np.float32)
        mask = (rng.uniform(size=(h, w)) > 0.3).astype(np.float64)
        depth[mask == 0] = 0.0
        np.save(base + "_depth.npy", depth)
        np.save(base + "_depth_mask.npy", mask)
        expected[rel + ".png"] = (depth[..., 0], mask != 0)
    return expected


def write_hypersim(root, seed=0):
    """Two test frames of one scene (768x1024, as every HyperSim render) and a split CSV in
    the official format with a train row and an excluded row around them.
    Returns (csv path, {key: distance float16})."""
    import h5py

    rng = np.random.default_rng(seed)
    rows = ["scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,split_partition_name",
            "ai_001_001,cam_00,0,True,,train"]
    expected = {}
    for frame_id in (12, 3):  # not sorted: the CSV's order is kept
        rel = f"ai_055_001/images/scene_cam_01_final_preview/frame.{frame_id:04d}.tonemap.jpg"
        imageio.write_rgb(_mkdir_for(os.path.join(root, rel)), _rgb(rng, 768, 1024))
        distance = rng.uniform(0.5, 30.0, (768, 1024)).astype(np.float16)
        distance[:5, :7] = np.nan  # rays that hit no geometry
        h5 = _mkdir_for(os.path.join(root, "ai_055_001/images/scene_cam_01_geometry_hdf5",
                                     f"frame.{frame_id:04d}.depth_meters.hdf5"))
        with h5py.File(h5, "w") as f:
            f.create_dataset("dataset", data=distance)
        rows.append(f"ai_055_001,cam_01,{frame_id},True,,test")
        expected[rel] = distance
    rows.append("ai_055_001,cam_01,99,False,CONTENT FLAGGED FOR REMOVAL,")
    path = os.path.join(root, "split.csv")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path, expected


def write_ddad(root, n=2, h=12, w=20, seed=0):
    """ZoeDepth's DDAD layout: <name>_rgb.png + <name>_depth.npy (metres, sparse)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    expected = {}
    for i in range(n):
        name = f"000150_CAMERA_01_{i:04d}"
        imageio.write_rgb(os.path.join(root, name + "_rgb.png"), _rgb(rng, h, w))
        depth = np.where(rng.uniform(size=(h, w)) > 0.8, rng.uniform(1, 150, (h, w)), 0).astype(np.float32)
        np.save(os.path.join(root, name + "_depth.npy"), depth)
        expected[name + "_rgb.png"] = depth
    return expected


def write_diml_outdoor(root, h=12, w=16, seed=0):
    """<scene>/outleft/<name>.png + <scene>/depthmap/<name>.png (uint16 mm)."""
    rng = np.random.default_rng(seed)
    expected = {}
    for scene, name in (("16.Daejeon", "outleft_0001.png"), ("16.Daejeon", "outleft_0002.png"),
                        ("17.Seoul", "outleft_0001.png")):
        imageio.write_rgb(_mkdir_for(os.path.join(root, scene, "outleft", name)), _rgb(rng, h, w))
        mm = rng.integers(0, 80000, (h, w)).clip(0, 65535).astype(np.uint16)
        imageio.write_png16(_mkdir_for(os.path.join(root, scene, "depthmap", name)), mm)
        expected[f"{scene}/outleft/{name}"] = mm
    return expected


def write_make3d(root, h=32, w=24, seed=0):
    """Test134/img-<name>.jpg (portrait, as Make3D's 2272x1704) + Gridlaserdata/depth_sph_corr-<name>.mat."""
    import scipy.io

    rng = np.random.default_rng(seed)
    expected = {}
    for name in ("10-21op2-p-139t000", "op1-p-108t000"):
        imageio.write_rgb(_mkdir_for(os.path.join(root, "Test134", f"img-{name}.jpg")), _rgb(rng, h, w))
        grid = rng.uniform(1.0, 90.0, (55, 305, 4))  # x, y, z, depth; float64 as in the .mat files
        scipy.io.savemat(_mkdir_for(os.path.join(root, "Gridlaserdata", f"depth_sph_corr-{name}.mat")),
                         {"Position3DGrid": grid})
        expected[f"Test134/img-{name}.jpg"] = grid[:, :, 3].astype(np.float32)
    return expected


CITYSCAPES_CAMERA = {"extrinsic": {"baseline": 0.209313, "pitch": 0.038, "roll": 0.0, "x": 1.7, "y": 0.1,
                                   "yaw": -0.0195, "z": 1.22},
                     "intrinsic": {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137}}


def write_cityscapes(root, h=8, w=16, seed=0):
    """leftImg8bit/val/<city>/..., disparity/val/<city>/..., camera/val/<city>/...
    Returns {key: (disparity uint16, baseline, fx)}."""
    rng = np.random.default_rng(seed)
    expected = {}
    for city, stem in (("frankfurt", "frankfurt_000000_000294"), ("lindau", "lindau_000000_000019")):
        key = f"leftImg8bit/val/{city}/{stem}_leftImg8bit.png"
        imageio.write_rgb(_mkdir_for(os.path.join(root, key)), _rgb(rng, h, w))
        disparity = rng.integers(0, 30000, (h, w)).astype(np.uint16)
        disparity[0, :3] = (0, 1, 257)  # invalid, infinitely far (invalid), exactly 1 px
        imageio.write_png16(_mkdir_for(os.path.join(root, "disparity", "val", city, stem + "_disparity.png")),
                            disparity)
        camera = json.loads(json.dumps(CITYSCAPES_CAMERA))
        camera["extrinsic"]["baseline"] += 0.001 * len(expected)  # each city its own calibration
        with open(_mkdir_for(os.path.join(root, "camera", "val", city, stem + "_camera.json")), "w") as f:
            json.dump(camera, f)
        expected[key] = (disparity, camera["extrinsic"]["baseline"], camera["intrinsic"]["fx"])
    return expected


def write_driving_stereo(root, subset="test", h=8, w=18, seed=0):
    """The test set (test-left-image/<sequence>/, test-depth-map/<sequence>/) or a weather set
    (<weather>/left-image-full-size/, <weather>/depth-map-full-size/). Returns {key: depth uint16}."""
    rng = np.random.default_rng(seed)
    if subset == "test":
        names = ["2018-07-11-14-48-52/2018-07-11-14-48-52_2018-07-11-15-09-39-222",
                 "2018-07-16-15-18-53/2018-07-16-15-18-53_2018-07-16-15-37-27-965"]
        image_dir, depth_dir = "test-left-image", "test-depth-map"
    else:
        names = ["2018-10-25-07-37-26_2018-10-25-07-47-21-477"]
        image_dir, depth_dir = f"{subset}/left-image-full-size", f"{subset}/depth-map-full-size"
    expected = {}
    for name in names:
        imageio.write_rgb(_mkdir_for(os.path.join(root, image_dir, name + ".jpg")), _rgb(rng, h, w))
        depth = rng.integers(0, 65536, (h, w)).astype(np.uint16)
        imageio.write_png16(_mkdir_for(os.path.join(root, depth_dir, name + ".png")), depth)
        expected[f"{image_dir}/{name}.jpg"] = depth
    return expected
