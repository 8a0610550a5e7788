"""Where the frames of the zero-shot transfer datasets are, in the layouts users download.

One `*_frames` function per dataset turns the directory a user unpacked the download into
(and, where the dataset has one, an official split list) into a list of `Frame`s with
absolute paths, in a fixed order, checking that every file of every frame exists and
naming the first missing one. Decoding is left to the builders (`depth_formats`,
`imageio`), so nothing here needs tensorflow. `sources.py` does the same for the training
datasets (Virtual KITTI, KITTI, NYUv2).

Layouts (the builders' READMEs say where to download each archive):
  sun_rgbd       SUNRGBD/<sensor>/.../<sequence>/image/<name>.jpg + depth/<name>.png
  ibims          imagelist.txt, rgb/ depth/ mask_invalid/ mask_transp/ <name>.png
  diode          val/{indoors,outdoor}/scene_*/scan_*/<name>.png + _depth.npy + _depth_mask.npy
  hypersim       ai_VVV_NNN/images/scene_cam_XX_final_preview/frame.IIII.tonemap.jpg
                 + scene_cam_XX_geometry_hdf5/frame.IIII.depth_meters.hdf5
  ddad           <name>_rgb.png + <name>_depth.npy (ZoeDepth's preprocessed DDAD val)
  diml_outdoor   <scene>/outleft/<name>.png + <scene>/depthmap/<name>.png
  make3d         Test134/img-<name>.jpg + Gridlaserdata/depth_sph_corr-<name>.mat
  cityscapes     leftImg8bit/val/<city>/<name>_leftImg8bit.png + disparity/... + camera/...
  driving_stereo test-left-image/.../<name>.jpg + test-depth-map/.../<name>.png, or
                 <weather>/left-image-full-size/<name>.jpg + <weather>/depth-map-full-size/<name>.png
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import os
from typing import Callable, Sequence

from s2r_jax.data import sources
from s2r_jax.data.lists import DataFormatError, read_list

_require = sources._require  # one definition of "this file must exist (named, with where it was listed)"


@dataclasses.dataclass(frozen=True)
class Frame:
    """One evaluation frame of a transfer dataset: absolute paths of its files."""
    key: str                      # unique within the split: the image path relative to the dataset root
    image: str
    depth: str                    # depth / disparity / laser-grid file, in the dataset's own format
    masks: tuple[str, ...] = ()   # validity masks where the dataset defines them (iBims, DIODE)
    camera: str | None = None     # Cityscapes: the camera JSON with baseline and fx


def _root_with(manual_dir: str, marker: str, subdirs: Sequence[str], dataset: str) -> str:
    """The folder under `manual_dir` that holds `marker` (the dataset's top-level file or
    folder), looking in `manual_dir` itself and then in each of `subdirs` (the archive's
    own top folder, e.g. `val/`, `ibims1_core_raw/`)."""
    for sub in ("", *subdirs):
        root = os.path.join(manual_dir, sub)
        if os.path.exists(os.path.join(root, marker)):
            return os.path.normpath(root)
    where = " or ".join(os.path.join(manual_dir, s, marker) for s in ("", *subdirs))
    raise FileNotFoundError(f"{dataset}: expected {where}")


def _paired(root: str, pattern: str, dataset: str, pair: Callable[[str], Frame]) -> list[Frame]:
    """Frames of every file matching `root/pattern`, sorted, each paired by `pair`."""
    images = sorted(glob.glob(os.path.join(root, pattern), recursive=True))
    if not images:
        raise FileNotFoundError(f"{dataset}: no files match {os.path.join(root, pattern)}")
    return [pair(image) for image in images]


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


# --- SUN RGB-D --------------------------------------------------------------------------
def _sunrgbd_depth_file(image: str, where: str) -> str:
    """`<seq>/image/<name>.jpg` -> `<seq>/depth/<name>.png`, or the only PNG in `<seq>/depth/`
    (a few sensors name the depth file differently from the image)."""
    seq = os.path.dirname(os.path.dirname(image))
    depth_dir = os.path.join(seq, "depth")
    same = os.path.join(depth_dir, os.path.splitext(os.path.basename(image))[0] + ".png")
    if os.path.isfile(same):
        return same
    pngs = sorted(glob.glob(os.path.join(depth_dir, "*.png")))
    if len(pngs) == 1:
        return pngs[0]
    raise FileNotFoundError(f"{same}: no such file, and {depth_dir}/ holds {len(pngs)} PNGs instead of one "
                            f"({where})")


def sunrgbd_frames(manual_dir: str, split_file: str) -> list[Frame]:
    """The frames of a SUN RGB-D list of image paths (`SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg`,
    the format of the 5050-image test list), under the folder holding `SUNRGBD/`."""
    root = _root_with(manual_dir, "SUNRGBD", (), "SUN RGB-D")
    frames = []
    for lineno, (rel,) in enumerate(read_list(split_file, 1), 1):
        where = f"{split_file} line {lineno}"
        image = _require(os.path.join(root, rel), where)
        frames.append(Frame(key=rel, image=image, depth=_sunrgbd_depth_file(image, where)))
    return frames


# --- iBims-1 ----------------------------------------------------------------------------
IBIMS_DIRS = ("rgb", "depth", "mask_invalid", "mask_transp")


def ibims_frames(manual_dir: str) -> list[Frame]:
    """iBims-1 core (`ibims1_core_raw`): the frames of its `imagelist.txt`, in that order."""
    root = _root_with(manual_dir, "imagelist.txt", ("ibims1_core_raw",), "iBims-1")
    listing = os.path.join(root, "imagelist.txt")
    frames = []
    for lineno, (name,) in enumerate(read_list(listing, 1), 1):
        rgb, depth, invalid, transp = (_require(os.path.join(root, d, name + ".png"), f"{listing} line {lineno}")
                                       for d in IBIMS_DIRS)
        frames.append(Frame(key=_rel(rgb, root), image=rgb, depth=depth, masks=(invalid, transp)))
    return frames


# --- DIODE ------------------------------------------------------------------------------
DIODE_SCENE_TYPES = {"indoor": "indoors", "outdoor": "outdoor"}  # the release's folder names


def diode_frames(manual_dir: str, domain: str, split: str = "val") -> list[Frame]:
    """Every frame of DIODE `split` (val) for `domain` ('indoor' or 'outdoor'), sorted."""
    if domain not in DIODE_SCENE_TYPES:
        raise ValueError(f"DIODE domain must be one of {sorted(DIODE_SCENE_TYPES)}, got {domain!r}")
    folder = DIODE_SCENE_TYPES[domain]
    root = _root_with(manual_dir, folder, (split,), f"DIODE {split}")

    def pair(image: str) -> Frame:
        stem = image[:-len(".png")]
        return Frame(key=_rel(image, root), image=image, depth=_require(stem + "_depth.npy", f"depth of {image}"),
                     masks=(_require(stem + "_depth_mask.npy", f"mask of {image}"),))

    return _paired(root, os.path.join(folder, "scene_*", "scan_*", "*.png"), f"DIODE {split} {domain}", pair)


# --- HyperSim ---------------------------------------------------------------------------
HYPERSIM_SPLIT_COLUMNS = ("scene_name", "camera_name", "frame_id", "included_in_public_release",
                          "split_partition_name")


def read_hypersim_split(split_file: str, partition: str = "test") -> list[tuple[str, str, int]]:
    """(scene, camera, frame) of the rows of an official HyperSim split CSV
    (`metadata_images_split_scene_v1.csv` format) in `partition` and in the public release."""
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"split list {split_file}: no such file")
    rows = []
    with open(split_file, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in HYPERSIM_SPLIT_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DataFormatError(f"{split_file}: not a HyperSim split CSV, missing columns {missing}")
        for lineno, row in enumerate(reader, 2):
            if row["split_partition_name"] != partition or row["included_in_public_release"] != "True":
                continue
            try:
                rows.append((row["scene_name"], row["camera_name"], int(row["frame_id"])))
            except ValueError as e:
                raise DataFormatError(f"{split_file}:{lineno}: frame_id {row['frame_id']!r} is not an integer") from e
    if not rows:
        raise DataFormatError(f"{split_file}: no public-release rows in partition {partition!r}")
    return rows


def hypersim_frames(manual_dir: str, split_file: str, partition: str = "test") -> list[Frame]:
    """The HyperSim frames of `partition` of the official split CSV, in its order: the
    tonemapped JPEG and the `depth_meters` HDF5 of the same camera and frame."""
    frames = []
    for scene, camera, frame_id in read_hypersim_split(split_file, partition):
        where = f"{split_file}: {scene} {camera} frame {frame_id}"
        images = os.path.join(manual_dir, scene, "images")
        name = f"frame.{frame_id:04d}"
        rel = f"{scene}/images/scene_{camera}_final_preview/{name}.tonemap.jpg"
        frames.append(Frame(
            key=rel, image=_require(os.path.join(manual_dir, rel), where),
            depth=_require(os.path.join(images, f"scene_{camera}_geometry_hdf5", f"{name}.depth_meters.hdf5"), where)))
    return frames


# --- DDAD (ZoeDepth's preprocessed validation set) ----------------------------------------
def ddad_frames(manual_dir: str) -> list[Frame]:
    """Every `<name>_rgb.png` with its `<name>_depth.npy` (metres), sorted."""
    root = manual_dir

    def pair(image: str) -> Frame:
        return Frame(key=_rel(image, root), image=image,
                     depth=_require(image[:-len("_rgb.png")] + "_depth.npy", f"depth of {image}"))

    return _paired(root, "*_rgb.png", "DDAD", pair)


# --- DIML Outdoor (test) --------------------------------------------------------------------
def diml_outdoor_frames(manual_dir: str) -> list[Frame]:
    """Every `<scene>/outleft/<name>.png` with `<scene>/depthmap/<name>.png` (mm), sorted."""
    root = manual_dir

    def pair(image: str) -> Frame:
        scene, name = os.path.dirname(os.path.dirname(image)), os.path.basename(image)
        return Frame(key=_rel(image, root), image=image,
                     depth=_require(os.path.join(scene, "depthmap", name), f"depth of {image}"))

    return _paired(root, os.path.join("*", "outleft", "*.png"), "DIML Outdoor", pair)


# --- Make3D (Test134) -----------------------------------------------------------------------
def make3d_frames(manual_dir: str) -> list[Frame]:
    """The 134 test images `Test134/img-<name>.jpg` with `Gridlaserdata/depth_sph_corr-<name>.mat`."""
    root = _root_with(manual_dir, "Test134", (), "Make3D")

    def pair(image: str) -> Frame:
        name = os.path.basename(image)[len("img-"):-len(".jpg")]
        return Frame(key=_rel(image, root), image=image,
                     depth=_require(os.path.join(root, "Gridlaserdata", f"depth_sph_corr-{name}.mat"),
                                    f"laser depth of {image}"))

    return _paired(root, os.path.join("Test134", "img-*.jpg"), "Make3D", pair)


# --- Cityscapes -------------------------------------------------------------------------------
def cityscapes_frames(manual_dir: str, split: str = "val") -> list[Frame]:
    """Every left image of `split` with its disparity PNG and camera JSON, sorted."""
    root = _root_with(manual_dir, "leftImg8bit", (), "Cityscapes")

    def pair(image: str) -> Frame:
        city = os.path.basename(os.path.dirname(image))
        stem = os.path.basename(image)[:-len("_leftImg8bit.png")]
        return Frame(key=_rel(image, root), image=image,
                     depth=_require(os.path.join(root, "disparity", split, city, stem + "_disparity.png"),
                                    f"disparity of {image}"),
                     camera=_require(os.path.join(root, "camera", split, city, stem + "_camera.json"),
                                     f"camera of {image}"))

    return _paired(root, os.path.join("leftImg8bit", split, "*", "*_leftImg8bit.png"), f"Cityscapes {split}", pair)


# --- DrivingStereo ----------------------------------------------------------------------------
DRIVING_STEREO_SUBSETS = {  # subset -> (image folder, depth folder), as the archives unpack
    "test": ("test-left-image", "test-depth-map"),
    **{w: (f"{w}/left-image-full-size", f"{w}/depth-map-full-size") for w in ("sunny", "cloudy", "foggy", "rainy")},
}


def driving_stereo_frames(manual_dir: str, subset: str = "test") -> list[Frame]:
    """Every left JPEG of `subset` ('test' or a weather: sunny, cloudy, foggy, rainy) with
    the depth PNG at the same relative path in the depth folder, sorted."""
    if subset not in DRIVING_STEREO_SUBSETS:
        raise ValueError(f"DrivingStereo subset must be one of {sorted(DRIVING_STEREO_SUBSETS)}, got {subset!r}")
    image_dir, depth_dir = DRIVING_STEREO_SUBSETS[subset]
    root = _root_with(manual_dir, image_dir, (), f"DrivingStereo {subset}")

    def pair(image: str) -> Frame:
        rel = os.path.relpath(image, os.path.join(root, image_dir))
        depth = os.path.join(root, depth_dir, os.path.splitext(rel)[0] + ".png")
        return Frame(key=_rel(image, root), image=image, depth=_require(depth, f"depth of {image}"))

    return _paired(root, os.path.join(image_dir, "**", "*.jpg"), f"DrivingStereo {subset}", pair)
