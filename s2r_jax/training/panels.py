"""Colourised image panels for TensorBoard and the demo.

Panels are drawn from the first rows of a global batch, gathered to every host (on
several hosts the batch is spread over them); host 0 writes them.
"""
from __future__ import annotations

import jax
import numpy as np

from s2r_jax import distributed

# Anchor colours of a jet-like map (dark blue -> cyan -> yellow -> dark red), as the
# official code's TensorBoard images used matplotlib's 'jet'.
_JET = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0],
                 [0.5, 0.0, 0.0]])


def colourise(x: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """(..., H, W[, 1]) values -> (..., H, W, 3) uint8, scaled to [lo, hi] (default: min/max)."""
    x = np.asarray(x, np.float32)
    if x.shape[-1] == 1:
        x = x[..., 0]
    lo = float(x.min()) if lo is None else lo
    hi = float(x.max()) if hi is None else hi
    t = np.clip((x - lo) / max(hi - lo, 1e-8), 0.0, 1.0) * (len(_JET) - 1)
    i = np.minimum(t.astype(np.int32), len(_JET) - 2)
    f = (t - i)[..., None]
    rgb = _JET[i] * (1 - f) + _JET[i + 1] * f
    return (rgb * 255 + 0.5).astype(np.uint8)


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """[-1, 1] RGB -> uint8."""
    return (np.clip((np.asarray(image, np.float32) + 1) * 127.5, 0, 255) + 0.5).astype(np.uint8)


def panel(columns: list[np.ndarray]) -> np.ndarray:
    """Columns of (N, H, W, 3) uint8 side by side -> (N, H, W * len(columns), 3)."""
    return np.concatenate(columns, axis=2)


def training_panel(image, outputs: dict, gt_depth) -> np.ndarray:
    """input | structure map | attention map (each if the model has it) | predicted depth | ground truth."""
    cols = [image_to_uint8(image)]
    for k in ("structure_map", "attention_map"):  # absent from the RGB baseline / stage 1
        if k in outputs:  # over their own range: the structure-weighted loss keeps S small
            cols.append(colourise(outputs[k]))
    cols += [colourise(outputs["depth"][-1], -1.0, 1.0), colourise(gt_depth, -1.0, 1.0)]
    return panel(cols)


def first_rows(tree, k: int):
    """The first `k` rows of every (global) array of a tree, as NumPy on every host (a collective
    on several hosts: every host must call it)."""
    take = distributed.SyncedJit(jax.jit(lambda x: x[:k]), "panel rows")
    return jax.tree.map(lambda x: distributed.gather(take(x)), tree)
