"""The base of the zero-shot transfer builders (SUN RGB-D, iBims-1, DIODE, ...).

Each dataset's builder says which features it stores, how to list its frames
(`s2r_jax.data.transfer_sources`) and how to decode one frame; this class does the rest
the same way for all: one split, stored in the lister's order (predictions are matched to
it; TFDS keeps an order only when `DatasetInfo.disable_shuffling` is set, and then sorts
by key, so the key is the frame's index: a `disable_shuffling` class attribute alone is
ignored by TFDS 4.9); every file decoded once while building, so that a corrupt one stops
the build naming it; progress printed; TFDS's write-then-rename, so a failed build leaves
nothing that reads as a dataset.
"""
from __future__ import annotations

import abc
import os

import tensorflow_datasets as tfds

from s2r_jax.data.builders.common import progress
from s2r_jax.data.transfer_sources import Frame


class TransferBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SPLIT = "test"            # the split's name: the partition of the source it holds
    IMAGE_FORMAT = "png"      # the source images' format: stored as their original bytes
    HOMEPAGE = ""

    @abc.abstractmethod
    def _depth_features(self) -> dict:
        """The features besides `image` and `name`: depth (in a stated unit), masks, ..."""

    @abc.abstractmethod
    def _frames(self, manual_dir: str) -> list[Frame]:
        """The split's frames, in their fixed order."""

    @abc.abstractmethod
    def _example(self, frame: Frame) -> dict:
        """Decode the frame's files (raising, naming a bad one) and return its features
        other than `name` (the image may be given as its path: stored as its bytes)."""

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format=self.IMAGE_FORMAT),
                **self._depth_features(),
                "name": tfds.features.Text(doc="the image's path relative to the dataset root"),
            }),
            homepage=self.HOMEPAGE,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        frames = self._frames(os.fspath(dl_manager.manual_dir))
        return {self.SPLIT: self._generate_examples(frames)}

    def _generate_examples(self, frames):
        label = self.name + (f"/{self.builder_config.name}" if self.builder_config else "")
        for index, frame in enumerate(progress(frames, f"{label} {self.SPLIT}", every=100)):
            yield index, {**self._example(frame), "name": frame.key}
