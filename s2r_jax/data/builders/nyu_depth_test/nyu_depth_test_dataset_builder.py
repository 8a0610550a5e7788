"""NYU Depth v2, the 654 test frames of Eigen et al., as JPEG + 16-bit PNG (mm)."""
from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import sources
from s2r_jax.data.builders.common import checked_pair, progress


class Builder(tfds.core.GeneratorBasedBuilder):
    name = "nyu_depth_test"
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "Frames stored in the list's order (1.0.0 stored them in TFDS's hashed order)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    The 654 NYU Depth v2 test frames as colour JPEG and 16-bit depth PNG in millimetres, e.g.
    as extracted from nyu_depth_v2_labeled.mat by the BTS/monodepth test scripts:
        <manual_dir>/<scene>/rgb_%05d.jpg
        <manual_dir>/<scene>/sync_depth_%05d.png
    matching s2r_jax/data/splits/nyu/test.txt.
    """

    def __init__(self, *, test_list: str | None = None, **kwargs):
        self._test_list = test_list or sources.packaged_split("nyu", "test.txt")
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "depth": tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format="png",
                                             doc="depth in millimetres, 0 = invalid"),
                "focal": tfds.features.Scalar(dtype=np.float32),
                "name": tfds.features.Text(),
            }),
            supervised_keys=("image", "depth"),
            homepage="https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html",
            # keep the list's order (predictions are matched to it): TFDS keeps an order only with
            # DatasetInfo.disable_shuffling, sorting by key, so each frame's key is its list index
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        frames = sources.nyu_frames(os.fspath(dl_manager.manual_dir), self._test_list)
        return {"test": self._generate_examples(frames)}

    def _generate_examples(self, frames):
        for index, frame in enumerate(progress(frames, "nyu_depth_test", every=100)):
            checked_pair(frame)
            yield index, {"image": frame.image, "depth": frame.depth, "focal": np.float32(frame.focal or 0.0),
                              "name": frame.key}
