"""DrivingStereo: the test set, or one of the four weather sets, with depth PNGs (m * 256)."""
from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from s2r_jax.data import imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, depth_image_feature
from s2r_jax.data.builders.transfer import TransferBuilder


@dataclasses.dataclass
class DrivingStereoConfig(tfds.core.BuilderConfig):
    subset: str = "test"


class Builder(TransferBuilder):
    name = "driving_stereo"
    IMAGE_FORMAT = "jpeg"
    HOMEPAGE = "https://drivingstereo-dataset.github.io/"
    BUILDER_CONFIGS = [
        DrivingStereoConfig(name="test", description="The test set (test-left-image, test-depth-map).",
                            subset="test"),
        *(DrivingStereoConfig(name=w, description=f"The {w}-weather set (left-image-full-size, "
                              "depth-map-full-size).", subset=w) for w in ("sunny", "cloudy", "foggy", "rainy")),
    ]
    DEFAULT_CONFIG_NAME = "test"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    From https://drivingstereo-dataset.github.io/ download and unzip, for the test set,
        <manual_dir>/test-left-image/.../<name>.jpg and <manual_dir>/test-depth-map/.../<name>.png
    or, for a weather set (sunny, cloudy, foggy, rainy),
        <manual_dir>/<weather>/left-image-full-size/<name>.jpg
        <manual_dir>/<weather>/depth-map-full-size/<name>.png
    Depth PNGs are 16-bit, metres * 256, 0 = none.
    """

    def _depth_features(self):
        return {"depth": depth_image_feature("depth, metres * 256 (as published), 0 = none")}

    def _frames(self, manual_dir):
        return transfer_sources.driving_stereo_frames(manual_dir, self.builder_config.subset)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        check_size(imageio.read_png16(frame.depth), frame.depth, rgb, frame.image)
        return {"image": frame.image, "depth": frame.depth}
