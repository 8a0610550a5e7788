"""Defaults of `eval.py` configs (configs/eval_*.py start from here)."""
from __future__ import annotations

import ml_collections

from s2r_jax.data.config import data_config


def eval_config(**data_overrides) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.checkpoint = ""       # a training workdir or a converted official checkpoint...
    c.predictions = ""      # ...or an .npz of depth maps in metres made by any model, in split order
    c.gt_file = ""          # ground truth from `python -m s2r_jax.data.kitti_gt` instead of the dataset's
    c.data = data_config(split="test", **data_overrides)
    c.gt = ""               # kitti_eigen: camera_z (official S2R) | velodyne_x (monodepth2) | improved; else depth
    c.protocol = "s2r_official"
    # Overrides of the protocol preset (empty / 0 / None = the preset's value):
    c.crop = ""             # garg | eigen | kb_garg | none
    c.min_depth = 0.0
    c.max_depth_eval = 0.0  # e.g. 50 for the 1e-3..50 m range
    c.median_scaling = ""   # official | monodepth2 | none
    c.flip_tta = ml_collections.FieldReference(None, field_type=bool)  # None: the protocol's choice
    # The model's input size and range: () / 0 = what the checkpoint records (a converted
    # official checkpoint records nothing: 192x640 and 80 m, the KITTI model's).
    c.image_size = ()       # (H, W); the official NYU model runs at (192, 256)
    c.max_depth = 0.0       # metres = (x + 1) / 2 * max_depth; 8 for the official NYU model
    c.batch_size = 8
    c.save_predictions = False
    return c
