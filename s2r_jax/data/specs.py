"""What each dataset's depth is: the one spec that training, evaluation and prediction read.

A dataset can carry several ground truths (KITTI: velodyne camera z, velodyne forward
distance, the improved maps); each says which TFDS feature holds it, its unit, whether
it is sparse (holes are 0 and are never interpolated) and how it is stored. The
dataset's `depth_range_m` is the range a model trained on it covers: ground truth is
clipped to [0, depth_range_m] and mapped to [-1, 1], so a tanh output of +1 stands for
that many metres. No tensorflow here.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    feature: str          # the TFDS feature
    unit_m: float         # metres per stored unit (vKITTI PNG: cm; NYU PNG: mm; KITTI improved: 1/256 m)
    sparse: bool          # holes = 0: resized and rotated with nearest neighbour, masked in losses
    png16: bool           # stored as an encoded 16-bit PNG (else a float32 tensor in metres)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    ground_truths: Mapping[str, GroundTruth]  # the first is the default (and what training reads)
    depth_range_m: float                       # ground truth clipped here and mapped to [-1, 1]

    def ground_truth(self, name: str = "") -> GroundTruth:
        """The named ground truth ('' = the default), or a ValueError naming the choices."""
        if not name:
            return next(iter(self.ground_truths.values()))
        if name not in self.ground_truths:
            raise ValueError(f"{self.name} has no ground truth {name!r}; choose one of {sorted(self.ground_truths)}")
        return self.ground_truths[name]

    def default_ground_truth(self) -> str:
        return next(iter(self.ground_truths))


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("virtual_kitti", {"depth": GroundTruth("depth", 0.01, sparse=False, png16=True)}, 80.0),
    DatasetSpec("kitti_eigen", {
        "camera_z": GroundTruth("depth_camera_z", 1.0, sparse=True, png16=False),      # official S2R test
        "velodyne_x": GroundTruth("depth_velodyne_x", 1.0, sparse=True, png16=False),  # monodepth2's export
        "improved": GroundTruth("depth_improved", 1.0 / 256.0, sparse=True, png16=True),  # 652 frames
    }, 80.0),
    DatasetSpec("nyu_depth_test", {"depth": GroundTruth("depth", 0.001, sparse=False, png16=True)}, 10.0),
)}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"no depth convention for dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]

