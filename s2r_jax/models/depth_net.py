"""Depth prediction network.

Official `Depth_Net(input_nc=1, output_nc=1, ngf=64, layers=4, norm='batch')`: a
U-Net on the one-channel depth-specific structure map. Encoder: 7x7 conv and three
conv-conv blocks, each followed by 2x2 average pooling (to 1/16). Centre: three
inception blocks (three reflect-padded 3x3 branches with dilations 1, 3, 5) and an
up-block. Decoder: transposed-conv up-blocks fed with down-weighted skips (0.1,
0.05, 0.01 of the encoder features) and the upsampled coarser prediction. Four
tanh outputs, coarse (1/8) to fine (full size), in [-1, 1].

Official quirks kept (faithful by default):
- ONE `nn.PReLU()` is built and reused by every block, so the whole network has a
  single PReLU slope (`shared_prelu=True`). `shared_prelu=False` gives each of
  the 21 activations its own slope: a variant, not the official model, and the
  official weights do not import into it.
- The skip weights multiply the features *before* concatenation, and the coarse
  prediction is upsampled with nearest neighbour.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import (BatchNorm, Conv, ConvTranspose, Dtype, avg_pool2, check_image, prelu,
                                   stat_dtype, upsample_nearest2)

PRELU_INIT = 0.25  # torch.nn.PReLU default


class _Block(nn.Module):
    """Base for DepthNet blocks: resolves the (shared or own) PReLU slope."""

    shared_alpha: jax.Array | None

    def act(self, x, name):
        if self.shared_alpha is not None:
            return prelu(x, self.shared_alpha)
        return prelu(x, self.param(name, nn.initializers.constant(PRELU_INIT), (1,), jnp.float32))


class EncoderBlock(_Block):
    """`_EncoderBlock`: (3x3 conv, BN, PReLU) x 2, zero padding, no biases."""

    middle: int = 0
    features: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        x = Conv(self.middle, 3, padding=1, use_bias=False, dtype=self.dtype, name="conv_a")(x)
        x = self.act(BatchNorm(dtype=self.dtype, name="bn_a")(x, train), "prelu_a")
        x = Conv(self.features, 3, padding=1, use_bias=False, dtype=self.dtype, name="conv_b")(x)
        return self.act(BatchNorm(dtype=self.dtype, name="bn_b")(x, train), "prelu_b")


class InceptionBlock(_Block):
    """`_InceptionBlock(width=3)`: dilated branches -> BN -> PReLU -> 3x3 -> BN, + x, PReLU."""

    features: int = 0
    width: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        branches = []
        for i in range(self.width):
            d = 2 * i + 1
            conv = Conv(self.features, 3, padding=d, dilation=d, use_bias=False, dtype=self.dtype,
                        name=f"branch{i}", padding_mode="reflect")
            branches.append(conv(x))
        y = self.act(BatchNorm(dtype=self.dtype, name="norm1")(jnp.concatenate(branches, -1), train), "prelu_a")
        y = Conv(self.features, 3, padding=1, use_bias=False, dtype=self.dtype, name="fuse", padding_mode="reflect")(y)
        y = BatchNorm(dtype=self.dtype, name="norm2")(y, train)
        return self.act(y + x.astype(y.dtype), "prelu_b")


class DecoderUpBlock(_Block):
    """`_DecoderUpBlock`: reflect-padded 3x3 conv, BN, PReLU, ConvTranspose x2 (with bias), BN, PReLU."""

    middle: int = 0
    features: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train):
        x = Conv(self.middle, 3, padding=1, use_bias=False, dtype=self.dtype, name="conv", padding_mode="reflect")(x)
        x = self.act(BatchNorm(dtype=self.dtype, name="bn_a")(x, train), "prelu_a")
        x = ConvTranspose(self.features, 3, stride=2, padding=1, output_padding=1, dtype=self.dtype, name="deconv")(x)
        return self.act(BatchNorm(dtype=self.dtype, name="bn_b")(x, train), "prelu_b")


class OutputBlock(nn.Module):
    """`_OutputBlock`: reflect pad, conv to one channel (no bias), tanh."""

    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        x = Conv(1, k, padding=k // 2, use_bias=False, dtype=self.dtype, name="conv", padding_mode="reflect")(x)
        return jnp.tanh(x.astype(stat_dtype(self.dtype)))


class DepthNet(nn.Module):
    """Structure map (N, H, W, 1) -> four depth maps in [-1, 1], coarse to fine.

    H and W must be multiples of 16, at least 96 (see `check_image`).
    """

    ngf: int = 64
    skip_weight: float = 0.1
    shared_prelu: bool = True  # official: one PReLU slope for the whole network
    in_channels: int = 1       # official: the one-channel structure map; 3 for an image->depth baseline
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, with_features: bool = False):
        """The four outputs; with `with_features`, also {'bottleneck': the 1/16 centre (8 ngf),
        'decoder': the up-blocks' outputs at 1/8, 1/4, 1/2, 1/1} (what a metric head reads)."""
        check_image(x, self.in_channels, "DepthNet input")
        g, dt = self.ngf, self.dtype
        alpha = self.param("prelu", nn.initializers.constant(PRELU_INIT), (1,), jnp.float32) if self.shared_prelu else None

        def act(y, name):  # the stem's activation, not inside a block
            return prelu(y, alpha if alpha is not None else self.param(name, nn.initializers.constant(PRELU_INIT), (1,), jnp.float32))

        y = Conv(g, 7, padding=3, use_bias=False, dtype=dt, name="conv1", padding_mode="reflect")(x)
        conv1 = avg_pool2(act(BatchNorm(dtype=dt, name="bn1")(y, train), "prelu1"))          # 1/2, g
        conv2 = avg_pool2(EncoderBlock(alpha, 2 * g, 2 * g, dt, name="conv2")(conv1, train))  # 1/4, 2g
        conv3 = avg_pool2(EncoderBlock(alpha, 4 * g, 4 * g, dt, name="conv3")(conv2, train))  # 1/8, 4g
        center = avg_pool2(EncoderBlock(alpha, 8 * g, 8 * g, dt, name="conv4")(conv3, train))  # 1/16, 8g
        for i in range(3):
            center = InceptionBlock(alpha, 8 * g, 3, dt, name=f"center{i}")(center, train)
        bottleneck = center
        center = DecoderUpBlock(alpha, 8 * g, 4 * g, dt, name="center_up")(center, train)    # 1/8, 4g

        w = self.skip_weight
        skip = jnp.concatenate([center, conv3 * w], -1)
        out4 = OutputBlock(3, dt, name="output4")(skip)                                        # 1/8
        d4 = DecoderUpBlock(alpha, 8 * g, 2 * g, dt, name="deconv4")(skip, train)             # 1/4, 2g
        skip = jnp.concatenate([d4, conv2 * (w * 0.5), upsample_nearest2(out4).astype(dt)], -1)
        out3 = OutputBlock(3, dt, name="output3")(skip)                                        # 1/4
        d3 = DecoderUpBlock(alpha, 4 * g, g, dt, name="deconv3")(skip, train)                 # 1/2, g
        skip = jnp.concatenate([d3, conv1 * (w * 0.1), upsample_nearest2(out3).astype(dt)], -1)
        out2 = OutputBlock(3, dt, name="output2")(skip)                                        # 1/2
        d2 = DecoderUpBlock(alpha, 2 * g, g // 2, dt, name="deconv2")(skip, train)            # 1, g/2
        out1 = OutputBlock(7, dt, name="output1")(jnp.concatenate([d2, upsample_nearest2(out2).astype(dt)], -1))
        outputs = [out4, out3, out2, out1]
        if with_features:
            return outputs, {"bottleneck": bottleneck, "decoder": [center, d4, d3, d2]}
        return outputs
