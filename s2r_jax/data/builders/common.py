"""What every builder does to a frame before TFDS stores it."""
from __future__ import annotations

import numpy as np

from s2r_jax.data import imageio
from s2r_jax.data.lists import DataFormatError
from s2r_jax.data.sources import Frame


def checked_pair(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Decode the frame's image and 16-bit depth fully (so a corrupt file fails the
    build, naming it) and check that their sizes agree."""
    rgb = imageio.read_rgb(frame.image)
    depth = imageio.read_png16(frame.depth)
    if rgb.shape[:2] != depth.shape:
        raise DataFormatError(f"{frame.depth}: depth is {depth.shape[0]}x{depth.shape[1]} but its image "
                              f"{frame.image} is {rgb.shape[0]}x{rgb.shape[1]}")
    return rgb, depth


def progress(frames, name: str, every: int = 500):
    """Yield frames, printing how far the build is (builds take minutes on real data)."""
    n = len(frames)
    for i, frame in enumerate(frames, 1):
        yield frame
        if i % every == 0 or i == n:
            print(f"{name}: {i}/{n} frames", flush=True)


def check_size(array: np.ndarray, path: str, rgb: np.ndarray, image_path: str, what: str = "depth") -> np.ndarray:
    """`array` (a depth map or mask read from `path`) must have its image's size."""
    if array.shape[:2] != rgb.shape[:2]:
        raise DataFormatError(f"{path}: {what} is {array.shape[0]}x{array.shape[1]} but its image {image_path} "
                              f"is {rgb.shape[0]}x{rgb.shape[1]}")
    return array


def depth_image_feature(doc: str):
    """A uint16 depth map stored as 16-bit PNG (lossless; the unit in `doc`)."""
    import tensorflow_datasets as tfds
    return tfds.features.Image(shape=(None, None, 1), dtype=np.uint16, encoding_format="png", doc=doc)


def float_map_feature(doc: str, dtype=np.float32):
    """A float32 (or bool) map stored zlib-compressed, for depth that is not a PNG at the source."""
    import tensorflow_datasets as tfds
    return tfds.features.Tensor(shape=(None, None), dtype=dtype, encoding="zlib", doc=doc)
