"""Virtual KITTI 1.3.1 (the paper's training data) and Virtual KITTI 2.

Images as downloaded (PNG for 1.3.1, JPEG for 2) and depth as its 16-bit PNG in
centimetres (z-depth, sky = 65535), so nothing is re-encoded or lost.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import sources
from s2r_jax.data.builders.common import checked_pair, progress


@dataclasses.dataclass
class VirtualKittiConfig(tfds.core.BuilderConfig):
    image_format: str = "png"


class Builder(tfds.core.GeneratorBasedBuilder):
    name = "virtual_kitti"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        VirtualKittiConfig(name="1.3.1", description="Virtual KITTI 1.3.1 with the official S2R-DepthNet "
                           "train (20,760) and test (500) lists.", image_format="png"),
        VirtualKittiConfig(name="2", description="Virtual KITTI 2.0.3, both cameras, every frame in one "
                           "'train' split unless split lists are given.", image_format="jpeg"),
    ]
    DEFAULT_CONFIG_NAME = "1.3.1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download from https://europe.naverlabs.com/research/computer-vision/proxy-virtual-worlds/
    and unpack into the manual directory.
    1.3.1: the RGB and depth archives, giving either
        <manual_dir>/vkitti_1.3.1_rgb/<world>/<variation>/%05d.png and
        <manual_dir>/vkitti_1.3.1_depthgt/<world>/<variation>/%05d.png
      or the same trees renamed rgb/ and depth/ (the official list's prefixes).
    2: vkitti_2.0.3_rgb.tar and vkitti_2.0.3_depth.tar, giving
        <manual_dir>/vkitti_2.0.3_rgb/SceneXX/<variation>/frames/rgb/Camera_{0,1}/rgb_%05d.jpg
        <manual_dir>/vkitti_2.0.3_depth/SceneXX/<variation>/frames/depth/Camera_{0,1}/depth_%05d.png
    """

    def __init__(self, *, split_files: dict[str, str] | None = None, **kwargs):
        """`split_files` ({split: list path}) replaces the packaged split lists, e.g. for
        procedurally generated data written in the same layout."""
        self._split_files = dict(split_files or {})
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format=self.builder_config.image_format),
                "depth": tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format="png",
                                             doc="z-depth in centimetres; sky = 65535"),
                "name": tfds.features.Text(doc="the frame's path as in the split list"),
            }),
            supervised_keys=("image", "depth"),
            homepage="https://europe.naverlabs.com/research/computer-vision/proxy-virtual-worlds/",
        )

    def _split_lists(self) -> dict[str, str | None]:
        if self._split_files:
            return self._split_files
        if self.builder_config.name == "1.3.1":
            return {s: sources.packaged_split("vkitti", f"{s}.txt") for s in ("train", "test")}
        return {"train": None}

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        gens = {}
        for split, path in self._split_lists().items():
            if self.builder_config.name == "1.3.1":
                if path is None:
                    raise ValueError(f"Virtual KITTI 1.3.1 split {split!r} needs a split list")
                frames = sources.vkitti1_frames(root, path)
            else:
                frames = sources.vkitti2_frames(root, path)
            gens[split] = self._generate_examples(frames, split)
        return gens

    def _generate_examples(self, frames, split):
        for frame in progress(frames, f"virtual_kitti/{self.builder_config.name} {split}"):
            checked_pair(frame)
            yield frame.key, {"image": frame.image, "depth": frame.depth, "name": frame.key}
