"""Structure-encoder pretraining networks: image translation that separates structure
from style (the stage the official release left out).

S2R-DepthNet's `Struct_Encoder` is MUNIT's content encoder layer for layer (Huang et
al., "Multimodal Unsupervised Image-to-Image Translation", 2018), so the rest follows
MUNIT: per domain a style encoder (strided convs, global average pool, an 8-d code)
and a decoder (residual blocks with AdaIN whose parameters an MLP computes from the
style code, nearest upsampling with LayerNorm convs, a tanh output), and per domain a
multi-scale LSGAN discriminator. One structure encoder is *shared* by both domains —
the official names it `Shared_Struct_Encoder` — which is what makes its code
domain-invariant. Activations are LeakyReLU(0.2), as in the released encoder.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import Conv, Dtype, instance_norm, stat_dtype, upsample_nearest2
from s2r_jax.models.structure_encoder import StructureEncoder

DOMAINS = ("a", "b")  # a: synthetic images, b: the style domain


def _lrelu(x):
    return nn.leaky_relu(x, 0.2)


class StyleEncoder(nn.Module):
    """MUNIT StyleEncoder(n_downsample=4, dim=64, style_dim=8, norm='none'): (N, H, W, 3) -> (N, style_dim)."""

    dim: int = 64
    style_dim: int = 8
    n_downsample: int = 4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = _lrelu(Conv(self.dim, 7, padding=3, dtype=self.dtype, name="conv0", padding_mode="reflect")(x))
        dim = self.dim
        for i in range(self.n_downsample):
            dim = dim * 2 if i < 2 else dim
            x = _lrelu(Conv(dim, 4, 2, 1, dtype=self.dtype, name=f"down{i}", padding_mode="reflect")(x))
        x = x.mean(axis=(1, 2), keepdims=True)
        return Conv(self.style_dim, 1, dtype=self.dtype, name="out")(x)[:, 0, 0, :]


def layer_norm(x, gamma, beta, epsilon=1e-5):
    """MUNIT's LayerNorm: per-sample mean and *unbiased* std over (H, W, C), (x - m) / (std + eps)."""
    xf = x.astype(stat_dtype(x.dtype))
    n = x.shape[1] * x.shape[2] * x.shape[3]
    mean = xf.mean(axis=(1, 2, 3), keepdims=True)
    std = jnp.sqrt(jnp.square(xf - mean).sum(axis=(1, 2, 3), keepdims=True) / (n - 1))
    return (((xf - mean) / (std + epsilon)) * gamma + beta).astype(x.dtype)


class StyleDecoder(nn.Module):
    """MUNIT Decoder(n_upsample=2, n_res=4, dim=256, res_norm='adain') with its style MLP.

    (structure code (N, h, w, dim), style (N, style_dim)) -> image (N, 4h, 4w, 3) in [-1, 1].
    """

    dim: int = 256
    n_res: int = 4
    n_upsample: int = 2
    mlp_dim: int = 256
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, code, style):
        dim = self.dim
        n_adain = 2 * self.n_res  # two AdaIN layers per residual block
        h = style
        for i in range(2):
            h = nn.relu(nn.Dense(self.mlp_dim, dtype=self.dtype, name=f"mlp{i}")(h))
        adain = nn.Dense(2 * dim * n_adain, dtype=self.dtype, name="mlp_out")(h)
        adain = adain.reshape(adain.shape[0], n_adain, 2, 1, 1, dim)  # (mean, std) per AdaIN layer

        def adain_norm(x, k):
            return instance_norm(x) * adain[:, k, 1].astype(x.dtype) + adain[:, k, 0].astype(x.dtype)

        x = code
        for i in range(self.n_res):
            y = Conv(dim, 3, padding=1, dtype=self.dtype, name=f"res{i}_conv1", padding_mode="reflect")(x)
            y = _lrelu(adain_norm(y, 2 * i))
            y = Conv(dim, 3, padding=1, dtype=self.dtype, name=f"res{i}_conv2", padding_mode="reflect")(y)
            x = x + adain_norm(y, 2 * i + 1)
        for i in range(self.n_upsample):
            dim //= 2
            x = Conv(dim, 5, padding=2, dtype=self.dtype, name=f"up{i}", padding_mode="reflect")(upsample_nearest2(x))
            gamma = self.param(f"up{i}_ln_gamma", nn.initializers.uniform(1.0), (dim,), jnp.float32)
            beta = self.param(f"up{i}_ln_beta", nn.initializers.zeros, (dim,), jnp.float32)
            x = _lrelu(layer_norm(x, gamma, beta))
        x = Conv(3, 7, padding=3, dtype=self.dtype, name="out", padding_mode="reflect")(x)
        return jnp.tanh(x.astype(stat_dtype(self.dtype)))


class StructureTranslator(nn.Module):
    """The generator side: the shared structure encoder, and per domain a style encoder
    and a decoder. `__call__` runs MUNIT's generator pass on a pair of batches."""

    encoder_dim: int = 64
    style_dim: int = 8
    mlp_dim: int = 256
    decoder_res_blocks: int = 4  # MUNIT's gen.n_res
    dtype: Dtype = jnp.float32

    def setup(self):
        self.struct_encoder = StructureEncoder(self.encoder_dim, dtype=self.dtype)
        self.style_a = StyleEncoder(self.encoder_dim, self.style_dim, dtype=self.dtype)
        self.style_b = StyleEncoder(self.encoder_dim, self.style_dim, dtype=self.dtype)
        self.decoder_a = StyleDecoder(4 * self.encoder_dim, self.decoder_res_blocks, mlp_dim=self.mlp_dim,
                                      dtype=self.dtype)
        self.decoder_b = StyleDecoder(4 * self.encoder_dim, self.decoder_res_blocks, mlp_dim=self.mlp_dim,
                                      dtype=self.dtype)

    def encode(self, x, domain: str):
        style = self.style_a(x) if domain == "a" else self.style_b(x)
        return self.struct_encoder(x), style

    def decode(self, code, style, domain: str):
        return self.decoder_a(code, style) if domain == "a" else self.decoder_b(code, style)

    def __call__(self, x_a, x_b, s_a, s_b):
        """Reconstructions, translations (a's structure in b's style and vice versa) and their
        re-encodings and cycles. `s_a`, `s_b`: random style codes (N, style_dim)."""
        c_a, s_a_own = self.encode(x_a, "a")
        c_b, s_b_own = self.encode(x_b, "b")
        x_ab = self.decode(c_a, s_b, "b")
        x_ba = self.decode(c_b, s_a, "a")
        c_b_re, s_a_re = self.encode(x_ba, "a")
        c_a_re, s_b_re = self.encode(x_ab, "b")
        return {
            "c_a": c_a, "c_b": c_b, "s_a_own": s_a_own, "s_b_own": s_b_own,
            "x_a_recon": self.decode(c_a, s_a_own, "a"), "x_b_recon": self.decode(c_b, s_b_own, "b"),
            "x_ab": x_ab, "x_ba": x_ba, "c_a_re": c_a_re, "c_b_re": c_b_re, "s_a_re": s_a_re, "s_b_re": s_b_re,
            "x_aba": self.decode(c_a_re, s_a_own, "a"), "x_bab": self.decode(c_b_re, s_b_own, "b"),
        }

    def translations(self, x_a, x_b, s_a, s_b):
        """Only (x_ab, x_ba): what the discriminator update needs."""
        c_a, _ = self.encode(x_a, "a")
        c_b, _ = self.encode(x_b, "b")
        return self.decode(c_a, s_b, "b"), self.decode(c_b, s_a, "a")

    def translate(self, x_a, x_b):
        """a's structure rendered in b's (own) style: the check that structure survives a style change."""
        c_a, _ = self.encode(x_a, "a")
        _, s_b = self.encode(x_b, "b")
        return self.decode(c_a, s_b, "b")


def _downsample(x):
    """AvgPool2d(3, stride 2, padding 1, count_include_pad=False), between discriminator scales."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    total = jax.lax.reduce_window(jnp.pad(x, pad), 0.0, jax.lax.add, window, strides, "VALID")
    count = jax.lax.reduce_window(jnp.pad(jnp.ones_like(x[..., :1]), pad), 0.0, jax.lax.add, window, strides, "VALID")
    return total / count


class MultiScaleDiscriminator(nn.Module):
    """MUNIT MsImageDis(n_layer=4, dim=64, norm='none', activ='lrelu', num_scales=3): a list of
    patch logits, one per scale."""

    dim: int = 64
    n_layer: int = 4
    num_scales: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        outs = []
        for s in range(self.num_scales):
            h, dim = x, self.dim
            for i in range(self.n_layer):
                h = _lrelu(Conv(dim, 4, 2, 1, dtype=self.dtype, name=f"scale{s}_conv{i}", padding_mode="reflect")(h))
                dim *= 2
            outs.append(Conv(1, 1, dtype=self.dtype, name=f"scale{s}_out")(h).astype(stat_dtype(self.dtype)))
            x = _downsample(x)
        return outs


class Discriminators(nn.Module):
    """One multi-scale discriminator per domain."""

    dim: int = 64
    n_layer: int = 4     # MUNIT's dis.n_layer
    num_scales: int = 3  # MUNIT's dis.num_scales
    dtype: Dtype = jnp.float32

    def setup(self):
        self.dis_a = MultiScaleDiscriminator(self.dim, self.n_layer, self.num_scales, dtype=self.dtype)
        self.dis_b = MultiScaleDiscriminator(self.dim, self.n_layer, self.num_scales, dtype=self.dtype)

    def __call__(self, x, domain: str):
        return self.dis_a(x) if domain == "a" else self.dis_b(x)

    def both(self, x_a, x_b):
        return self.dis_a(x_a), self.dis_b(x_b)
