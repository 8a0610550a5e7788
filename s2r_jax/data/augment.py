"""The official training augmentation (`transform.RandomImgAugment`, train phase), in Pillow,
as the official code runs it (no tensorflow).

Per example, in the official order:
1. image and depth resized to the training size with Pillow's bicubic — the depth in its
   stored unit, so a 16-bit PNG is resized as Pillow's I;16 image and rounded to whole
   units, exactly as the official code resizes the PNG it opened; sparse depth (real
   KITTI) with nearest neighbour, so it is never interpolated across its holes;
2. depth clipped to [0, depth_range_m] and divided by it (official: cm clipped at 8000,
   / 8000);
3. a horizontal flip of both, with probability `flip_prob`;
4. with probability `rotate_prob`, a rotation of both by one angle from {-5.00, -4.99, ...,
   4.99} degrees (official `random.randrange(-500, 500) / 100`), bicubic (sparse depth:
   nearest), the rotated-in corners filled with 0;
5. depth * 2 - 1;
6. with probability `colour_prob`: brightness, contrast and saturation factors, each
   uniform in [colour_low, colour_high] (official 0.8..1.0), applied in that order with
   torchvision's PIL semantics (`ImageEnhance.Brightness`, `.Contrast`, `.Color` on uint8).

The random draws come from a NumPy generator keyed by (seed, the example's index in the
stream): what an example looks like depends on neither the host that reads it nor the
number of hosts. `mask` marks valid ground truth (the rotated-in corners, and the holes
of sparse depth, are 0).
"""
from __future__ import annotations

import dataclasses
import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance

from s2r_jax.data import preprocessing


@dataclasses.dataclass(frozen=True)
class Draws:
    """One example's random choices."""

    flip: bool
    rotate_deg: float          # 0.0 = not rotated
    colour: tuple | None       # (brightness, contrast, saturation), or None = unchanged


def draw(seed: int, index: int, aug) -> Draws:
    """The random choices for example `index` of a stream seeded `seed`; `aug` is `config.data.augment`.

    Always the same seven numbers are drawn, used or not, so one example's draws never
    depend on another's.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    u_flip, u_rot, u_colour = rng.random(3)
    steps = int(round(aug.max_rotation_deg * 100))
    degree = int(rng.integers(-steps, steps)) / 100.0 if steps else 0.0
    factors = tuple(float(f) for f in rng.uniform(aug.colour_low, aug.colour_high, 3))
    return Draws(flip=bool(u_flip < aug.flip_prob),
                 rotate_deg=degree if u_rot < aug.rotate_prob else 0.0,
                 colour=factors if u_colour < aug.colour_prob else None)


def adjust_colour(rgb: Image.Image, factors: Sequence[float]) -> Image.Image:
    """torchvision's adjust_brightness, adjust_contrast, adjust_saturation, in that order, on a PIL image."""
    brightness, contrast, saturation = factors
    rgb = ImageEnhance.Brightness(rgb).enhance(brightness)
    rgb = ImageEnhance.Contrast(rgb).enhance(contrast)
    return ImageEnhance.Color(rgb).enhance(saturation)


def _depth_image(depth, gt) -> Image.Image:
    """The stored depth as the PIL image the official code resizes: an encoded 16-bit PNG as
    Pillow opens it (I;16), a float map in metres as mode 'F'."""
    if gt.png16:
        return Image.open(io.BytesIO(depth))
    return Image.fromarray(np.asarray(depth, np.float32).reshape(np.shape(depth)[:2]), "F")


def augment(image: bytes, depth, gt, size: Sequence[int], depth_range_m: float, draws: Draws,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training example -> (image (H, W, 3) in [-1, 1], depth (H, W, 1) in [-1, 1], mask (H, W, 1)).

    `image`: encoded PNG/JPEG bytes. `depth`: encoded 16-bit PNG bytes or a float map in
    metres, as `gt` (a `specs.GroundTruth`) says. `size` = (H, W).
    """
    h, w = (int(s) for s in size)
    sparse_filter = Image.NEAREST if gt.sparse else Image.BICUBIC
    rgb = Image.fromarray(preprocessing.resize_rgb(preprocessing.decode_rgb(image), (h, w)))
    d = _depth_image(depth, gt).resize((w, h), sparse_filter)
    d = np.clip(np.asarray(d, np.float32), 0.0, depth_range_m / gt.unit_m) / np.float32(depth_range_m / gt.unit_m)
    valid = (d > 0) if gt.sparse else np.ones_like(d, bool)
    d = Image.fromarray(d, "F")
    valid = Image.fromarray(valid.astype(np.uint8) * 255, "L")
    if draws.flip:
        rgb, d, valid = (x.transpose(Image.FLIP_LEFT_RIGHT) for x in (rgb, d, valid))
    if draws.rotate_deg:
        rgb = rgb.rotate(draws.rotate_deg, Image.BICUBIC)
        d = d.rotate(draws.rotate_deg, sparse_filter)
        valid = valid.rotate(draws.rotate_deg, Image.NEAREST)
    if draws.colour is not None:
        rgb = adjust_colour(rgb, draws.colour)
    depth_out = np.asarray(d, np.float32) * np.float32(2.0) - np.float32(1.0)
    mask = (np.asarray(valid) > 0).astype(np.float32)
    return preprocessing.normalise(np.asarray(rgb)), depth_out[..., None], mask[..., None]
