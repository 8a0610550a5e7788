"""Evaluation crops (Garg, Eigen, KB + Garg, NYUv2 Eigen) as boxes and masks. NumPy only."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from s2r_jax.data.preprocessing import KB_HEIGHT, KB_WIDTH, kb_offsets
from s2r_jax.evaluation.protocols import CROPS

# Garg et al., ECCV 2016 crop, as fractions of (H, H, W, W): rows [top, bottom), cols [left, right).
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al., NIPS 2014 crop for KITTI, as used by monodepth / BTS / ZoeDepth ("eigen_crop").
EIGEN_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# NYUv2 Eigen crop, defined for 480x640 images only (BTS / AdaBins / ZoeDepth: eval_mask[45:471, 41:601]).
NYU_EIGEN_BOX = (45, 471, 41, 601)
NYU_EIGEN_SHAPE = (480, 640)

Box = Tuple[int, int, int, int]


def _shape2(shape: Sequence[int]) -> Tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"need an (H, W) shape, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])



def _fraction_box(h: int, w: int, fractions: Sequence[float]) -> Box:
    # Truncation toward zero, as `np.array([...]).astype(np.int32)` (official) and `int()` (ZoeDepth).
    f0, f1, f2, f3 = fractions
    return int(f0 * h), int(f1 * h), int(f2 * w), int(f3 * w)


def crop_box(shape: Sequence[int], crop: str) -> Box:
    """(top, bottom, left, right) of the evaluation crop for an image of `shape`.

    Rows top:bottom and columns left:right (exclusive ends), in `shape`'s pixel
    coordinates. For 'kb_garg' the box is the Garg box of the KB-cropped
    352x1216 image, shifted back into the full image.
    """
    h, w = _shape2(shape)
    if crop == "none":
        return 0, h, 0, w
    if crop == "garg":
        return _fraction_box(h, w, GARG_FRACTIONS)
    if crop == "eigen":
        return _fraction_box(h, w, EIGEN_FRACTIONS)
    if crop == "kb_garg":
        top, left = kb_offsets((h, w))
        t, b, l, r = _fraction_box(KB_HEIGHT, KB_WIDTH, GARG_FRACTIONS)
        return top + t, top + b, left + l, left + r
    if crop == "nyu_eigen":
        if (h, w) != NYU_EIGEN_SHAPE:
            raise ValueError(f"the NYUv2 Eigen crop is defined for {NYU_EIGEN_SHAPE[0]}x{NYU_EIGEN_SHAPE[1]} "
                             f"images, got {h}x{w}")
        return NYU_EIGEN_BOX
    raise ValueError(f"unknown crop {crop!r}; choose one of {CROPS}")


def crop_mask(shape: Sequence[int], crop: str) -> np.ndarray:
    """Boolean (H, W) mask, True inside `crop_box(shape, crop)`."""
    h, w = _shape2(shape)
    top, bottom, left, right = crop_box((h, w), crop)
    mask = np.zeros((h, w), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask
