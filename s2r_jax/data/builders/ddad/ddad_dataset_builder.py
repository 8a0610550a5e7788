"""DDAD validation frames in ZoeDepth's preprocessed layout (`*_rgb.png` + `*_depth.npy`)."""
from __future__ import annotations

from s2r_jax.data import depth_formats, imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder


class Builder(TransferBuilder):
    name = "ddad"
    SPLIT = "val"
    HOMEPAGE = "https://github.com/TRI-ML/DDAD"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    DDAD validation frames in the layout ZoeDepth's ddad.py reads (TRI publishes DDAD in its DGP
    format, from which these files are exported; see this builder's README):
        <manual_dir>/<name>_rgb.png      the camera image
        <manual_dir>/<name>_depth.npy    projected LiDAR depth in metres, same size, 0 = no point
    """

    def _depth_features(self):
        return {"depth": float_map_feature("LiDAR depth in metres (as in the .npy), 0 = no point")}

    def _frames(self, manual_dir):
        return transfer_sources.ddad_frames(manual_dir)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        depth = check_size(depth_formats.read_npy_depth(frame.depth), frame.depth, rgb, frame.image)
        return {"image": frame.image, "depth": depth}
