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
