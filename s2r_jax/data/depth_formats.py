"""Depth, mask and camera files of the transfer datasets, as their owners publish them.

Each reader decodes one file completely (so a corrupt or mis-shaped file fails here,
named) and returns NumPy arrays: depth in the unit the docstring states, masks as bool.
No tensorflow: the TFDS builders call these, and so can anyone holding the files.
"""
from __future__ import annotations

import json
import os

import numpy as np

from s2r_jax.data import imageio
from s2r_jax.data.lists import DataFormatError

# HyperSim renders every image at 1024x768 with a 60 degree horizontal field of view:
# fx = 512 / tan(30 deg) = 886.81 px (the constant of ZoeDepth's hypersim.py and of the
# HyperSim authors' distance-to-depth recipe).
HYPERSIM_SHAPE = (768, 1024)
HYPERSIM_FOCAL = 886.81
# Make3D laser grids: Position3DGrid is 55 x 305 x 4; channel 3 is the depth in metres.
MAKE3D_GRID_KEY, MAKE3D_DEPTH_CHANNEL = "Position3DGrid", 3


def _exists(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _as_map(array: np.ndarray, path: str, what: str) -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W); anything else is a format error naming the file."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise DataFormatError(f"{path}: expected a 2-D {what}, got shape {np.shape(array)}")
    return a


# ----------------------------------------------------------------------------- PNG depth


def read_sunrgbd_depth(path: str | os.PathLike) -> np.ndarray:
    """SUN RGB-D depth PNG -> uint16 millimetres (0 = no measurement).

    The files store each 16-bit value rotated left by 3 bits; the official toolbox
    (SUNRGBDtoolbox/readData/read3dPoints.m) undoes it with
    `bitor(bitshift(d, -3), bitshift(d, 16 - 3))` before dividing by 1000. So do we.
    """
    raw = imageio.read_png16(path)
    return (raw >> 3) | (raw << 13)  # uint16 arithmetic: the high bits wrap away, as in MATLAB


def read_binary_png(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit (or 1-bit) mask PNG as bool: True where the pixel is non-zero."""
    path = _exists(path)
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("1", "L", "P", "I", "I;16"):
                raise DataFormatError(f"{path}: expected a single-channel mask PNG, got mode {img.mode}")
            return np.asarray(img) != 0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(f"{path}: not a readable image ({e})") from e


# ----------------------------------------------------------------------------- arrays


def read_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """A .npy file as a 2-D array ((H, W, 1) squeezed); refuses pickles."""
    path = _exists(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataFormatError(f"{path}: not a readable .npy {what} ({e})") from e
    return _as_map(array, path, what)


def read_npy_depth(path: str | os.PathLike) -> np.ndarray:
    """Depth in metres stored as .npy (DIODE `*_depth.npy`, ZoeDepth's DDAD `*_depth.npy`)
    -> float32 (H, W); 0 = no measurement. NaN or negative values are refused."""
    depth = read_npy(path, "depth map")
    if not np.issubdtype(depth.dtype, np.floating):
        raise DataFormatError(f"{os.fspath(path)}: expected floating-point depth in metres, got {depth.dtype}")
    depth = depth.astype(np.float32)
    if not np.all(np.isfinite(depth)) or (depth < 0).any():
        raise DataFormatError(f"{os.fspath(path)}: depth has NaN, infinite or negative values")
    return depth


def read_npy_mask(path: str | os.PathLike) -> np.ndarray:
    """A validity mask stored as .npy (DIODE `*_depth_mask.npy`: 1 = valid return) -> bool (H, W)."""
    mask = read_npy(path, "validity mask")
    if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_):
        raise DataFormatError(f"{os.fspath(path)}: expected a numeric mask, got {mask.dtype}")
    return mask != 0


def read_make3d_depth(path: str | os.PathLike) -> np.ndarray:
    """Make3D `depth_sph_corr-*.mat` -> float32 (55, 305) laser depth grid in metres
    (`Position3DGrid[:, :, 3]`, as every Make3D evaluation reads it)."""
    import scipy.io

    path = _exists(path)
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, NotImplementedError) as e:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({e})") from e
    grid = mat.get(MAKE3D_GRID_KEY)
    if grid is None or np.ndim(grid) != 3 or np.shape(grid)[2] <= MAKE3D_DEPTH_CHANNEL:
        raise DataFormatError(f"{path}: expected a {MAKE3D_GRID_KEY} array of shape (H, W, 4), got "
                              f"{None if grid is None else np.shape(grid)}")
    depth = np.asarray(grid[:, :, MAKE3D_DEPTH_CHANNEL], dtype=np.float32)
    if not np.all(np.isfinite(depth)):
        raise DataFormatError(f"{path}: depth grid has NaN or infinite values")
    return depth


# ----------------------------------------------------------------------------- HyperSim


def hypersim_distance_to_depth(distance: np.ndarray, focal: float = HYPERSIM_FOCAL) -> np.ndarray:
    """Euclidean distance from the camera centre -> planar depth (z), both in metres.

    Each pixel's ray is (x, y, focal) with x, y measured from the image centre to the
    pixel centre; depth = distance / |ray| * focal. Computed in float32 in ZoeDepth's
    order (distance / norm, then * focal), so its ground truth is reproduced exactly.
    """
    h, w = distance.shape
    f32 = np.float32
    x = np.linspace(-0.5 * w + 0.5, 0.5 * w - 0.5, w).astype(f32)[None, :]
    y = np.linspace(-0.5 * h + 0.5, 0.5 * h - 0.5, h).astype(f32)[:, None]
    z = f32(focal)
    norm = np.sqrt((x * x + y * y) + z * z)  # float32, summed x, y, z in this order
    return distance.astype(f32) / norm * f32(focal)


def read_hypersim_depth(path: str | os.PathLike) -> np.ndarray:
    """HyperSim `frame.IIII.depth_meters.hdf5` -> float32 (768, 1024) planar depth in metres.

    The file holds the distance from the camera centre (not depth), NaN where a ray hits
    no geometry; NaN becomes 0 (no ground truth), which every protocol leaves out just as
    ZoeDepth's comparisons with NaN do.
    """
    import h5py

    path = _exists(path)
    try:
        with h5py.File(path, "r") as f:
            if "dataset" not in f:
                raise DataFormatError(f"{path}: no 'dataset' array (HyperSim depth_meters files have one)")
            distance = np.asarray(f["dataset"])
    except OSError as e:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({e})") from e
    if distance.shape != HYPERSIM_SHAPE:
        raise DataFormatError(f"{path}: expected HyperSim's {HYPERSIM_SHAPE[0]}x{HYPERSIM_SHAPE[1]} distances, "
                              f"got shape {distance.shape}")
    depth = hypersim_distance_to_depth(distance)
    return np.where(np.isfinite(depth), depth, np.float32(0.0)).astype(np.float32)


# ----------------------------------------------------------------------------- Cityscapes


def read_cityscapes_camera(path: str | os.PathLike) -> tuple[float, float]:
    """(baseline in metres, fx in pixels) from a Cityscapes `*_camera.json`."""
    path = _exists(path)
    try:
        with open(path) as f:
            camera = json.load(f)
        baseline, fx = float(camera["extrinsic"]["baseline"]), float(camera["intrinsic"]["fx"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataFormatError(f"{path}: expected a Cityscapes camera file with extrinsic.baseline and "
                              f"intrinsic.fx ({type(e).__name__}: {e})") from e
    if not (baseline > 0 and fx > 0):
        raise DataFormatError(f"{path}: baseline {baseline} and fx {fx} must be positive")
    return baseline, fx


def cityscapes_depth(disparity: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Cityscapes disparity PNG values -> float32 depth in metres (0 = invalid).

    The published encoding: p = 0 is invalid, else disparity d = (p - 1) / 256 pixels, and
    depth = baseline * fx / d. p = 1 (d = 0, infinitely far) has no finite depth: invalid.
    """
    p = np.asarray(disparity).astype(np.float64)
    d = (p - 1.0) / 256.0
    with np.errstate(divide="ignore"):
        depth = np.where(d > 0, baseline * fx / np.where(d > 0, d, 1.0), 0.0)
    return depth.astype(np.float32)
