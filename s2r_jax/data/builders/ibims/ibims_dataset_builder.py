"""iBims-1 (core, 100 images): depth PNG as published, with its validity masks combined."""
from __future__ import annotations

import numpy as np

from s2r_jax.data import depth_formats, imageio, transfer_sources
from s2r_jax.data.builders.common import check_size, depth_image_feature, float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder

# The depth PNGs map 0..65535 linearly onto 0..50 m (ZoeDepth's ibims.py: value * 50 / 65535).
METRES_PER_UNIT = 50.0 / 65535.0


class Builder(TransferBuilder):
    name = "ibims"
    HOMEPAGE = "https://www.asg.ed.tum.de/lmf/ibims1/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download ibims1_core_raw.zip from the iBims-1 page (https://www.asg.ed.tum.de/lmf/ibims1/)
    and unzip it into the manual directory, giving (directly or under ibims1_core_raw/)
        <manual_dir>/imagelist.txt
        <manual_dir>/{rgb,depth,mask_invalid,mask_transp}/<name>.png
    """

    def _depth_features(self):
        return {
            "depth": depth_image_feature("depth, metres = value * 50 / 65535 (as published), 0 = none"),
            "valid": float_map_feature("mask_invalid != 0 and mask_transp != 0: ZoeDepth's valid pixels "
                                       "(measured, not transparent)", dtype=np.bool_),
        }

    def _frames(self, manual_dir):
        return transfer_sources.ibims_frames(manual_dir)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        check_size(imageio.read_png16(frame.depth), frame.depth, rgb, frame.image)
        invalid, transp = (check_size(depth_formats.read_binary_png(m), m, rgb, frame.image, "mask")
                           for m in frame.masks)
        return {"image": frame.image, "depth": frame.depth, "valid": invalid & transp}
