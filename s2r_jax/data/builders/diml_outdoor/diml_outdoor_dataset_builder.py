"""DIML/CVL outdoor test set: left images with 16-bit depth PNGs in millimetres."""
from __future__ import annotations

from s2r_jax.data import imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, depth_image_feature
from s2r_jax.data.builders.transfer import TransferBuilder


class Builder(TransferBuilder):
    name = "diml_outdoor"
    HOMEPAGE = "https://dimlrgbd.github.io/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the DIML/CVL RGB-D outdoor test data (https://dimlrgbd.github.io/) and unpack it into
    the manual directory, giving
        <manual_dir>/<scene>/outleft/<name>.png     left images
        <manual_dir>/<scene>/depthmap/<name>.png    16-bit depth, millimetres
    """

    def _depth_features(self):
        return {"depth": depth_image_feature("depth in millimetres (as published), 0 = none")}

    def _frames(self, manual_dir):
        return transfer_sources.diml_outdoor_frames(manual_dir)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        check_size(imageio.read_png16(frame.depth), frame.depth, rgb, frame.image)
        return {"image": frame.image, "depth": frame.depth}
