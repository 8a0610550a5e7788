"""ZoeDepth's metric bins module (Bhat et al. 2023, Sec. 3), NHWC, and ZoeD-NK's router.

Depth is the expectation of per-pixel bin centres under a per-pixel distribution:
- a *seed bin regressor* on the bottleneck predicts 64 bin centres per pixel, either
  `softplus` (unbounded centres) or `normed` (widths normalised to sum to the depth range,
  centres of the cumulated widths: bounded in [min_depth, max_depth]);
- *projectors* embed each decoder feature (128 channels);
- an *attractor layer* per decoder scale predicts attractor points and moves every bin
  centre towards them: c += agg_i f(a_i - c) with the inverse attractor f(d) = d / (1 +
  alpha |d|^gamma) or the exponential one f(d) = d exp(-alpha |d|^gamma), agg mean or sum;
- the *conditional log-binomial* turns the MiDaS output features and the last embedding
  into a unimodal distribution over the bins: p and a temperature t per pixel, then
  softmax_k(log C(K-1, k) + k log p + (K-1-k) log(1-p)) / t).

Official quirks, reproduced by default, each with an option (`docs/zoedepth.md`):
- `attractor_official_strength`: the official layers call the distance function without
  their configured alpha/gamma (1000/2 in every released config), so it runs with its
  defaults, alpha 300 and gamma 2. False uses the configured ones.
- `attractor_normalize_points` (normed bins only): the official `AttractorLayer` computes
  normalised attractor points A / (A_0 + A_1) and then discards them, using the raw A_0.
  True uses the normalised points.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models.beit import dense, layer_norm
from s2r_jax.models.layers import Conv, Dtype, resize_bilinear

# The official distance functions' defaults, used whatever the config says (quirk above).
OFFICIAL_ATTRACTOR_ALPHA = 300.0
OFFICIAL_ATTRACTOR_GAMMA = 2
BIN_TYPES = ("softplus", "normed")
ATTRACTOR_TYPES = ("inv", "exp")
ATTRACTOR_KINDS = ("mean", "sum")


def _f32(x: jax.Array) -> jax.Array:
    """The bin arithmetic (normalisation, cumulated widths, logs) runs in at least float32."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


class MLP1x1(nn.Module):
    """1x1 conv -> activation -> 1x1 conv: the official `_net`/`mlp` Sequentials."""

    hidden: int
    features: int
    activation: str = "relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv(self.hidden, 1, dtype=self.dtype, name="conv1")(x)
        x = nn.relu(x) if self.activation == "relu" else nn.gelu(x, approximate=False)
        return Conv(self.features, 1, dtype=self.dtype, name="conv2")(x)


class SeedBinRegressor(nn.Module):
    """Bottleneck -> (n_bins) centres in metres: `SeedBinRegressorUnnormed` (softplus) or
    `SeedBinRegressor` (normed widths, bounded centres)."""

    n_bins: int
    hidden: int
    bin_type: str = "softplus"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = _f32(MLP1x1(self.hidden, self.n_bins, dtype=self.dtype, name="mlp")(x))
        if self.bin_type == "softplus":
            return jax.nn.softplus(y)
        widths = nn.relu(y) + 1e-3
        widths = (self.max_depth - self.min_depth) * (widths / widths.sum(-1, keepdims=True))
        # edges: min_depth, then cumulated widths (the official pads min_depth in front, then cumsums)
        edges = jnp.cumsum(jnp.concatenate([jnp.full_like(widths[..., :1], self.min_depth), widths], -1), -1)
        return 0.5 * (edges[..., :-1] + edges[..., 1:])


class Projector(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv to the bin embedding."""

    features: int
    hidden: int = 128
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return MLP1x1(self.hidden, self.features, dtype=self.dtype, name="mlp")(x)


def attractor_shift(points: jax.Array, centres: jax.Array, attractor_type: str, alpha: float, gamma: float,
                    kind: str) -> jax.Array:
    """sum/mean over attractors a of f(a - c) for every bin centre c: (.., A), (.., K) -> (.., K)."""
    dx = points[..., :, None] - centres[..., None, :]
    gamma = int(gamma) if float(gamma).is_integer() else gamma  # integer powers of negative dx stay real
    if attractor_type == "inv":
        shift = dx / (1 + alpha * dx ** gamma)  # torch `dx.pow(gamma)`: signed for odd gamma
    else:
        shift = jnp.exp(-alpha * jnp.abs(dx) ** gamma) * dx
    return shift.mean(-2) if kind == "mean" else shift.sum(-2)


class AttractorLayer(nn.Module):
    """Moves the previous scale's bin centres (resized to this scale) towards this scale's
    attractor points predicted from embedding + resized previous embedding.

    Returns (centres to pass on, centres in metres): identical for softplus bins
    (`AttractorLayerUnnormed`); for normed bins the first are in [0, 1] units of the depth
    range, the second scaled to metres, sorted and clipped to the range (`AttractorLayer`).
    """

    n_attractors: int
    hidden: int = 128
    bin_type: str = "softplus"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    alpha: float = OFFICIAL_ATTRACTOR_ALPHA
    gamma: float = OFFICIAL_ATTRACTOR_GAMMA
    attractor_type: str = "inv"
    kind: str = "mean"
    normalize_points: bool = False  # normed bins: official False (see module docstring)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, embedding: jax.Array, prev_centres: jax.Array, prev_embedding: jax.Array):
        size = embedding.shape[1:3]
        x = embedding + resize_bilinear(prev_embedding, size, align_corners=True).astype(embedding.dtype)
        normed = self.bin_type == "normed"
        a = _f32(MLP1x1(self.hidden, self.n_attractors * (2 if normed else 1), dtype=self.dtype, name="mlp")(x))
        if normed:
            a = (nn.relu(a) + 1e-3).reshape(*a.shape[:-1], self.n_attractors, 2)
            points = a[..., 0] / a.sum(-1) if self.normalize_points else a[..., 0]
        else:
            points = jax.nn.softplus(a)
        centres = resize_bilinear(_f32(prev_centres), size, align_corners=True)
        centres = centres + attractor_shift(points, centres, self.attractor_type, self.alpha, self.gamma, self.kind)
        if not normed:
            return centres, centres
        metres = (self.max_depth - self.min_depth) * centres + self.min_depth
        metres = jnp.clip(jnp.sort(metres, axis=-1), self.min_depth, self.max_depth)
        return centres, metres


def log_binomial_constants(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """k = 0..K-1 and Stirling's log C(K-1, k) as the official `log_binom` computes it (eps 1e-7)."""
    k = np.arange(n_classes, dtype=np.float32) + np.float32(1e-7)
    n = np.float32(n_classes - 1) + np.float32(1e-7)
    log_c = n * np.log(n) - k * np.log(k) - (n - k) * np.log(n - k + np.float32(1e-7))
    return np.arange(n_classes, dtype=np.float32), log_c.astype(np.float32)


class ConditionalLogBinomial(nn.Module):
    """(features, condition) -> (B, H, W, n_classes) probabilities, a softmax-tempered binomial
    in log space; `bottleneck_factor` 2 (ZoeD-N/K) or 4 (ZoeD-NK)."""

    n_classes: int
    bottleneck_factor: int = 2
    min_temp: float = 0.0212
    max_temp: float = 50.0
    p_eps: float = 1e-4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
        x = jnp.concatenate([x.astype(self.dtype), condition.astype(self.dtype)], axis=-1)
        pt = MLP1x1(x.shape[-1] // self.bottleneck_factor, 4, activation="gelu", dtype=self.dtype, name="mlp")(x)
        pt = jax.nn.softplus(_f32(pt)) + self.p_eps
        p = pt[..., 0] / (pt[..., 0] + pt[..., 1])
        t = pt[..., 2] / (pt[..., 2] + pt[..., 3])
        t = ((self.max_temp - self.min_temp) * t + self.min_temp)[..., None]
        k, log_c = log_binomial_constants(self.n_classes)
        eps = 1e-4
        log_p = jnp.log(jnp.clip(p, eps, 1))[..., None]
        log_q = jnp.log(jnp.clip(1 - p, eps, 1))[..., None]
        y = log_c + k * log_p + (self.n_classes - 1 - k) * log_q
        return jax.nn.softmax(y / t, axis=-1)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """The patch transformer's encoding: [sin(p w_i), cos(p w_i)] (concatenated, not
    interleaved), w_i = exp(-2i log(10000) / dim), in float32 as the official code."""
    position = np.arange(length, dtype=np.float32)[:, None]
    div = np.exp(np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / dim)).astype(np.float32)
    angle = (position * div[None, :]).astype(np.float32)
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


class TransformerEncoderLayer(nn.Module):
    """`nn.TransformerEncoderLayer(d, heads, 1024)` in eval: post-norm, ReLU, eps 1e-5."""

    num_heads: int = 4
    ffn_dim: int = 1024
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, s, d = x.shape
        hd = d // self.num_heads
        q, k, v = jnp.split(dense(3 * d, self.dtype, "in_proj")(x).reshape(b, s, 3 * self.num_heads, hd), 3, axis=2)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * hd ** -0.5, k)
        attn = jax.nn.softmax(_f32(logits), axis=-1).astype(v.dtype)
        y = dense(d, self.dtype, "out_proj")(jnp.einsum("bhqk,bkhd->bqhd", attn, v).reshape(b, s, d))
        x = layer_norm(1e-5, self.dtype, "norm1")(x + y)
        y = dense(d, self.dtype, "linear2")(nn.relu(dense(self.ffn_dim, self.dtype, "linear1")(x)))
        return layer_norm(1e-5, self.dtype, "norm2")(x + y)


class DomainRouter(nn.Module):
    """ZoeD-NK's `PatchTransformerEncoder(C, patch 1, 128, class token)` + `mlp_classifier`:
    bottleneck (B, h, w, C) -> domain logits (B, n_domains) (NYU first, then KITTI)."""

    embedding_dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 1024
    n_domains: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, bottleneck: jax.Array) -> jax.Array:
        b, h, w, _ = bottleneck.shape
        e = self.embedding_dim
        x = Conv(e, 1, dtype=self.dtype, name="embedding")(bottleneck).reshape(b, h * w, e)
        x = jnp.concatenate([jnp.zeros((b, 1, e), x.dtype), x], axis=1)  # the class token: zeros
        x = x + sinusoidal_positions(h * w + 1, e).astype(x.dtype)
        for i in range(self.num_layers):
            x = TransformerEncoderLayer(self.num_heads, self.ffn_dim, self.dtype, name=f"layer{i}")(x)
        y = nn.relu(dense(e, self.dtype, "classifier1")(x[:, 0]))
        return _f32(dense(self.n_domains, self.dtype, "classifier2")(y))


class MetricBinsHead(nn.Module):
    """One metric head: seed bin regressor, attractor layers and conditional log-binomial.

    Takes the bottleneck, the seed embedding, the projected decoder embeddings (coarse to
    fine) and the last MiDaS features; returns metric depth (B, H, W, 1), the final bin
    centres and the bin probabilities (B, H, W, n_bins) at the last features' size.
    The projectors are not part of it: ZoeD-NK's two heads share them.
    """

    n_bins: int = 64
    bin_type: str = "softplus"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    seed_hidden: int = 256
    n_attractors: Sequence[int] = (16, 8, 4, 1)
    attractor_hidden: int = 128
    attractor_alpha: float = 1000.0
    attractor_gamma: float = 2.0
    attractor_type: str = "inv"
    attractor_kind: str = "mean"
    attractor_official_strength: bool = True
    attractor_normalize_points: bool = False
    bottleneck_factor: int = 2
    min_temp: float = 0.0212
    max_temp: float = 50.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, bottleneck: jax.Array, seed_embedding: jax.Array, embeddings: Sequence[jax.Array],
                 last_features: jax.Array) -> dict:
        if self.bin_type not in BIN_TYPES:
            raise ValueError(f"bin_type must be one of {BIN_TYPES}, got {self.bin_type!r}")
        if self.attractor_type not in ATTRACTOR_TYPES or self.attractor_kind not in ATTRACTOR_KINDS:
            raise ValueError(f"attractor_type must be one of {ATTRACTOR_TYPES} and attractor_kind one of "
                             f"{ATTRACTOR_KINDS}, got {self.attractor_type!r}, {self.attractor_kind!r}")
        if self.attractor_official_strength:
            alpha, gamma = OFFICIAL_ATTRACTOR_ALPHA, OFFICIAL_ATTRACTOR_GAMMA
        else:
            alpha, gamma = self.attractor_alpha, self.attractor_gamma
        centres = SeedBinRegressor(self.n_bins, self.seed_hidden, self.bin_type, self.min_depth, self.max_depth,
                                   self.dtype, name="seed_bin_regressor")(bottleneck)
        if self.bin_type == "normed":
            centres = (centres - self.min_depth) / (self.max_depth - self.min_depth)
        prev_embedding = seed_embedding
        for i, (n_att, embedding) in enumerate(zip(self.n_attractors, embeddings)):
            centres, metres = AttractorLayer(
                n_att, self.attractor_hidden, self.bin_type, self.min_depth, self.max_depth, alpha, gamma,
                self.attractor_type, self.attractor_kind, self.attractor_normalize_points, self.dtype,
                name=f"attractor{i}")(embedding, centres, prev_embedding)
            prev_embedding = embedding
        size = last_features.shape[1:3]
        embedding = resize_bilinear(prev_embedding, size, align_corners=True)
        probs = ConditionalLogBinomial(self.n_bins, self.bottleneck_factor, self.min_temp, self.max_temp,
                                       dtype=self.dtype, name="conditional_log_binomial")(last_features, embedding)
        metres = resize_bilinear(metres, size, align_corners=True)
        depth = jnp.sum(probs * metres, axis=-1, keepdims=True)
        return {"metric_depth": depth, "bin_centers": metres, "probs": probs}
