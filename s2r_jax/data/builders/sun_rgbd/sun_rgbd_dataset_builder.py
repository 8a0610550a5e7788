"""SUN RGB-D, the 5050 test images, in the release's own layout and depth encoding."""
from __future__ import annotations

from s2r_jax.data import depth_formats, imageio, sources, transfer_sources
from s2r_jax.data.builders.common import check_size, depth_image_feature
from s2r_jax.data.builders.transfer import TransferBuilder


class Builder(TransferBuilder):
    name = "sun_rgbd"
    IMAGE_FORMAT = "jpeg"
    HOMEPAGE = "https://rgbd.cs.princeton.edu/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download SUNRGBD.zip (https://rgbd.cs.princeton.edu/data/SUNRGBD.zip) and unzip it into the
    manual directory, giving
        <manual_dir>/SUNRGBD/<sensor>/<...>/<sequence>/image/<name>.jpg
        <manual_dir>/SUNRGBD/<sensor>/<...>/<sequence>/depth/<name>.png
    The 5050 test images are those of s2r_jax/data/splits/sunrgbd/test.txt (the official split,
    as listed in github.com/ankurhanda/sunrgbd-meta-data).
    """

    def __init__(self, *, test_list: str | None = None, **kwargs):
        self._test_list = test_list or sources.packaged_split("sunrgbd", "test.txt")
        super().__init__(**kwargs)

    def _depth_features(self):
        return {"depth": depth_image_feature("sensor depth in millimetres (the release's 3-bit rotation undone), "
                                             "0 = no measurement")}

    def _frames(self, manual_dir):
        return transfer_sources.sunrgbd_frames(manual_dir, self._test_list)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        depth = check_size(depth_formats.read_sunrgbd_depth(frame.depth), frame.depth, rgb, frame.image)
        return {"image": frame.image, "depth": depth[..., None]}
