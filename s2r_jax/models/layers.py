"""Building blocks with PyTorch's exact semantics, in NHWC.

The official S2R-DepthNet is PyTorch code; to load its weights and reproduce its
outputs, each layer here mirrors the corresponding `torch.nn` layer: padding done
the way the official module does it (zero padding inside the convolution or an
explicit `ReflectionPad2d`), BatchNorm with PyTorch's running-variance update, and
bilinear resizing with `align_corners=True` (which `jax.image.resize` cannot do).

Parameters are float32; `dtype` is the computation dtype (bf16 option; float64
under `jax.enable_x64` for numerical checks). Norm statistics, sigmoids and tanhs
are computed in at least float32 (`stat_dtype`).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

# PyTorch's default Conv2d init (kaiming_uniform with a=sqrt(5)) is
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the trainer re-initialises where the official
# code does, so this only matters for modules trained from scratch.
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def stat_dtype(dtype) -> jnp.dtype:
    """At least float32: bf16 computation keeps statistics in float32, float64 stays float64."""
    return jnp.promote_types(dtype, jnp.float32)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """`nn.ReflectionPad2d(pad)` on NHWC (the edge pixel is not repeated)."""
    if pad == 0:
        return x
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def avg_pool2(x: jax.Array) -> jax.Array:
    """`nn.AvgPool2d(2, 2)` for even H and W."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample_nearest2(x: jax.Array) -> jax.Array:
    """`nn.Upsample(scale_factor=2, mode='nearest')`."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _resize_axis(x: jax.Array, out_size: int, axis: int, align_corners: bool) -> jax.Array:
    in_size = x.shape[axis]
    if in_size == out_size:
        return x
    out = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = out * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(1)
    else:  # half-pixel centres, as torch with align_corners=False (no antialias)
        src = np.maximum((out + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = (src - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = jnp.asarray(frac.reshape(shape), dtype=x.dtype)
    a = jnp.take(x, i0, axis=axis)
    b = jnp.take(x, i1, axis=axis)
    return a + (b - a) * frac


def resize_bilinear(x: jax.Array, size: Sequence[int], align_corners: bool = True) -> jax.Array:
    """Bilinear resize of NHWC `x` to `size` = (H, W).

    `align_corners=True` is what the official code uses everywhere (F.interpolate
    and the loss's ground-truth resize); `jax.image.resize` only offers half-pixel
    sampling, so this separable gather-and-lerp implements both. Gathers rather than
    interpolation matrices, so no matmul precision setting can change the result.
    """
    x = _resize_axis(x, int(size[0]), 1, align_corners)
    return _resize_axis(x, int(size[1]), 2, align_corners)


def _fma32(a, b, c) -> np.ndarray:
    """float32 a * b + c rounded once, as the fused multiply-adds of torch's compiled kernels."""
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def _cubic_taps(in_size: int, out_size: int, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Source rows (out, 4), clamped to the input, and their weights for torch's bicubic:
    half-pixel centres, the source coordinate not clamped, Keys' cubic convolution with `a`,
    computed in float32 with fused multiply-adds as torch computes them for float32 images
    (within an ulp or two of its weights)."""
    f = np.float32
    src = _fma32(f(in_size) / f(out_size), np.arange(out_size, dtype=f) + f(0.5), f(-0.5))
    base = np.minimum(np.floor(src), in_size - 1)
    t = np.clip(src - base, f(0), f(1)).astype(f)
    a = f(a)
    cc1 = lambda x: _fma32(_fma32(a + 2, x, -(a + 3)) * x, x, f(1))              # |x| <= 1
    cc2 = lambda x: _fma32(_fma32(_fma32(a, x, -5 * a), x, 8 * a), x, -4 * a)    # 1 < |x| < 2
    weights = np.stack([cc2(t + f(1)), cc1(t), cc1(f(1) - t), cc2((f(1) - t) + f(1))], axis=1)
    index = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3)[None, :], 0, in_size - 1)
    return index.astype(np.int32), weights.astype(f)


def resize_bicubic(x: jax.Array, size: Sequence[int], a: float = -0.75) -> jax.Array:
    """`F.interpolate(x, size, mode='bicubic', align_corners=False)` of NHWC `x`.

    torch's bicubic is Keys' cubic convolution with a = -0.75 and edge rows repeated (PIL's
    and `jax.image.resize`'s use a = -0.5, and renormalise at the edges). Separable gathers,
    as `resize_bilinear`, so no matmul precision setting can change the result.
    """
    for axis, out_size in ((2, int(size[1])), (1, int(size[0]))):  # torch sums rows of width-interpolated values
        if x.shape[axis] == out_size:
            continue
        index, weights = _cubic_taps(x.shape[axis], out_size, a)
        shape = [1] * x.ndim
        shape[axis] = out_size
        x = sum(jnp.take(x, index[:, i], axis=axis) * jnp.asarray(weights[:, i].reshape(shape), x.dtype)
                for i in range(4))
    return x


# Two XLA:CPU slow paths (jaxlib 0.10), measured layer by layer with
# `python -m s2r_jax.benchmarks.layers` (docs/benchmarks.md), are avoided on the CPU by
# computing the same sums another way:
# - YNNPACK, which runs CPU convolutions, is 2-18x slower on a convolution with no padding
#   of its own (the reflect-padded layers). Such a convolution gets `stride` rows and
#   columns of zero padding and its one extra output on each side cropped (its backward
#   pass stays the plain one's, which is faster); a 1x1 one is a matrix product.
# - The kernel gradient of a transposed (input-dilated) convolution takes 30-160x its
#   forward time. ConvTranspose is computed as one dense convolution per output phase
#   (`conv_transpose_subpixel`), whose gradients are ordinary ones.
# Both give the same products and sums (bit-identical or a few ulps apart where XLA orders
# a sum differently). None: on when the default backend is the CPU; True/False force them
# (tests compare both; GPU and TPU keep the direct lowering).
CPU_CONV_REWRITES: bool | None = None


def cpu_conv_rewrites_enabled() -> bool:
    if CPU_CONV_REWRITES is not None:
        return CPU_CONV_REWRITES
    return jax.default_backend() == "cpu"


@contextlib.contextmanager
def cpu_conv_rewrites(enabled: bool | None):
    """Set CPU_CONV_REWRITES within the block (e.g. off, to count the network's own FLOPs).

    It acts when a function is traced, and `jax.jit` caches traces per function object, so
    jit, lower or trace a function defined inside the block, not one already traced."""
    global CPU_CONV_REWRITES
    saved, CPU_CONV_REWRITES = CPU_CONV_REWRITES, enabled
    try:
        yield
    finally:
        CPU_CONV_REWRITES = saved


def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int, dilation: int) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2,
                                        rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _unpadded_conv_cpu(x: jax.Array, kernel: jax.Array, stride: int, dilation: int) -> jax.Array:
    # out'[j] = sum_k w[k] x[s(j - 1) + d k] = out[j - 1]: same sums, one extra output per side.
    return _lax_conv(x, kernel, stride, stride, dilation)[:, 1:-1, 1:-1, :]


def _unpadded_conv_cpu_fwd(x, kernel, stride, dilation):
    return _unpadded_conv_cpu(x, kernel, stride, dilation), (x, kernel)


def _unpadded_conv_cpu_bwd(stride, dilation, residuals, g):
    # The padded form's own gradients are slower than the unpadded ones (up to 2.5x for the
    # kernel), so the backward pass differentiates the plain convolution: same function.
    x, kernel = residuals
    return jax.vjp(lambda x, k: _lax_conv(x, k, stride, 0, dilation), x, kernel)[1](g)


_unpadded_conv_cpu.defvjp(_unpadded_conv_cpu_fwd, _unpadded_conv_cpu_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0, dilation: int = 1) -> jax.Array:
    """A zero-padded NHWC/HWIO convolution, as `F.conv2d` (see CPU_CONV_REWRITES)."""
    if padding == 0 and cpu_conv_rewrites_enabled():
        if kernel.shape[:2] == (1, 1):  # a matrix product: cheapest forward and gradients
            return jnp.einsum("nhwc,co->nhwo", x[:, ::stride, ::stride], kernel[0, 0])
        return _unpadded_conv_cpu(x, kernel, stride, dilation)
    return _lax_conv(x, kernel, stride, padding, dilation)


class Conv(nn.Module):
    """`nn.Conv2d` with `padding` and `padding_mode` ('zeros' or 'reflect'); kernel stored HWIO.

    `padding_mode='reflect'` is the official modules' separate `nn.ReflectionPad2d(padding)`
    followed by an unpadded convolution.
    """

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    kernel_init: Any = torch_conv_init
    padding_mode: str = "zeros"

    def _convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        if self.padding_mode == "reflect":
            return conv2d(reflect_pad(x, self.padding), kernel, self.stride, 0, self.dilation)
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {self.padding_mode!r}.")
        return conv2d(x, kernel, self.stride, self.padding, self.dilation)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        y = self._convolve(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, stride: int, padding: int,
                            output_padding: int) -> jax.Array:
    """`F.conv_transpose2d` (HWIO scatter kernel) as one dense convolution producing all
    `stride`**2 output phases as channels, then interleaved (depth-to-space).

    Output row s*i + a receives kernel taps k with (a + k - lo) divisible by s, from input
    row i + (a + k - lo) // s (lo = k - 1 - padding, flipped kernel): a small dense kernel
    per phase instead of a convolution over a zero-dilated input.
    """
    n, h, w, cin = x.shape
    k, s, cout = kernel.shape[0], stride, kernel.shape[-1]
    lo = k - 1 - padding
    out_h, out_w = (h - 1) * s - 2 * padding + k + output_padding, (w - 1) * s - 2 * padding + k + output_padding
    if out_h % s or out_w % s:
        raise ValueError(f"sub-pixel transposed convolution needs output sizes divisible by {s}, got {out_h}x{out_w}")
    taps = [(a, t, (a + t - lo) // s) for a in range(s) for t in range(k) if (a + t - lo) % s == 0]
    dmin, dmax = min(d for *_, d in taps), max(d for *_, d in taps)
    flipped = jnp.flip(kernel, axis=(0, 1))
    phases = jnp.zeros((dmax - dmin + 1, dmax - dmin + 1, cin, s, s, cout), kernel.dtype)
    for a, ty, dy in taps:
        for b, tx, dx in taps:
            phases = phases.at[dy - dmin, dx - dmin, :, a, b, :].set(flipped[ty, tx])
    mh, mw = out_h // s, out_w // s
    y = jax.lax.conv_general_dilated(
        x, phases.reshape(*phases.shape[:3], s * s * cout), (1, 1),
        [(-dmin, mh - h + dmax), (-dmin, mw - w + dmax)], dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(n, mh, mw, s, s, cout).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, mh * s, mw * s, cout)


class ConvTranspose(Conv):
    """`nn.ConvTranspose2d(k, stride, padding, output_padding)` (dilation 1).

    The kernel is stored HWIO as PyTorch's (in, out, kh, kw) transposed, i.e. the
    *scatter* kernel. A transposed convolution equals a convolution of the
    `stride`-dilated input with the spatially flipped kernel, padded by
    (k-1-padding, k-1-padding+output_padding); on the CPU it is computed per output
    phase instead (`conv_transpose_subpixel`, see CPU_CONV_REWRITES).
    """

    kernel_size: int = 3
    stride: int = 2
    padding: int = 1
    output_padding: int = 1

    def _convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        extra = self.kernel_size + self.output_padding - 2 * self.padding  # out = (in - 1) * stride + extra
        if cpu_conv_rewrites_enabled() and extra % self.stride == 0:  # output divisible into phases
            return conv_transpose_subpixel(x, kernel, self.stride, self.padding, self.output_padding)
        lo = self.kernel_size - 1 - self.padding
        return jax.lax.conv_general_dilated(
            x, jnp.flip(kernel, axis=(0, 1)), window_strides=(1, 1), padding=[(lo, lo + self.output_padding)] * 2,
            lhs_dilation=(self.stride, self.stride), dimension_numbers=("NHWC", "HWIO", "NHWC"))


class BatchNorm(nn.Module):
    """`nn.BatchNorm2d` (eps 1e-5, momentum 0.1) with PyTorch's update rule.

    Flax's BatchNorm updates the running variance with the biased batch variance;
    PyTorch uses the unbiased one (n / (n - 1)), which is what makes a converted
    model's statistics evolve as the official one's. Under `jax.jit` the mean over
    the batch axis is over the *global* batch, so on a sharded batch the statistics
    are synchronised across devices (the official DataParallel code normalised each
    GPU's slice separately).
    """

    momentum: float = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    scale_init: Any = nn.initializers.ones

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        xf = x.astype(stat_dtype(self.dtype))
        if train:
            mean = xf.mean(axis=(0, 1, 2))
            var = jnp.square(xf - mean).mean(axis=(0, 1, 2))
            if not self.is_initializing():
                n = x.shape[0] * x.shape[1] * x.shape[2]
                unbiased = var * (n / max(n - 1, 1))
                ra_mean.value = ((1 - self.momentum) * ra_mean.value + self.momentum * mean).astype(jnp.float32)
                ra_var.value = ((1 - self.momentum) * ra_var.value + self.momentum * unbiased).astype(jnp.float32)
        else:
            mean, var = ra_mean.value, ra_var.value
        mul = scale * jax.lax.rsqrt(var + self.epsilon)
        y = xf * mul + (bias - mean * mul)
        return y.astype(self.dtype)


def instance_norm(x: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """`nn.InstanceNorm2d(c)`: no affine, no running statistics, biased variance."""
    xf = x.astype(stat_dtype(x.dtype))
    mean = xf.mean(axis=(1, 2), keepdims=True)
    var = jnp.square(xf - mean).mean(axis=(1, 2), keepdims=True)
    return ((xf - mean) * jax.lax.rsqrt(var + epsilon)).astype(x.dtype)


def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """`nn.PReLU()` with one scalar slope."""
    return jnp.where(x >= 0, x, alpha.astype(x.dtype) * x)


class UpProjection(nn.Module):
    """The official `_UpProjection` (Laina et al.): resize, then two conv branches.

    Used by both the structure decoder and the DSA decoder. Zero padding, no conv
    biases, as in the official module.
    """

    features: int
    align_corners: bool = True  # the official F.interpolate setting
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, size: Sequence[int], train: bool) -> jax.Array:
        x = resize_bilinear(x, size, self.align_corners)
        conv = lambda k, name: Conv(self.features, k, padding=k // 2, use_bias=False, dtype=self.dtype, name=name)
        bn = lambda name: BatchNorm(dtype=self.dtype, name=name)
        branch1 = nn.relu(bn("bn1")(conv(5, "conv1")(x), train))
        branch1 = bn("bn1_2")(conv(3, "conv1_2")(branch1), train)
        branch2 = bn("bn2")(conv(5, "conv2")(x), train)
        return nn.relu(branch1 + branch2)


def check_image(x: jax.Array, channels: int, what: str) -> None:
    """Raise ValueError for inputs the official network cannot take.

    DepthNet pools four times and its inception blocks reflect-pad by 5 at 1/16
    scale, so H and W must be multiples of 16 and at least 96.
    """
    if x.ndim != 4:
        raise ValueError(f"{what}: expected an NHWC batch (4 dimensions), got shape {tuple(x.shape)}.")
    _, h, w, c = x.shape
    if c != channels:
        raise ValueError(f"{what}: expected {channels} channel(s) (NHWC), got shape {tuple(x.shape)}.")
    if h % 16 or w % 16 or h < 96 or w < 96:
        raise ValueError(
            f"{what}: image size {h}x{w} (HxW) is not accepted; height and width must each be a "
            "multiple of 16 and at least 96 (e.g. 96x160, 192x640, 384x1280)."
        )
