"""Depth-specific Attention (DSA) module.

Official `AutoED(drn_d_22())`: the DRN-D-22 trunk (Yu et al., "Dilated Residual
Networks"; layer0..layer8, the ImageNet classifier's avgpool and fc dropped) as
encoder, and three up-projection blocks that resize back to 1/4, 1/2 and the input
size, a reflection-padded 3x3 conv to one channel and a sigmoid. The attention map
it outputs multiplies the structure map to suppress depth-irrelevant structure.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import stat_dtype, BatchNorm, Conv, Dtype, UpProjection

# DRN-D-22: channels and block counts per level; levels 3-6 are residual
# (BasicBlock) levels, 0-2 and 7-8 plain conv-BN-ReLU layers.
DRN_D22_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
DRN_D22_LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)


class ConvBNReLU(nn.Module):
    features: int
    kernel_size: int = 3
    stride: int = 1
    dilation: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        pad = self.dilation * (self.kernel_size // 2)
        x = Conv(self.features, self.kernel_size, self.stride, pad, self.dilation, use_bias=False,
                 dtype=self.dtype, name="conv")(x)
        return nn.relu(BatchNorm(dtype=self.dtype, name="bn")(x, train))


class BasicBlock(nn.Module):
    """DRN's residual block: two dilated 3x3 convs, projection shortcut if needed."""

    features: int
    stride: int = 1
    dilation: Sequence[int] = (1, 1)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        d1, d2 = self.dilation
        bn = lambda name: BatchNorm(dtype=self.dtype, name=name)
        y = Conv(self.features, 3, self.stride, d1, d1, use_bias=False, dtype=self.dtype, name="conv1")(x)
        y = nn.relu(bn("bn1")(y, train))
        y = Conv(self.features, 3, 1, d2, d2, use_bias=False, dtype=self.dtype, name="conv2")(y)
        y = bn("bn2")(y, train)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = Conv(self.features, 1, self.stride, use_bias=False, dtype=self.dtype, name="downsample_conv")(x)
            x = bn("downsample_bn")(x, train)
        return nn.relu(y + x.astype(y.dtype))


class DRNTrunk(nn.Module):
    """DRN-D-22 without avgpool/fc; returns the last feature map and two sizes.

    Strides (1, 1, 2, 2, 2, 1, 1, 1, 1) for layer0..8: output at 1/8 with 512
    channels. Dilations as the official `_make_layer`/`_make_conv_layers`:
    layer5 (2, 2), layer6 (4, 4), layer7 2, layer8 1.
    """

    channels: Sequence[int] = DRN_D22_CHANNELS
    layers: Sequence[int] = DRN_D22_LAYERS
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        ch, n, dt = self.channels, self.layers, self.dtype
        x = ConvBNReLU(ch[0], 7, dtype=dt, name="layer0")(x, train)
        x = ConvBNReLU(ch[0], dtype=dt, name="layer1")(x, train)
        x = ConvBNReLU(ch[1], stride=2, dtype=dt, name="layer2")(x, train)
        half = x.shape[1:3]
        for level, stride, dil in ((3, 2, 1), (4, 2, 1), (5, 1, 2), (6, 1, 4)):
            for b in range(n[level - 1]):
                x = BasicBlock(ch[level - 1], stride if b == 0 else 1, (dil, dil), dt,
                               name=f"layer{level}_{b}")(x, train)
            if level == 3:
                quarter = x.shape[1:3]
        x = ConvBNReLU(ch[6], dilation=2, dtype=dt, name="layer7")(x, train)
        x = ConvBNReLU(ch[7], dilation=1, dtype=dt, name="layer8")(x, train)
        return x, quarter, half


class DepthSpecificAttention(nn.Module):
    """Image (N, H, W, 3) -> attention map (N, H, W, 1) in (0, 1)."""

    channels: Sequence[int] = DRN_D22_CHANNELS  # official; smaller for quick runs and tests
    align_corners: bool = True  # official F.interpolate setting
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image: jax.Array, train: bool = False) -> jax.Array:
        x, quarter, half = DRNTrunk(self.channels, dtype=self.dtype, name="trunk")(image, train)
        features = x.shape[-1]
        for i, size in enumerate((quarter, half, image.shape[1:3])):
            features //= 2
            x = UpProjection(features, self.align_corners, self.dtype, name=f"up{i + 1}")(x, size, train)
        x = Conv(1, 3, padding=1, dtype=self.dtype, name="conv", padding_mode="reflect")(x)
        return nn.sigmoid(x.astype(stat_dtype(self.dtype)))
