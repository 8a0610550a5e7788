"""Pinhole intrinsics for point clouds: KITTI's by default, scaled to each image, or the user's."""
from __future__ import annotations

import dataclasses

import numpy as np

# KITTI's left colour camera (P_rect_02 of the 2011_09_26 drives) and the image size it refers to.
KITTI_INTRINSICS = (721.5377, 721.5377, 609.5593, 172.854)  # fx, fy, cx, cy
KITTI_IMAGE_SIZE = (375, 1242)  # H, W


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics for back-projection: given ones, or KITTI's scaled to each image.

    `size` (H, W) is the image size the values belong to: each image's intrinsics are
    scaled from it to the image's own size (fx by w / W, cx as (cx + 0.5) * w / W - 0.5,
    pixel centres at integer coordinates; likewise fy, cy with h / H). `size=None`
    uses the values as they are for every image. `fy` defaults to `fx`; `cx`, `cy` to
    the image centre ((w - 1) / 2, (h - 1) / 2).
    """

    fx: float = KITTI_INTRINSICS[0]
    fy: float | None = KITTI_INTRINSICS[1]
    cx: float | None = KITTI_INTRINSICS[2]
    cy: float | None = KITTI_INTRINSICS[3]
    size: tuple | None = KITTI_IMAGE_SIZE

    def for_image(self, h: int, w: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) for an h x w image."""
        ref_h, ref_w = self.size if self.size is not None else (h, w)
        fy = self.fx if self.fy is None else self.fy
        cx = (ref_w - 1) / 2 if self.cx is None else self.cx
        cy = (ref_h - 1) / 2 if self.cy is None else self.cy
        sx, sy = w / ref_w, h / ref_h
        return self.fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def back_project(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(H, W) z-depth -> (H * W, 3) float32 camera points, row-major: pixel (v, u) ->
    ((u - cx) z / fx, (v - cy) z / fy, z); x right, y down, z forward."""
    h, w = depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    z = depth.astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    return points.reshape(-1, 3).astype(np.float32)


def intrinsics_from_flags(fx=None, fy=None, cx=None, cy=None, size=None) -> Intrinsics:
    """KITTI's (scaled from 1242x375) when none is given; else the given ones, `fy` = `fx`
    and the image centre filling the gaps, scaled only if `size` is given."""
    if fx is None and fy is None and cx is None and cy is None:
        return Intrinsics(size=tuple(size) if size else KITTI_IMAGE_SIZE)
    if fx is None:
        raise ValueError("--fy, --cx or --cy need --fx as well")
    return Intrinsics(fx, fy, cx, cy, tuple(size) if size else None)
