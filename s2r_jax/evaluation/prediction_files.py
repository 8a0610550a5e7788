"""Depth predictions as files: what `eval.py --config.predictions` reads and `save_predictions`
writes, so that any model's output can be evaluated under our protocols. NumPy only.

A predictions file is an .npz of depth maps in metres, in the split's order: one stacked
(N, H, W) array, or one array per frame (`pred_00000`, `pred_00001`, ...; read in the
natural order of their keys, so `pred_2` comes before `pred_10`). A directory of such
files (one per host of a multi-host evaluation, `predictions.process00000.npz`, ...) is
read as one, frames ordered by their keys.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

_NOT_MAPS = ("files", "value", "names")


def _natural_key(name: str):
    """'pred_2' before 'pred_10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _read(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        keys = [k for k in f.files if k not in _NOT_MAPS]
        if len(keys) == 1 and f[keys[0]].ndim == 3:
            return {f"pred_{i:05d}": m for i, m in enumerate(f[keys[0]])}
        return {k: f[k] for k in keys}


def load_predictions(path: str) -> list[np.ndarray]:
    """The depth maps (metres) of a predictions file, or of a directory of per-host files, in order."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "predictions*.npz")))
        if not files:
            raise FileNotFoundError(f"predictions directory {path}: no predictions*.npz files in it")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"predictions file {path}: no such file")
    maps: dict[str, np.ndarray] = {}
    for f in files:
        maps.update(_read(f))
    return [maps[k] for k in sorted(maps, key=_natural_key)]


def save_predictions(path: str, indices, names, predictions) -> None:
    """Write frames (their split positions `indices`, `names`, metre maps) to `path`, atomically."""
    tmp = path + ".partial.npz"
    np.savez_compressed(tmp, names=np.array(list(names), dtype=str),
                        **{f"pred_{int(i):05d}": np.asarray(p, np.float32) for i, p in zip(indices, predictions)})
    os.replace(tmp, path)
