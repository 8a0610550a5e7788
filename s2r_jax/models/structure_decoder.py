"""Structure Extraction module, part 2: the structure decoder.

Official `Struct_Decoder`: two up-projection blocks (bilinear resize with
align_corners=True to 2x and 4x the code's size), reflection pad, 3x3 conv to one
channel, sigmoid. Output: the structure map at the image's resolution.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import stat_dtype, Conv, Dtype, UpProjection


class StructureDecoder(nn.Module):
    """Structure code (N, h, w, C) -> structure map (N, 4h, 4w, 1) in (0, 1)."""

    features: int = 256
    align_corners: bool = True  # official; False gives half-pixel resizes
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
        _, h, w, _ = code.shape
        x = UpProjection(self.features // 2, self.align_corners, self.dtype, name="up1")(code, (2 * h, 2 * w), train)
        x = UpProjection(self.features // 4, self.align_corners, self.dtype, name="up2")(x, (4 * h, 4 * w), train)
        x = Conv(1, 3, padding=1, dtype=self.dtype, name="conv", padding_mode="reflect")(x)
        return nn.sigmoid(x.astype(stat_dtype(self.dtype)))
