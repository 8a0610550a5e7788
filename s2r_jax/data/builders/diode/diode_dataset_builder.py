"""DIODE validation set, indoor and outdoor, depth and validity mask as published (.npy)."""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import depth_formats, imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder


@dataclasses.dataclass
class DiodeConfig(tfds.core.BuilderConfig):
    domain: str = "indoor"


class Builder(TransferBuilder):
    name = "diode"
    SPLIT = "val"
    HOMEPAGE = "https://diode-dataset.org/"
    BUILDER_CONFIGS = [
        DiodeConfig(name="indoor", description="DIODE val, indoor scans (val/indoors).", domain="indoor"),
        DiodeConfig(name="outdoor", description="DIODE val, outdoor scans (val/outdoor).", domain="outdoor"),
    ]
    DEFAULT_CONFIG_NAME = "indoor"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download val.tar.gz (http://diode-dataset.s3.amazonaws.com/val.tar.gz) and unpack it into the
    manual directory, giving
        <manual_dir>/val/{indoors,outdoor}/scene_*/scan_*/<name>.png
        <manual_dir>/val/{indoors,outdoor}/scene_*/scan_*/<name>_depth.npy
        <manual_dir>/val/{indoors,outdoor}/scene_*/scan_*/<name>_depth_mask.npy
    (the val/ level may be left out).
    """

    def _depth_features(self):
        return {
            "depth": float_map_feature("depth in metres (as published, float32), 0 = no return"),
            "valid": float_map_feature("the release's validity mask (1 = valid sensor return)", dtype=np.bool_),
        }

    def _frames(self, manual_dir):
        return transfer_sources.diode_frames(manual_dir, self.builder_config.domain, self.SPLIT)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        depth = check_size(depth_formats.read_npy_depth(frame.depth), frame.depth, rgb, frame.image)
        valid = check_size(depth_formats.read_npy_mask(frame.masks[0]), frame.masks[0], rgb, frame.image, "mask")
        return {"image": frame.image, "depth": depth, "valid": valid}
