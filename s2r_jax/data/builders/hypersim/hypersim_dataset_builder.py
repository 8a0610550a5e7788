"""HyperSim test partition: tonemapped JPEGs with planar depth from the distance HDF5 files."""
from __future__ import annotations

from s2r_jax.data import depth_formats, imageio, sources, transfer_sources
from s2r_jax.data.builders.common import check_size, float_map_feature
from s2r_jax.data.builders.transfer import TransferBuilder


class Builder(TransferBuilder):
    name = "hypersim"
    IMAGE_FORMAT = "jpeg"
    HOMEPAGE = "https://github.com/apple/ml-hypersim"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the scenes of the test partition (s2r_jax/data/splits/hypersim/test.csv, the rows of
    the official evermotion_dataset/analysis/metadata_images_split_scene_v1.csv with
    split_partition_name == test) with the ml-hypersim download scripts, at least
        <manual_dir>/ai_VVV_NNN/images/scene_cam_XX_final_preview/frame.IIII.tonemap.jpg
        <manual_dir>/ai_VVV_NNN/images/scene_cam_XX_geometry_hdf5/frame.IIII.depth_meters.hdf5
    """

    def __init__(self, *, test_list: str | None = None, **kwargs):
        """`test_list`: a split CSV in the official format (its `test` rows are built)."""
        self._test_list = test_list or sources.packaged_split("hypersim", "test.csv")
        super().__init__(**kwargs)

    def _depth_features(self):
        return {"depth": float_map_feature("planar depth in metres (from the distance-to-camera files, as "
                                           "ZoeDepth converts them), 0 = no geometry")}

    def _frames(self, manual_dir):
        return transfer_sources.hypersim_frames(manual_dir, self._test_list)

    def _example(self, frame):
        rgb = imageio.read_rgb(frame.image)
        depth = check_size(depth_formats.read_hypersim_depth(frame.depth), frame.depth, rgb, frame.image)
        return {"image": frame.image, "depth": depth}
