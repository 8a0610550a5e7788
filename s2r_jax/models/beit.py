"""BEiT-L/16 (timm 0.6 `beit_large_patch16_384`) as MiDaS 3.1 runs it, in Flax (NHWC input).

ZoeDepth's relative-depth backbone. What distinguishes it from a plain ViT, each reproduced
as the official code computes it:
- no absolute position embedding; every block has its own *relative position bias* table
  learnt for the 24x24 patch grid of 384x384 inputs. MiDaS's BEiT patch runs any grid
  (H/16, W/16): the table's (2*24-1)^2 part is resized bilinearly (half-pixel centres, as
  `F.interpolate(mode='bilinear')`) to (2*gh-1, 2*gw-1) and indexed as timm's
  `gen_relative_position_index` does; its last three rows (cls->token, token->cls,
  cls->cls) are kept;
- attention with bias on q and v only (k's is a zero buffer), pre-norm blocks with layer
  scale (gamma_1, gamma_2), exact (erf) GELU, LayerNorm eps 1e-6;
- the final norm is an identity (timm's mean-pooling variant keeps its norm in the
  classifier's `fc_norm`, which depth never uses and we do not build).

Parameters are float32; `dtype` is the computation dtype (bf16 option). LayerNorm
statistics and the attention softmax are computed in at least float32.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models.layers import Dtype, resize_bilinear, stat_dtype

PATCH_SIZE = 16
PRETRAIN_GRID = (24, 24)  # 384 / 16: the grid the bias tables were learnt for
LAYER_NORM_EPS = 1e-6     # timm Beit: partial(nn.LayerNorm, eps=1e-6)


@functools.lru_cache(maxsize=None)
def relative_position_index(grid: tuple[int, int]) -> np.ndarray:
    """timm's `gen_relative_position_index(grid)`: (N+1, N+1) rows of the bias table, N = gh*gw.

    Token pairs index the (2gh-1) x (2gw-1) table by their (dy, dx) offset; the cls token's
    row, column and corner take the table's last three rows."""
    gh, gw = grid
    n_rel = (2 * gh - 1) * (2 * gw - 1)
    coords = np.stack(np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")).reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]
    index = np.zeros((gh * gw + 1,) * 2, np.int32)
    index[1:, 1:] = (rel[0] + gh - 1) * (2 * gw - 1) + (rel[1] + gw - 1)
    index[0, :] = n_rel
    index[:, 0] = n_rel + 1
    index[0, 0] = n_rel + 2
    return index


def relative_position_bias(table: jax.Array, pretrain_grid: Sequence[int], grid: Sequence[int]) -> jax.Array:
    """The (heads, N+1, N+1) attention bias for a `grid` of patches from a table learnt on
    `pretrain_grid` (MiDaS's `_get_rel_pos_bias`).

    Official quirk kept: MiDaS reshapes the table's grid part as (2*Ww-1, 2*Wh-1) before
    treating it as (height, width); identical for the square 24x24 pre-training grid.
    """
    old_h, old_w = 2 * pretrain_grid[0] - 1, 2 * pretrain_grid[1] - 1
    new_h, new_w = 2 * grid[0] - 1, 2 * grid[1] - 1
    n_old = old_h * old_w
    sub = table[:n_old].reshape(1, old_w, old_h, -1)  # NHWC, as the official NCHW reshape+permute
    sub = resize_bilinear(sub, (new_h, new_w), align_corners=False).reshape(new_h * new_w, -1)
    new_table = jnp.concatenate([sub, table[n_old:]], axis=0)
    index = relative_position_index(tuple(int(g) for g in grid))
    bias = jnp.take(new_table, index.reshape(-1), axis=0).reshape(*index.shape, -1)
    return jnp.transpose(bias, (2, 0, 1))


def layer_norm(eps: float, dtype: Dtype, name: str) -> nn.LayerNorm:
    """`nn.LayerNorm(eps)`: two-pass variance (as PyTorch), statistics in at least float32."""
    return nn.LayerNorm(epsilon=eps, dtype=dtype, use_fast_variance=False, name=name)


def dense(features: int, dtype: Dtype, name: str, use_bias: bool = True) -> nn.Dense:
    """`nn.Linear`: float32 parameters, kernel (in, out) = the torch weight transposed."""
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name)


class BeitAttention(nn.Module):
    """timm's BEiT `Attention` with MiDaS's any-grid relative position bias."""

    num_heads: int
    pretrain_grid: Sequence[int] = PRETRAIN_GRID
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, grid: Sequence[int]) -> jax.Array:
        b, n, dim = x.shape
        head_dim = dim // self.num_heads
        qkv = dense(3 * dim, self.dtype, "qkv", use_bias=False)(x)
        q_bias = self.param("q_bias", nn.initializers.zeros, (dim,), jnp.float32)
        v_bias = self.param("v_bias", nn.initializers.zeros, (dim,), jnp.float32)
        qkv = qkv + jnp.concatenate([q_bias, jnp.zeros_like(q_bias), v_bias]).astype(qkv.dtype)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, head_dim), 2, 0)
        n_rel = (2 * self.pretrain_grid[0] - 1) * (2 * self.pretrain_grid[1] - 1) + 3
        table = self.param("relative_position_bias_table", nn.initializers.zeros, (n_rel, self.num_heads),
                           jnp.float32)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * head_dim ** -0.5, k)
        logits = logits.astype(stat_dtype(self.dtype)) + relative_position_bias(table, self.pretrain_grid, grid)
        attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", attn, v).reshape(b, n, dim)
        return dense(dim, self.dtype, "proj")(out)


class BeitBlock(nn.Module):
    """Pre-norm transformer block with layer scale: x += g1 * attn(ln1(x)); x += g2 * mlp(ln2(x))."""

    num_heads: int
    mlp_ratio: float = 4.0
    pretrain_grid: Sequence[int] = PRETRAIN_GRID
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, grid: Sequence[int]) -> jax.Array:
        dim = x.shape[-1]
        gamma_1 = self.param("gamma_1", nn.initializers.constant(0.1), (dim,), jnp.float32)
        gamma_2 = self.param("gamma_2", nn.initializers.constant(0.1), (dim,), jnp.float32)
        y = layer_norm(LAYER_NORM_EPS, self.dtype, "norm1")(x)
        y = BeitAttention(self.num_heads, self.pretrain_grid, self.dtype, name="attn")(y, grid)
        x = x + gamma_1.astype(self.dtype) * y
        y = layer_norm(LAYER_NORM_EPS, self.dtype, "norm2")(x)
        y = dense(int(dim * self.mlp_ratio), self.dtype, "fc1")(y)
        y = dense(dim, self.dtype, "fc2")(nn.gelu(y, approximate=False))
        return x + gamma_2.astype(self.dtype) * y


class PatchEmbed(nn.Module):
    """The 16x16 stride-16 patch convolution as a matrix product over patches; kernel HWIO
    as the project's convolutions, (B, H, W, 3) -> (B, N, C) in row-major patch order."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        b, h, w, c = image.shape
        p = PATCH_SIZE
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, c, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        patches = image.astype(self.dtype).reshape(b, h // p, p, w // p, p, c)
        y = jnp.einsum("bhpwqc,pqco->bhwo", patches, kernel.astype(self.dtype))
        return y.reshape(b, (h // p) * (w // p), self.features) + bias.astype(self.dtype)


class Beit(nn.Module):
    """Patch embedding, cls token and `depth` blocks; returns the token sequences (B, 1+N, C)
    after the blocks in `taps` (MiDaS reads blocks 5, 11, 17, 23 of BEiT-L).

    Defaults are BEiT-L/16: width 1024, 24 blocks, 16 heads. H and W must be multiples of 16.
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    taps: Sequence[int] = (5, 11, 17, 23)
    pretrain_grid: Sequence[int] = PRETRAIN_GRID
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image: jax.Array) -> list[jax.Array]:
        b, h, w, _ = image.shape
        if h % PATCH_SIZE or w % PATCH_SIZE:
            raise ValueError(f"BEiT input {h}x{w} (HxW): height and width must be multiples of {PATCH_SIZE}")
        grid = (h // PATCH_SIZE, w // PATCH_SIZE)
        x = PatchEmbed(self.embed_dim, dtype=self.dtype, name="patch_embed")(image)
        cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.embed_dim), jnp.float32)
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (b, 1, self.embed_dim)), x], axis=1)
        outputs = []
        for i in range(self.depth):  # XLA drops the blocks after the last tap: nothing reads them
            x = BeitBlock(self.num_heads, pretrain_grid=self.pretrain_grid, dtype=self.dtype, name=f"block{i}")(x, grid)
            outputs.append(x)
        return [outputs[i] for i in self.taps]
