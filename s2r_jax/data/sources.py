"""Where each dataset's frames are on disk, in the layouts users download.

Each `*_frames` function turns a dataset root (and a split list) into a list of
`Frame`s with absolute paths, checking that every file exists and naming the
missing one with its list line. Loading and validating pixels is left to the
builders (Pillow, via `imageio`), so nothing here needs tensorflow.
"""
from __future__ import annotations

import dataclasses
import glob
import importlib.resources
import os

from s2r_jax.data.lists import DataFormatError, read_list


@dataclasses.dataclass(frozen=True)
class Frame:
    key: str                      # stable, unique within the split (the relative image path)
    image: str
    depth: str | None = None      # 16-bit PNG (vKITTI cm, NYU mm, KITTI improved GT m*256)
    calib_dir: str | None = None  # KITTI: the date folder with calib_*.txt
    velodyne: str | None = None   # KITTI: velodyne_points/data/%010d.bin
    focal: float | None = None    # NYU / improved-GT lists carry a focal length


def packaged_split(*parts: str) -> str:
    """Path of a split list shipped with the package (s2r_jax/data/splits/...)."""
    path = importlib.resources.files("s2r_jax.data").joinpath("splits", *parts)
    return str(path)


def _require(path: str, where: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file ({where})")
    return path


# --- Virtual KITTI 1.3.1 -------------------------------------------------------------
# The official lists name files `rgb/<world>/<variation>/%05d.png` and `depth/...`; the
# downloaded archives unpack to `vkitti_1.3.1_rgb/...` and `vkitti_1.3.1_depthgt/...`.
VKITTI1_DIRS = {"rgb": ("rgb", "vkitti_1.3.1_rgb"), "depth": ("depth", "vkitti_1.3.1_depthgt")}


def _vkitti1_dir(root: str, kind: str) -> str:
    for name in VKITTI1_DIRS[kind]:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    names = " or ".join(f"{root}/{n}/" for n in VKITTI1_DIRS[kind])
    raise FileNotFoundError(f"Virtual KITTI 1.3.1: expected {names}")


def vkitti1_frames(root: str, split_file: str) -> list[Frame]:
    rgb_dir, depth_dir = _vkitti1_dir(root, "rgb"), _vkitti1_dir(root, "depth")
    frames = []
    for lineno, (rgb, depth) in enumerate(read_list(split_file, 2), 1):
        where = f"{split_file} line {lineno}"
        rgb_rel, depth_rel = (p.split("/", 1)[1] if "/" in p else p for p in (rgb, depth))
        frames.append(Frame(key=rgb,
                            image=_require(os.path.join(rgb_dir, rgb_rel), where),
                            depth=_require(os.path.join(depth_dir, depth_rel), where)))
    return frames


# --- Virtual KITTI 2 ----------------------------------------------------------------
VKITTI2_RGB, VKITTI2_DEPTH = "vkitti_2.0.3_rgb", "vkitti_2.0.3_depth"


def vkitti2_frames(root: str, split_file: str | None = None) -> list[Frame]:
    """All frames of both cameras (sorted), or those of a list of `rgb depth` paths
    relative to `root` (e.g. `vkitti_2.0.3_rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg ...`)."""
    if split_file is not None:
        return [Frame(key=rgb, image=_require(os.path.join(root, rgb), f"{split_file} line {i}"),
                      depth=_require(os.path.join(root, depth), f"{split_file} line {i}"))
                for i, (rgb, depth) in enumerate(read_list(split_file, 2), 1)]
    if not os.path.isdir(os.path.join(root, VKITTI2_RGB)):
        raise FileNotFoundError(f"Virtual KITTI 2: expected {root}/{VKITTI2_RGB}/ and {root}/{VKITTI2_DEPTH}/")
    pattern = os.path.join(root, VKITTI2_RGB, "Scene*", "*", "frames", "rgb", "Camera_[01]", "rgb_*.jpg")
    frames = []
    for rgb in sorted(glob.glob(pattern)):
        rel = os.path.relpath(rgb, os.path.join(root, VKITTI2_RGB))
        scene, variation, _, _, camera, name = rel.split(os.sep)
        depth = os.path.join(root, VKITTI2_DEPTH, scene, variation, "frames", "depth", camera,
                             name.replace("rgb_", "depth_").replace(".jpg", ".png"))
        frames.append(Frame(key=os.path.join(VKITTI2_RGB, rel), image=rgb, depth=_require(depth, f"pair of {rgb}")))
    if not frames:
        raise FileNotFoundError(f"Virtual KITTI 2: no frames match {pattern}")
    return frames


# --- KITTI raw, Eigen split ---------------------------------------------------------------
def _improved_gt_index(improved_list: str | None) -> dict[str, str | None]:
    """Left image -> improved ground-truth path (None where the list says None)."""
    if improved_list is None:
        return {}
    return {img: (None if gt == "None" else gt) for img, gt, *_ in read_list(improved_list, (2, 3))}


def _find_improved(improved_root: str, rel: str) -> str | None:
    # The annotated-depth archive splits drives into train/ and val/; lists omit that level.
    for sub in ("", "train", "val"):
        path = os.path.join(improved_root, sub, rel)
        if os.path.isfile(path):
            return path
    return None


def kitti_frames(root: str, split_file: str, improved_list: str | None = None,
                 improved_root: str | None = None) -> list[Frame]:
    """Frames of an official-format KITTI list: `left right date velodyne` per line.

    With `improved_list` (the same frames with the improved ground-truth path, or
    None) and `improved_root` (where `data_depth_annotated` was unpacked), each
    frame also gets its improved ground truth when one exists.
    """
    improved = _improved_gt_index(improved_list)
    frames = []
    for lineno, (left, _right, date, velo) in enumerate(read_list(split_file, 4), 1):
        where = f"{split_file} line {lineno}"
        depth = None
        if improved.get(left) is not None and improved_root is not None:
            depth = _find_improved(improved_root, improved[left])
            if depth is None:
                raise FileNotFoundError(f"improved ground truth {improved[left]} not found under {improved_root} "
                                        f"(nor its train/ or val/) ({where})")
        calib = os.path.join(root, date)
        for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
            _require(os.path.join(calib, name), where)
        frames.append(Frame(key=left, image=_require(os.path.join(root, left), where), depth=depth, calib_dir=calib,
                            velodyne=_require(os.path.join(root, velo), where)))
    return frames


# --- NYU Depth v2 test ------------------------------------------------------------------
def nyu_frames(root: str, split_file: str) -> list[Frame]:
    """`<scene>/rgb_%05d.jpg <scene>/sync_depth_%05d.png focal` per line; depth PNG in mm."""
    frames = []
    for lineno, fields in enumerate(read_list(split_file, (2, 3)), 1):
        where = f"{split_file} line {lineno}"
        rgb, depth = fields[0], fields[1]
        try:
            focal = float(fields[2]) if len(fields) == 3 else None
        except ValueError as e:
            raise DataFormatError(f"{where}: focal length {fields[2]!r} is not a number") from e
        frames.append(Frame(key=rgb, image=_require(os.path.join(root, rgb), where),
                            depth=_require(os.path.join(root, depth), where), focal=focal))
    return frames
