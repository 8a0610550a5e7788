"""The official training losses (train_loss.py), NHWC.

- Multi-scale L1: the sum over the four DepthNet outputs of the mean absolute error
  to the ground truth resized to each output's size with bilinear align_corners=True
  (the official `adjust_gt`). An optional validity mask restricts the mean to valid
  pixels, for the sparse ground truth of semi-supervised fine-tuning.
- Structure-weighted term (stage 1): mean |S * exp(-beta * mean_c(|dD/dx| + |dD/dy|))|
  with forward differences on the full-resolution ground truth D, the last row and
  column differenced against a replicate pad (i.e. zero there).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from s2r_jax.models.layers import resize_bilinear


def depth_l1_multiscale(preds: Sequence[jax.Array], gt: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Sum over scales of mean |pred - resize_ac(gt)|; `mask` (same shape as gt) selects valid pixels.

    With a mask, each scale uses the mask resized the same way and thresholded at 1
    (a pixel counts only if all its bilinear neighbours were valid), so the loss
    never sees ground truth interpolated across holes.
    """
    dt = jnp.promote_types(preds[-1].dtype, jnp.float32)  # float32, or float64 for numerical checks
    gt = gt.astype(dt)
    total = jnp.zeros((), dt)
    for pred in preds:
        size = pred.shape[1:3]
        err = jnp.abs(pred.astype(dt) - resize_bilinear(gt, size, align_corners=True))
        if mask is None:
            total = total + err.mean()
        else:
            m = resize_bilinear(mask.astype(dt), size, align_corners=True) >= 1.0 - 1e-6
            total = total + jnp.sum(jnp.where(m, err, 0.0)) / jnp.maximum(jnp.sum(m), 1)
    return total


def _grad_x(img: jax.Array) -> jax.Array:
    padded = jnp.concatenate([img, img[:, :, -1:]], axis=2)  # replicate pad on the right
    return padded[:, :, :-1] - padded[:, :, 1:]


def _grad_y(img: jax.Array) -> jax.Array:
    padded = jnp.concatenate([img, img[:, -1:]], axis=1)  # replicate pad at the bottom
    return padded[:, :-1] - padded[:, 1:]


def struct_weighted_loss(structure_map: jax.Array, depth: jax.Array, beta: float = 0.001) -> jax.Array:
    """The official `struct_weighted_loss(struct_map, depth, _, hyper_w=beta)`."""
    dt = jnp.promote_types(structure_map.dtype, jnp.float32)
    depth = depth.astype(dt)
    grad = jnp.abs(_grad_x(depth)) + jnp.abs(_grad_y(depth))
    weight = jnp.exp(-jnp.mean(grad, axis=-1, keepdims=True) * beta)
    return jnp.mean(jnp.abs(structure_map.astype(dt) * weight))


def silog_loss(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None, beta: float = 0.15,
               interpolate: bool = True) -> jax.Array:
    """ZoeDepth's (and AdaBins') `SILogLoss`: 10 * sqrt(Var(g) + beta * mean(g)^2), g = log(pred) - log(gt).

    As the official: `pred` (B, h, w, 1) is resized to the target's size with bilinear
    align_corners=True when the widths differ and `interpolate`; the variance is the
    unbiased one (n - 1); logs of value + 1e-7; `mask` (B, H, W[, 1]) selects the valid
    pixels (the official training passes gt > min_depth). Computed in at least float32.
    """
    dt = jnp.promote_types(pred.dtype, jnp.float32)
    pred, target = pred.astype(dt), target.astype(dt)
    if target.ndim == 3:
        target = target[..., None]
    if pred.shape[2] != target.shape[2] and interpolate:
        pred = resize_bilinear(pred, target.shape[1:3], align_corners=True)
    if mask is None:
        mask = jnp.ones(pred.shape[:3] + (1,), bool)
    elif mask.ndim == 3:
        mask = mask[..., None]
    # outside the mask the logs are never taken (the official indexes input[mask]): a negative or
    # zero value there would make a NaN whose gradient, times the mask's 0, is still NaN
    safe = lambda x: jnp.where(mask, x, 1.0)
    g = jnp.log(safe(pred) + 1e-7) - jnp.log(safe(target) + 1e-7)
    n = jnp.sum(mask)
    mean = jnp.sum(jnp.where(mask, g, 0)) / n
    var = jnp.sum(jnp.where(mask, jnp.square(g - mean), 0)) / (n - 1)
    return 10 * jnp.sqrt(var + beta * jnp.square(mean))
