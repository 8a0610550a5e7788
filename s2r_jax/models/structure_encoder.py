"""Structure Extraction module, part 1: the structure encoder.

Official `Struct_Encoder(n_downsample=2, n_res=4, input_dim=3, dim=64, norm='in',
activ='lrelu', pad_type='reflect')`, which is MUNIT's content encoder: a 7x7 conv,
two 4x4 stride-2 convs and four residual blocks, all with reflection padding,
InstanceNorm without affine parameters and LeakyReLU(0.2). Output: a 256-channel
structure code at 1/4 resolution.

Official quirk kept: the residual blocks are passed `activation=activ` but always
use LeakyReLU(0.2) (their constructor ignores the argument).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import Conv, Dtype, instance_norm


def _lrelu(x):
    return nn.leaky_relu(x, 0.2)


class ConvINBlock(nn.Module):
    """`Conv2dBlock`: reflect pad -> conv (with bias) -> InstanceNorm -> LeakyReLU."""

    features: int
    kernel_size: int
    stride: int
    pad: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv(self.features, self.kernel_size, self.stride, self.pad, dtype=self.dtype, name="conv",
                 padding_mode="reflect")(x)
        return _lrelu(instance_norm(x))


class ResBlock(nn.Module):
    """MUNIT residual block: (pad, conv, IN, lrelu, pad, conv, IN) + identity."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        y = Conv(c, 3, padding=1, dtype=self.dtype, name="conv1", padding_mode="reflect")(x)
        y = _lrelu(instance_norm(y))
        y = Conv(c, 3, padding=1, dtype=self.dtype, name="conv2", padding_mode="reflect")(y)
        return instance_norm(y) + x


class StructureEncoder(nn.Module):
    """Image (N, H, W, 3) in [-1, 1] -> structure code (N, H/4, W/4, 4*dim)."""

    dim: int = 64
    n_downsample: int = 2
    n_res: int = 4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ConvINBlock(self.dim, 7, 1, 3, self.dtype, name="conv")(x)
        dim = self.dim
        for i in range(self.n_downsample):
            dim *= 2
            x = ConvINBlock(dim, 4, 2, 1, self.dtype, name=f"down{i + 1}")(x)
        for i in range(self.n_res):
            x = ResBlock(self.dtype, name=f"res{i}")(x)
        return x
