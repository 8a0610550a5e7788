"""Image files as NumPy arrays, with errors that name the file (Pillow, no tensorflow)."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from s2r_jax.data.lists import DataFormatError


def _open(path: str | os.PathLike) -> Image.Image:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataFormatError(f"{path}: not a readable image ({e})") from e
    return img


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit colour image (PNG or JPEG) as uint8 (H, W, 3)."""
    img = _open(path)
    if img.mode not in ("RGB", "RGBA", "L", "P"):
        raise DataFormatError(f"{os.fspath(path)}: expected an 8-bit colour image, got mode {img.mode}")
    return np.asarray(img.convert("RGB"))


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """A 16-bit single-channel PNG (depth maps of vKITTI, KITTI, NYUv2) as uint16 (H, W).

    An 8-bit PNG is refused: it would silently lose the depth's precision.
    """
    img = _open(path)
    if img.format != "PNG" or img.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataFormatError(f"{os.fspath(path)}: expected a 16-bit single-channel PNG, "
                              f"got {img.format} mode {img.mode}")
    arr = np.asarray(img)
    if arr.dtype != np.uint16:
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise DataFormatError(f"{os.fspath(path)}: values outside the 16-bit range")
        arr = arr.astype(np.uint16)
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataFormatError(f"{path}: not a readable image ({e})") from e
    return h, w


def write_png16(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint16 (H, W) as a 16-bit greyscale PNG."""
    arr = np.ascontiguousarray(array, dtype=np.uint16)
    Image.fromarray(arr).save(os.fspath(path))


def write_rgb(path: str | os.PathLike, array: np.ndarray, quality: int = 95) -> None:
    """Write uint8 (H, W, 3) as PNG or JPEG, by the file's extension."""
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB").save(os.fspath(path), quality=quality)
