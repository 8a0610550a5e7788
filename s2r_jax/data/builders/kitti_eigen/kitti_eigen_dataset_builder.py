"""KITTI raw, Eigen split: images with velodyne and improved ground truth.

The velodyne ground truth is computed here once, with the official projection
(`s2r_jax.data.kitti_gt`), in both conventions — camera z (S2R-DepthNet's test) and
velodyne forward distance (monodepth2's exported ground truth) — and stored as
zlib-compressed float32, so evaluation reads exactly what the official code computes.
The improved ground truth (652 of the 697 test frames) is kept as its 16-bit PNG.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import imageio, kitti_gt, sources
from s2r_jax.data.builders.common import progress
from s2r_jax.data.lists import DataFormatError

IMPROVED_DIR = "data_depth_annotated"


class Builder(tfds.core.GeneratorBasedBuilder):
    name = "kitti_eigen"
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "Frames stored in the list's order (1.0.0 stored them in TFDS's hashed order)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download KITTI raw (https://www.cvlibs.net/datasets/kitti/raw_data.php): the synced+rectified
    drives of the Eigen split and the calibration archives of their dates, unpacked as
        <manual_dir>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
        <manual_dir>/<date>/<date>_drive_XXXX_sync/image_02/data/%010d.png
        <manual_dir>/<date>/<date>_drive_XXXX_sync/velodyne_points/data/%010d.bin
    For the improved ground truth, unpack data_depth_annotated.zip
    (https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_prediction) into
        <manual_dir>/data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_02/%010d.png
    (or pass improved_root). Without it, frames get no improved ground truth.
    """

    def __init__(self, *, test_list: str | None = None, train_list: str | None = None,
                 improved_list: str | None = None, improved_root: str | None = None, **kwargs):
        """`test_list` defaults to the packaged Eigen test list (697 frames);
        `train_list` (same format) adds a `train` split, e.g. for semi-supervised fine-tuning."""
        self._lists = {"test": test_list or sources.packaged_split("kitti", "test.txt")}
        if train_list:
            self._lists["train"] = train_list
        self._improved_list = improved_list or (None if test_list else
                                                sources.packaged_split("kitti", "eigen_test_improved_gt.txt"))
        self._improved_root = improved_root
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        sparse = lambda doc: tfds.features.Tensor(shape=(None, None), dtype=np.float32, encoding="zlib", doc=doc)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "depth_camera_z": sparse("velodyne ground truth, camera z in metres, 0 = none (official S2R)"),
                "depth_velodyne_x": sparse("velodyne ground truth, velodyne forward distance in metres, "
                                           "0 = none (monodepth2's convention)"),
                "depth_improved": tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format="png",
                                                      doc="improved ground truth, metres * 256, 0 = none"),
                "has_improved": tfds.features.Scalar(dtype=np.bool_),
                "focal_times_baseline": tfds.features.Scalar(dtype=np.float32),
                "name": tfds.features.Text(),
            }),
            homepage="https://www.cvlibs.net/datasets/kitti/",
            # keep the list's order (predictions are matched to it): TFDS keeps an order only with
            # DatasetInfo.disable_shuffling, sorting by key, so each frame's key is its list index
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        improved_root = self._improved_root or os.path.join(root, IMPROVED_DIR)
        gens = {}
        for split, path in self._lists.items():
            improved = self._improved_list if split == "test" else None
            frames = sources.kitti_frames(root, path, improved, improved_root if os.path.isdir(improved_root) else None)
            gens[split] = self._generate_examples(frames, split)
        return gens

    def _generate_examples(self, frames, split):
        for index, frame in enumerate(progress(frames, f"kitti_eigen {split}", every=100)):
            shape = imageio.read_rgb(frame.image).shape[:2]  # decoded: a corrupt image fails here, named
            gt = {v: kitti_gt.velodyne_depth(frame.calib_dir, frame.velodyne, shape, value=v)
                  for v in ("camera_z", "velodyne_x")}
            if frame.depth is not None:
                improved = imageio.read_png16(frame.depth)
                if improved.shape != shape:
                    raise DataFormatError(f"{frame.depth}: {improved.shape} does not match its image {shape}")
            else:
                improved = np.zeros(shape, np.uint16)
            yield index, {
                "image": frame.image,
                "depth_camera_z": gt["camera_z"],
                "depth_velodyne_x": gt["velodyne_x"],
                "depth_improved": improved[..., None],
                "has_improved": frame.depth is not None,
                "focal_times_baseline": np.float32(kitti_gt.focal_times_baseline(frame.calib_dir)),
                "name": frame.key,
            }
