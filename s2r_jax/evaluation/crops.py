"""Evaluation crops (Garg, Eigen, KB + Garg, NYUv2 Eigen) as boxes and masks. NumPy only."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from s2r_jax.data.preprocessing import KB_HEIGHT, KB_WIDTH, image_window, kb_offsets
from s2r_jax.evaluation.protocols import CROPS

# Garg et al., ECCV 2016 crop, as fractions of (H, H, W, W): rows [top, bottom), cols [left, right).
GARG_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al., NIPS 2014 crop for KITTI, as used by monodepth / BTS / ZoeDepth ("eigen_crop").
EIGEN_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# NYUv2 Eigen crop, defined for 480x640 images only (BTS / AdaBins / ZoeDepth: eval_mask[45:471, 41:601]).
NYU_EIGEN_BOX = (45, 471, 41, 601)
NYU_EIGEN_SHAPE = (480, 640)

# Cityscapes (ManyDepth's evaluate_depth.py): the model sees the image without its bottom 25 %
# (the ego car; preprocessing.image_window): rows [0, round(0.75 H)); evaluation uses rows 256:
# and columns 192:1856 of that.
CITYSCAPES_BOX = (256, None, 192, 1856)
# Make3D C1 (T2Net / GASDA / monodepth evaluations): the image is centre-cropped to 2:1 and the
# 55-row laser grid to its 21 middle rows, int((55 - 21) / 2):int((55 + 21) / 2) = 17:38.
MAKE3D_GRID_ROWS, MAKE3D_CROP_ROWS = 55, 21

Box = Tuple[int, int, int, int]
# The image crop (data.preprocessing.image_window) a protocol's crop shows the model.
IMAGE_CROP = {"kb_garg": "kb", "cityscapes": "cityscapes", "make3d_c1": "make3d"}


def image_crop(protocol_crop: str) -> str:
    """What part of the image the model is shown under an evaluation crop (see `IMAGE_CROP`)."""
    return IMAGE_CROP.get(protocol_crop, "none")


def _shape2(shape: Sequence[int]) -> Tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"need an (H, W) shape, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])



def _fraction_box(h: int, w: int, fractions: Sequence[float]) -> Box:
    # Truncation toward zero, as `np.array([...]).astype(np.int32)` (official) and `int()` (ZoeDepth).
    f0, f1, f2, f3 = fractions
    return int(f0 * h), int(f1 * h), int(f2 * w), int(f3 * w)


def _clipped_box(h: int, w: int, top: int, bottom: Optional[int], left: int, right: Optional[int]) -> Box:
    """The box numpy slicing [top:bottom, left:right] selects in an (h, w) image."""
    rows, cols = range(h)[top:bottom], range(w)[left:right]
    return rows.start, max(rows.start, rows.stop), cols.start, max(cols.start, cols.stop)


def _make3d_rows(h: int) -> Tuple[int, int]:
    if h != MAKE3D_GRID_ROWS:
        raise ValueError(f"the Make3D C1 crop is defined on the {MAKE3D_GRID_ROWS}-row laser grid, got {h} rows")
    return int((h - MAKE3D_CROP_ROWS) / 2), int((h + MAKE3D_CROP_ROWS) / 2)


def input_window(shape: Sequence[int], crop: str) -> Box:
    """(top, bottom, left, right): the part of a ground-truth frame of `shape` that the
    prediction covers under `crop` -- what the model is shown.

    'kb_garg': the KB crop; 'cityscapes': rows [0, round(0.75 H)) (Python's round, as
    ManyDepth); 'make3d_c1': the grid rows 17:38 that match the image's 2:1 centre crop
    (`make3d_image_window` gives the image's rows); any other crop: the whole frame.
    """
    h, w = _shape2(shape)
    if crop in ("kb_garg", "cityscapes"):  # the same part of the ground truth as of the image
        return image_window((h, w), IMAGE_CROP[crop])
    if crop == "make3d_c1":
        return (*_make3d_rows(h), 0, w)
    return 0, h, 0, w


def make3d_image_window(shape: Sequence[int]) -> Box:
    """The 2:1 centre crop of a Make3D image (2272x1704 portrait: rows 710:1562), which the
    model is shown under 'make3d_c1': height = width / 2, as the C1 evaluations crop it."""
    return image_window(_shape2(shape), "make3d")


def crop_box(shape: Sequence[int], crop: str) -> Box:
    """(top, bottom, left, right) of the evaluation crop for an image of `shape`.

    Rows top:bottom and columns left:right (exclusive ends), in `shape`'s pixel
    coordinates. For 'kb_garg' the box is the Garg box of the KB-cropped
    352x1216 image, shifted back into the full image; 'cityscapes' and 'make3d_c1'
    likewise lie inside their `input_window`.
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
    if crop == "zoedepth_eigen":
        # ZoeDepth's compute_metrics: eval_mask[45:471, 41:601] = 1 whatever the size.
        return _clipped_box(h, w, *NYU_EIGEN_BOX)
    if crop == "cityscapes":
        _, kept, _, _ = input_window((h, w), crop)
        return _clipped_box(kept, w, *CITYSCAPES_BOX)
    if crop == "make3d_c1":
        return (*_make3d_rows(h), 0, w)
    raise ValueError(f"unknown crop {crop!r}; choose one of {CROPS}")


def crop_mask(shape: Sequence[int], crop: str) -> np.ndarray:
    """Boolean (H, W) mask, True inside `crop_box(shape, crop)`."""
    h, w = _shape2(shape)
    top, bottom, left, right = crop_box((h, w), crop)
    mask = np.zeros((h, w), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask
