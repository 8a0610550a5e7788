"""Tiny dataset trees in the real on-disk formats, for builder and pipeline tests."""
import os

import numpy as np

from s2r_jax.data import imageio


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_vkitti1(root, n=4, h=24, w=40, archive_names=False, seed=0):
    """Virtual KITTI 1.3.1: rgb/<world>/<variation>/%05d.png + 16-bit depth (cm); returns the list path."""
    rng = np.random.default_rng(seed)
    rgb_dir, depth_dir = ("vkitti_1.3.1_rgb", "vkitti_1.3.1_depthgt") if archive_names else ("rgb", "depth")
    lines = []
    for i in range(n):
        world = "0001" if i % 2 == 0 else "0018"
        rel = f"{world}/clone/{i:05d}.png"
        os.makedirs(os.path.join(root, rgb_dir, world, "clone"), exist_ok=True)
        os.makedirs(os.path.join(root, depth_dir, world, "clone"), exist_ok=True)
        imageio.write_rgb(os.path.join(root, rgb_dir, rel), _rgb(rng, h, w))
        depth = rng.integers(100, 9000, (h, w)).astype(np.uint16)
        depth[0, :] = 65535  # sky
        imageio.write_png16(os.path.join(root, depth_dir, rel), depth)
        lines.append(f"rgb/{rel} depth/{rel}")
    path = os.path.join(root, "list.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_vkitti2(root, h=24, w=40, seed=0):
    """Virtual KITTI 2: two scenes x one variation x two cameras x two frames."""
    rng = np.random.default_rng(seed)
    n = 0
    for scene in ("Scene01", "Scene02"):
        for cam in ("Camera_0", "Camera_1"):
            rgb_dir = os.path.join(root, "vkitti_2.0.3_rgb", scene, "clone", "frames", "rgb", cam)
            depth_dir = os.path.join(root, "vkitti_2.0.3_depth", scene, "clone", "frames", "depth", cam)
            os.makedirs(rgb_dir, exist_ok=True)
            os.makedirs(depth_dir, exist_ok=True)
            for i in range(2):
                imageio.write_rgb(os.path.join(rgb_dir, f"rgb_{i:05d}.jpg"), _rgb(rng, h, w))
                imageio.write_png16(os.path.join(depth_dir, f"depth_{i:05d}.png"),
                                    rng.integers(100, 65535, (h, w)).astype(np.uint16))
                n += 1
    return n


def write_nyu(root, n=3, h=24, w=32, seed=0):
    """NYUv2 test: <scene>/rgb_%05d.jpg + <scene>/sync_depth_%05d.png (mm); returns the list path."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "bathroom"), exist_ok=True)
    lines = []
    for i in range(n):
        imageio.write_rgb(os.path.join(root, "bathroom", f"rgb_{i:05d}.jpg"), _rgb(rng, h, w))
        imageio.write_png16(os.path.join(root, "bathroom", f"sync_depth_{i:05d}.png"),
                            rng.integers(500, 9000, (h, w)).astype(np.uint16))
        lines.append(f"bathroom/rgb_{i:05d}.jpg bathroom/sync_depth_{i:05d}.png 518.8579")
    path = os.path.join(root, "list.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
