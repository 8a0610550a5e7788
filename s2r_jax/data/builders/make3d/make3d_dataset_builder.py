"""Make3D Test134: the 134 test images with their 55x305 laser depth grids."""
from __future__ import annotations

from s2r_jax.data import depth_formats, imageio, transfer_sources
from s2r_jax.data.builders.common import float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder
from s2r_jax.data.lists import DataFormatError

GRID_SHAPE = (55, 305)  # every Make3D laser grid; the C1 protocol's crop is defined on it


class Builder(TransferBuilder):
    name = "make3d"
    IMAGE_FORMAT = "jpeg"
    HOMEPAGE = "http://make3d.cs.cornell.edu/data.html"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download Test134.tar.gz (images) and Test134Depth.tar.gz (laser depth) from
    http://make3d.cs.cornell.edu/data.html and unpack both into the manual directory, giving
        <manual_dir>/Test134/img-<name>.jpg
        <manual_dir>/Gridlaserdata/depth_sph_corr-<name>.mat
    """

    def _depth_features(self):
        return {"depth": float_map_feature("laser depth grid in metres, Position3DGrid[:, :, 3] (55x305; not "
                                           "pixel-aligned with the image: the protocol maps it)")}

    def _frames(self, manual_dir):
        return transfer_sources.make3d_frames(manual_dir)

    def _example(self, frame):
        imageio.read_rgb(frame.image)
        depth = depth_formats.read_make3d_depth(frame.depth)
        if depth.shape != GRID_SHAPE:
            raise DataFormatError(f"{frame.depth}: expected a {GRID_SHAPE[0]}x{GRID_SHAPE[1]} laser grid, "
                                  f"got {depth.shape[0]}x{depth.shape[1]}")
        return {"image": frame.image, "depth": depth}
