"""Cityscapes validation images with depth from the published disparity and camera files."""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import depth_formats, imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder


class Builder(TransferBuilder):
    name = "cityscapes_depth"  # TFDS itself registers `cityscapes` (segmentation)
    SPLIT = "val"
    HOMEPAGE = "https://www.cityscapes-dataset.com/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download leftImg8bit_trainvaltest.zip, disparity_trainvaltest.zip and camera_trainvaltest.zip
    (https://www.cityscapes-dataset.com/downloads/, login required) and unzip them into the manual
    directory, giving
        <manual_dir>/leftImg8bit/val/<city>/<name>_leftImg8bit.png
        <manual_dir>/disparity/val/<city>/<name>_disparity.png
        <manual_dir>/camera/val/<city>/<name>_camera.json
    """

    def _depth_features(self):
        return {
            "depth": float_map_feature("metres = baseline * fx / ((p - 1) / 256) for disparity PNG value "
                                       "p > 1, else 0 (invalid)"),
            "baseline": tfds.features.Scalar(dtype=np.float32, doc="stereo baseline in metres (camera file)"),
            "fx": tfds.features.Scalar(dtype=np.float32, doc="focal length in pixels (camera file)"),
        }

    def _frames(self, manual_dir):
        return transfer_sources.cityscapes_frames(manual_dir, self.SPLIT)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        disparity = check_size(imageio.read_png16(frame.depth), frame.depth, rgb, frame.image, "disparity")
        baseline, fx = depth_formats.read_cityscapes_camera(frame.camera)
        return {"image": frame.image, "depth": depth_formats.cityscapes_depth(disparity, baseline, fx),
                "baseline": np.float32(baseline), "fx": np.float32(fx)}
