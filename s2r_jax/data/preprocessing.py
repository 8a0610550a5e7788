"""Image preprocessing as the official code does it, in Pillow: the one path that training,
evaluation and prediction share (no tensorflow).

The official test reads `Image.open(path).convert('RGB')`, resizes it with
`transforms.Resize((H, W), Image.BICUBIC)` (Pillow's bicubic, which widens its kernel
when shrinking), then `ToTensor()` (x / 255) and `Normalize(0.5, 0.5)`. Doing exactly
that here, rather than tf.image's bicubic, is what makes evaluation reproduce the
official numbers end to end from the image files (tf.image's kernel differs from
Pillow's by up to ~7/255 per pixel).
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

# KB crop (KITTI benchmark / BTS / ZoeDepth `do_kb_crop`): the bottom-centred 352x1216 window.
KB_HEIGHT, KB_WIDTH = 352, 1216
# Cityscapes as ManyDepth evaluates it: the model sees the image without its bottom 25 % (the ego car).
CITYSCAPES_KEEP_FRACTION = 0.75
IMAGE_CROPS = ("none", "kb", "cityscapes", "make3d")


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded PNG/JPEG bytes -> uint8 (H, W, 3), as `Image.open(...).convert('RGB')`."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def resize_rgb(rgb: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (H, W, 3), `size` = (H, W), Pillow bicubic as the official Resize."""
    h, w = (int(s) for s in size)
    if rgb.shape[:2] == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))


def normalise(rgb: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 -> [-1, 1] as ToTensor + Normalize(0.5, 0.5): (x / 255 - 0.5) / 0.5, in `dtype`."""
    t = np.dtype(dtype).type
    x = rgb.astype(t)
    return (x / t(255) - t(0.5)) / t(0.5)


def kb_offsets(shape: Sequence[int]) -> tuple[int, int]:
    """(top, left) of the KB crop in an image of `shape` = (H, W, ...), as ZoeDepth computes them."""
    h, w = int(shape[0]), int(shape[1])
    if h < KB_HEIGHT or w < KB_WIDTH:
        raise ValueError(f"the KB crop needs an image of at least {KB_HEIGHT}x{KB_WIDTH}, got {h}x{w}")
    return h - KB_HEIGHT, (w - KB_WIDTH) // 2


def kb_crop(array: np.ndarray) -> np.ndarray:
    """The bottom-centred 352x1216 window of an image or depth map (H, W, ...)."""
    top, left = kb_offsets(array.shape)
    return array[top:top + KB_HEIGHT, left:left + KB_WIDTH]


def image_window(shape: Sequence[int], crop: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of an image of `shape` a protocol shows the model:
    'kb' the KB crop (ZoeDepth's KITTI protocol), 'cityscapes' the top 75 % (Python's round, as
    ManyDepth), 'make3d' the 2:1 centre crop (height = width / 2, as the Make3D C1 evaluations),
    'none' the whole image."""
    h, w = int(shape[0]), int(shape[1])
    if crop == "none":
        return 0, h, 0, w
    if crop == "kb":
        top, left = kb_offsets(shape)
        return top, top + KB_HEIGHT, left, left + KB_WIDTH
    if crop == "cityscapes":
        return 0, int(round(h * CITYSCAPES_KEEP_FRACTION)), 0, w
    if crop == "make3d":
        return int((h - w / 2) / 2), int((h + w / 2) / 2), 0, w
    raise ValueError(f"unknown image crop {crop!r}; choose one of {IMAGE_CROPS}")


def model_input(rgb: np.ndarray, size: Sequence[int], dtype=np.float32, crop: str = "none") -> np.ndarray:
    """What an S2R-DepthNet takes, from a uint8 image of any size: the part of it a protocol
    shows the model (`image_window`), resized to `size` (H, W), in [-1, 1]."""
    top, bottom, left, right = image_window(rgb.shape, crop)
    return normalise(resize_rgb(rgb[top:bottom, left:right], size), dtype)
