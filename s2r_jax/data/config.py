"""The data part of a config (`config.data`), importable without tensorflow."""
from __future__ import annotations

import ml_collections

# Per dataset: the depth feature, its unit in metres, whether it is sparse (holes = 0),
# and the default cap. Sparse ground truth is resized with nearest neighbour so
# values are never interpolated across holes.
DEPTH_FEATURES = {
    "virtual_kitti": ("depth", 0.01, False, 80.0),
    "kitti_eigen": ("depth_camera_z", 1.0, True, 80.0),
    "nyu_depth_test": ("depth", 0.001, False, 10.0),
}


def data_config(**overrides) -> ml_collections.ConfigDict:
    """Defaults of the official training: vKITTI 1.3.1 at 192x640, batch 32, the
    official augmentations (flip p=0.5; rotation within +-5 deg p=0.5; brightness,
    contrast, saturation in [0.8, 1.0] p=0.5)."""
    c = ml_collections.ConfigDict()
    c.dataset = "virtual_kitti"
    c.tfds_config = "1.3.1"        # builder config ('' for builders without configs)
    c.data_dir = ""                # TFDS data_dir ('' = TFDS's default)
    c.split = "train"
    c.num_examples = 0             # > 0: use only the first N examples (e.g. 1000 labelled KITTI frames)
    c.image_size = (192, 640)
    c.batch_size = 32              # global, over all hosts
    c.seed = 0
    c.shuffle_buffer = 1024
    c.max_depth = 80.0             # depth is clipped here and mapped to [-1, 1]
    c.prefetch = 2                 # batches tf.data prepares ahead
    c.augment = ml_collections.ConfigDict(dict(
        flip_prob=0.5, rotate_prob=0.5, max_rotation_deg=5.0,
        color_prob=0.5, color_low=0.8, color_high=1.0))
    c.update(overrides)
    return c
