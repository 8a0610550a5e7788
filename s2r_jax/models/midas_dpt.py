"""MiDaS 3.1 DPT-BEiT-L/16 (isl-org/MiDaS `DPTDepthModel(backbone='beitl16_384')`), NHWC.

The relative-depth network ZoeDepth builds on, and the source of the features its metric
heads read. Dense Prediction Transformer (Ranftl et al. 2021):
- *reassemble*: the tokens after BEiT blocks 5/11/17/23 each get the cls token folded in
  ("project" readout: Linear(2C -> C) + GELU on [token, cls]), are laid out on the patch
  grid, projected by a 1x1 conv to 256/512/1024/1024 channels and resampled to 1/4, 1/8,
  1/16 and 1/32 of the input (4x4 and 2x2 stride-k transposed convs, identity, 3x3
  stride-2 conv);
- *fusion*: `layerN_rn` 3x3 convs bring each to 256 channels; fusion blocks (residual conv
  units, align_corners bilinear upsampling, 1x1 out conv) merge them coarse to fine;
- *head*: 3x3 conv to 128, 2x align_corners upsampling, 3x3 conv to 32 + ReLU (the
  `out_conv` feature ZoeDepth reads), 1x1 conv to 1 + ReLU: relative (inverse) depth.

Returns the relative depth and the features ZoeDepth reads, named as ZoeDepth's
`MidasCore` hooks name them: out_conv, l4_rn, r4, r3, r2, r1.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.beit import PATCH_SIZE, PRETRAIN_GRID, Beit, dense
from s2r_jax.models.layers import Conv, ConvTranspose, Dtype, resize_bilinear

REASSEMBLE_FEATURES = (256, 512, 1024, 1024)  # MiDaS `_make_pretrained_beitl16_384`
FEATURE_NAMES = ("out_conv", "l4_rn", "r4", "r3", "r2", "r1")


class Reassemble(nn.Module):
    """One `act_postprocess` branch: project readout, unflatten, 1x1 conv, resample by `scale`
    (4, 2: transposed conv with kernel = stride; 1: none; 0.5: 3x3 stride-2 conv)."""

    features: int
    scale: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, grid: Sequence[int]) -> jax.Array:
        b, n, c = tokens.shape
        cls = jnp.broadcast_to(tokens[:, :1], (b, n - 1, c))
        x = dense(c, self.dtype, "readout")(jnp.concatenate([tokens[:, 1:], cls], axis=-1))
        x = nn.gelu(x, approximate=False).reshape(b, grid[0], grid[1], c)
        x = Conv(self.features, 1, dtype=self.dtype, name="conv")(x)
        if self.scale > 1:
            k = int(self.scale)
            x = ConvTranspose(self.features, kernel_size=k, stride=k, padding=0, output_padding=0, dtype=self.dtype,
                              name="resample")(x)
        elif self.scale < 1:
            x = Conv(self.features, 3, stride=2, padding=1, dtype=self.dtype, name="resample")(x)
        return x


class ResidualConvUnit(nn.Module):
    """relu -> 3x3 conv -> relu -> 3x3 conv, plus the input (`ResidualConvUnit_custom`, no BN)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        y = Conv(c, 3, padding=1, dtype=self.dtype, name="conv1")(nn.relu(x))
        y = Conv(c, 3, padding=1, dtype=self.dtype, name="conv2")(nn.relu(y))
        return y + x


class FeatureFusionBlock(nn.Module):
    """`FeatureFusionBlock_custom`: x (+ unit1(skip)) -> unit2 -> align_corners resize to
    `size` (default 2x) -> 1x1 conv."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array | None = None, size: Sequence[int] | None = None) -> jax.Array:
        if skip is not None:
            x = x + ResidualConvUnit(self.dtype, name="res_conf_unit1")(skip)
        x = ResidualConvUnit(self.dtype, name="res_conf_unit2")(x)
        size = (2 * x.shape[1], 2 * x.shape[2]) if size is None else size
        x = resize_bilinear(x, size, align_corners=True)
        return Conv(x.shape[-1], 1, dtype=self.dtype, name="out_conv")(x)


class MidasDPT(nn.Module):
    """Normalised image (B, H, W, 3), H and W multiples of 32 -> dict of relative depth
    `rel_depth` (B, H, W) and the features `out_conv` (B, H, W, 32), `l4_rn` (1/32),
    `r4` .. `r1` (1/16 .. 1/2), all 256 channels.

    Defaults are DPT-BEiT-L/16-384; the widths shrink for tests.
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    taps: Sequence[int] = (5, 11, 17, 23)
    pretrain_grid: Sequence[int] = PRETRAIN_GRID
    reassemble_features: Sequence[int] = REASSEMBLE_FEATURES
    features: int = 256
    head_features: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image: jax.Array) -> dict:
        _, h, w, _ = image.shape
        if h % 32 or w % 32:
            raise ValueError(f"MiDaS DPT input {h}x{w} (HxW): height and width must be multiples of 32")
        dt = self.dtype
        grid = (h // PATCH_SIZE, w // PATCH_SIZE)
        tokens = Beit(self.embed_dim, self.depth, self.num_heads, tuple(self.taps), tuple(self.pretrain_grid), dt,
                      name="beit")(image)
        layers = [Reassemble(f, s, dt, name=f"reassemble{i + 1}")(t, grid)
                  for i, (f, s, t) in enumerate(zip(self.reassemble_features, (4, 2, 1, 0.5), tokens))]
        rn = [Conv(self.features, 3, padding=1, use_bias=False, dtype=dt, name=f"layer{i + 1}_rn")(x)
              for i, x in enumerate(layers)]
        r4 = FeatureFusionBlock(dt, name="refinenet4")(rn[3], size=rn[2].shape[1:3])
        r3 = FeatureFusionBlock(dt, name="refinenet3")(r4, rn[2], size=rn[1].shape[1:3])
        r2 = FeatureFusionBlock(dt, name="refinenet2")(r3, rn[1], size=rn[0].shape[1:3])
        r1 = FeatureFusionBlock(dt, name="refinenet1")(r2, rn[0])
        x = Conv(self.features // 2, 3, padding=1, dtype=dt, name="head_conv1")(r1)
        x = resize_bilinear(x, (2 * x.shape[1], 2 * x.shape[2]), align_corners=True)
        out_conv = nn.relu(Conv(self.head_features, 3, padding=1, dtype=dt, name="head_conv2")(x))
        rel_depth = nn.relu(Conv(1, 1, dtype=dt, name="head_conv3")(out_conv))[..., 0]
        return {"rel_depth": rel_depth, "out_conv": out_conv, "l4_rn": rn[3], "r4": r4, "r3": r3, "r2": r2, "r1": r1}
