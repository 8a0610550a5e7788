"""ZoeDepth (Bhat et al., "ZoeDepth: Zero-shot Transfer by Combining Relative and Metric
Depth", 2023): MiDaS DPT-BEiT-L relative depth + metric bins heads, in Flax (NHWC).

- `ZoeDepth`: one metric head (released as ZoeD-N, NYUv2, softplus bins; ZoeD-K, KITTI,
  normed bins up to 80 m).
- `ZoeDepthNK`: two heads (NYU 10 m, KITTI 80 m) sharing the projectors, and a
  patch-transformer router on the bottleneck that picks the head.

Both take RGB in [0, 1] (B, H, W, 3) and do what the official `forward` does first
(`MidasCore.prep`): resize, keeping the aspect ratio, to a multiple of 32 near `img_size`
(bilinear, align_corners) and normalise with mean = std = 0.5. The outputs are at the
resized size; `infer` is the official `model.infer(x)`: padding, flip averaging and
bicubic resizing back to the input's size.

Official quirks reproduced by default, each with an option (docs/zoedepth.md):
- the attractors' distance ignores the configured alpha/gamma and uses 300/2
  (`attractor_official_strength=False`: use the configured ones);
- normed bins' attractors use the raw, not the normalised, attractor points
  (`attractor_normalize_points=True`);
- ZoeD-NK builds every attractor layer with 16 attractors whatever `n_attractors` says
  (`official_attractor_counts=False`: use `n_attractors`);
- ZoeD-NK routes a whole batch to one head by the vote summed over the batch
  (`route='image'`: route each image by its own logits, as the official model does
  for a batch of one; it computes both heads).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models.beit import PRETRAIN_GRID
from s2r_jax.models.layers import Conv, Dtype, resize_bicubic, resize_bilinear
from s2r_jax.models.metric_bins import DomainRouter, MetricBinsHead, Projector
from s2r_jax.models.midas_dpt import REASSEMBLE_FEATURES, MidasDPT

KINDS = ("n", "k", "nk")
# ZoeD-NK's bin configurations, in the router's logit order: (name, n_bins, min_depth, max_depth).
NK_BIN_CONF = (("nyu", 64, 1e-3, 10.0), ("kitti", 64, 1e-3, 80.0))
ROUTES = ("batch", "image")


def midas_input_size(height: int, width: int, img_size: Sequence[int], keep_aspect_ratio: bool = True,
                     multiple: int = 32) -> tuple[int, int]:
    """The size `MidasCore.prep` resizes an H x W image to: MiDaS's `Resize(resize_method=
    'minimal', ensure_multiple_of=32)`: the scale nearest to 1 of the two that fit
    `img_size`'s height or width (both, without `keep_aspect_ratio`), rounded to a multiple."""
    scale_h, scale_w = img_size[0] / height, img_size[1] / width
    if keep_aspect_ratio:
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h

    def constrain(x):
        return int(np.round(x / multiple) * multiple)  # numpy rounds halves to even, as the official

    return constrain(scale_h * height), constrain(scale_w * width)


class _ZoeDepthBase(nn.Module):
    """What both variants share: preparation, MiDaS, the bottleneck conv and the projectors."""

    img_size: Sequence[int] = (384, 512)  # network input size (official configs: N/NK 384x512, K 384x768)
    keep_aspect_ratio: bool = True  # official `force_keep_ar` of every released config
    resize_input: bool = True       # official `do_resize`; False: the caller gives multiples of 32
    # MiDaS DPT-BEiT-L/16 (official sizes; smaller for tests)
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    taps: Sequence[int] = (5, 11, 17, 23)
    pretrain_grid: Sequence[int] = PRETRAIN_GRID
    reassemble_features: Sequence[int] = REASSEMBLE_FEATURES
    features: int = 256
    midas_out_features: int = 32
    # metric head (official configs: zoedepth/config_zoedepth*.json)
    bin_embedding_dim: int = 128
    bin_type: str = "softplus"
    n_attractors: Sequence[int] = (16, 8, 4, 1)
    attractor_alpha: float = 1000.0
    attractor_gamma: float = 2.0
    attractor_type: str = "inv"
    attractor_kind: str = "mean"
    min_temp: float = 0.0212
    max_temp: float = 50.0
    attractor_official_strength: bool = True
    attractor_normalize_points: bool = False
    dtype: Dtype = jnp.float32

    def _projector_hidden(self) -> int:
        return 128  # ZoeDepth builds its projectors and attractors with the layers' default mlp_dim

    def _attractor_hidden(self) -> int:
        return 128

    def _shared_setup(self):
        self.midas = MidasDPT(self.embed_dim, self.depth, self.num_heads, tuple(self.taps), tuple(self.pretrain_grid),
                              tuple(self.reassemble_features), self.features, self.midas_out_features, self.dtype)
        self.conv2 = Conv(self.features, 1, dtype=self.dtype)
        self.seed_projector = Projector(self.bin_embedding_dim, self._projector_hidden(), self.dtype)
        self.projectors = [Projector(self.bin_embedding_dim, self._projector_hidden(), self.dtype) for _ in range(4)]

    def prepare(self, images: jax.Array) -> jax.Array:
        """RGB in [0, 1] -> the normalised network input (`MidasCore.prep`)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"ZoeDepth input: expected an NHWC RGB batch (B, H, W, 3), got shape {tuple(images.shape)}")
        x = images.astype(jnp.float32)
        if self.resize_input:
            x = resize_bilinear(x, midas_input_size(x.shape[1], x.shape[2], self.img_size, self.keep_aspect_ratio),
                                align_corners=True)
        return ((x - 0.5) / 0.5).astype(self.dtype)

    def _trunk(self, midas: dict):
        """MiDaS outputs -> (outputs so far, bottleneck, seed embedding, decoder embeddings)."""
        bottleneck = self.conv2(midas["l4_rn"])
        embeddings = [p(midas[name]) for p, name in zip(self.projectors, ("r4", "r3", "r2", "r1"))]
        out = {"rel_depth": midas["rel_depth"], **{f"feature_{k}": v for k, v in midas.items() if k != "rel_depth"}}
        return out, bottleneck, self.seed_projector(bottleneck), embeddings

    def __call__(self, images: jax.Array) -> dict:
        return self.heads(self.midas(self.prepare(images)))

    def _head(self, name: str, n_bins: int, min_depth: float, max_depth: float, seed_hidden: int,
              n_attractors: Sequence[int], bottleneck_factor: int) -> MetricBinsHead:
        return MetricBinsHead(
            n_bins, self.bin_type, min_depth, max_depth, seed_hidden, tuple(n_attractors), self._attractor_hidden(),
            self.attractor_alpha, self.attractor_gamma, self.attractor_type, self.attractor_kind,
            self.attractor_official_strength, self.attractor_normalize_points, bottleneck_factor, self.min_temp,
            self.max_temp, self.dtype, name=name)


class ZoeDepth(_ZoeDepthBase):
    """ZoeDepth with one metric head (ZoeD-N, ZoeD-K). Images (B, H, W, 3) in [0, 1] ->
    dict: `metric_depth` (B, h, w, 1) in metres at the network size (h, w), `bin_centers` and
    `probs` (B, h, w, n_bins), `rel_depth` (B, h, w) and the MiDaS features `feature_*`.

    Defaults are ZoeD-N's; ZoeD-K: `img_size=(384, 768), bin_type='normed', max_depth=80`.
    """

    n_bins: int = 64
    min_depth: float = 1e-3
    max_depth: float = 10.0  # official default; ZoeD-K as the official evaluation builds it: 80

    def setup(self):
        self._shared_setup()
        # 256: the official SeedBinRegressor's default mlp_dim; 2: ConditionalLogBinomial's bottleneck factor
        self.head = self._head("head", self.n_bins, self.min_depth, self.max_depth, 256, self.n_attractors, 2)

    def heads(self, midas: dict) -> dict:
        """Everything after MiDaS: its outputs (`MidasDPT`'s dict) -> the model's outputs."""
        out, bottleneck, seed_embedding, embeddings = self._trunk(midas)
        # the relative depth (ReLU output of MiDaS) joins the last features as a 33rd channel
        last = jnp.concatenate([out["feature_out_conv"], out["rel_depth"][..., None].astype(self.dtype)], axis=-1)
        out.update(self.head(bottleneck, seed_embedding, embeddings, last))
        return out


class ZoeDepthNK(_ZoeDepthBase):
    """ZoeD-NK: a router picks one of two metric heads (NYU 10 m, KITTI 80 m). Outputs as
    `ZoeDepth` plus `domain_logits` (B, 2) and `domain` (B,) the head used for each image
    (index into `bin_conf`); the last features are MiDaS's 32 channels only (no relative
    depth), as in the official model.
    """

    bin_conf: Sequence[Sequence] = NK_BIN_CONF
    official_attractor_counts: bool = True
    route: str = "batch"

    def _projector_hidden(self) -> int:
        return self.bin_embedding_dim // 2  # ZoeDepthNK's explicit mlp_dims

    def _attractor_hidden(self) -> int:
        return self.bin_embedding_dim

    def setup(self):
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, got {self.route!r}")
        if len({int(c[1]) for c in self.bin_conf}) != 1:
            raise ValueError(f"the heads of bin_conf must have the same number of bins, got {self.bin_conf}")
        self._shared_setup()
        self.router = DomainRouter(n_domains=len(self.bin_conf), dtype=self.dtype)
        # Official quirk: `Attractor(dim, n_attractors[i], ...)` passes the count as n_bins,
        # so every layer keeps the default of 16 attractors.
        counts = (16,) * len(self.n_attractors) if self.official_attractor_counts else tuple(self.n_attractors)
        self.domain_heads = [self._head(f"head_{name}", int(n_bins), float(lo), float(hi), self.bin_embedding_dim // 2,
                                 counts, 4) for name, n_bins, lo, hi in self.bin_conf]

    def heads(self, midas: dict) -> dict:
        """Everything after MiDaS: its outputs (`MidasDPT`'s dict) -> the model's outputs."""
        out, bottleneck, seed_embedding, embeddings = self._trunk(midas)
        logits = self.router(bottleneck)
        operands = (bottleneck, seed_embedding, embeddings, out["feature_out_conv"])
        if self.route == "batch" and not self.is_initializing():
            # Official: softmax of the batch-summed logits, argmax: one head for the batch.
            domain = jnp.argmax(jax.nn.softmax(logits.sum(0)), axis=-1)
            branches = [lambda mdl, *ops, i=i: mdl.domain_heads[i](*ops) for i in range(len(self.domain_heads))]
            out.update(nn.switch(domain, branches, self, *operands))
            out["domain"] = jnp.broadcast_to(domain, logits.shape[:1])
        else:  # per image (and at init, which must create every head's variables): all heads, then pick
            domain = jnp.argmax(logits, axis=-1)
            results = [head(*operands) for head in self.domain_heads]
            out.update({k: _pick(domain, [r[k] for r in results]) for k in results[0]})
            out["domain"] = domain
        out["domain_logits"] = logits
        return out


def zoedepth_config(kind: str) -> dict:
    """Keyword arguments of the released models (ZoeD_M12_{N,K,NK}.pt), as the official
    evaluation builds them. Every field not given is the class default (official configs).

    ZoeD-K: normed bins up to 80 m, as `get_config('zoedepth', 'eval', 'kitti')` builds it;
    its `infer` config (no dataset) would leave the class default of 10 m and cap every
    prediction at 10 m (docs/zoedepth.md).
    """
    configs = {
        "n": {"img_size": (384, 512), "bin_type": "softplus", "min_depth": 1e-3, "max_depth": 10.0},
        "k": {"img_size": (384, 768), "bin_type": "normed", "min_depth": 1e-3, "max_depth": 80.0},
        "nk": {"img_size": (384, 512), "bin_type": "softplus"},
    }
    if kind not in configs:
        raise ValueError(f"unknown ZoeDepth kind {kind!r}; expected one of {KINDS}")
    return dict(configs[kind])


def build_zoedepth(kind: str, **overrides) -> ZoeDepth | ZoeDepthNK:
    """The ZoeDepth model of `kind` ('n', 'k', 'nk') with the official configuration, fields
    in `overrides` replaced (e.g. dtype=jnp.bfloat16 or 'bfloat16', route='image', or a saved
    config)."""
    config = dict(zoedepth_config(kind), **overrides)
    if isinstance(config.get("dtype"), str):
        config["dtype"] = jnp.dtype(config["dtype"])
    for field in ("img_size", "taps", "pretrain_grid", "reassemble_features", "n_attractors"):
        if field in config:
            config[field] = tuple(int(v) for v in config[field])
    if "bin_conf" in config:
        config["bin_conf"] = tuple((str(n), int(b), float(lo), float(hi)) for n, b, lo, hi in config["bin_conf"])
    return (ZoeDepthNK if kind == "nk" else ZoeDepth)(**config)


def _pick(index: jax.Array, values: Sequence[jax.Array]) -> jax.Array:
    """values[index[b]][b] for every image b."""
    stacked = jnp.stack(values)
    return jnp.take_along_axis(stacked, index.reshape(1, -1, *([1] * (stacked.ndim - 2))), axis=0)[0]


def infer(model: nn.Module, variables, images: jax.Array, pad_input: bool = True, with_flip_aug: bool = True,
          fh: float = 3.0, fw: float = 3.0) -> jax.Array:
    """The official `model.infer(x)`: RGB (B, H, W, 3) in [0, 1] -> metric depth (B, H, W) at the
    input's size, in metres. Pure and jittable (with `model` static).

    Reflect-pads int(sqrt(H/2) * fh) rows and int(sqrt(W/2) * fw) columns on each side (the
    official fix for NYU's border artefacts), runs the model (which resizes to its size),
    resizes the depth back to the padded size with torch's bicubic (a = -0.75, half-pixel),
    crops, and with `with_flip_aug` averages with the mirrored image's prediction mirrored
    back. The mirrored images run in the same batch as the originals (the same numbers:
    images do not interact), except for ZoeD-NK with batch routing, whose two passes each
    route by their own vote, as the official.
    """
    images = jnp.asarray(images, jnp.float32)
    b, h, w, _ = images.shape
    pad_h = int(np.sqrt(h / 2) * fh) if pad_input else 0
    pad_w = int(np.sqrt(w / 2) * fw) if pad_input else 0
    if pad_input and not (fh > 0 or fw > 0):
        raise ValueError("infer: with pad_input, at least one of fh and fw must be positive")

    def depth(x):
        x = jnp.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="reflect")
        out = model.apply(variables, x)["metric_depth"].astype(jnp.float32)
        if out.shape[1:3] != x.shape[1:3]:
            out = resize_bicubic(out, x.shape[1:3])
        return out[:, pad_h:pad_h + h, pad_w:pad_w + w, 0]

    if not with_flip_aug:
        return depth(images)
    flipped = images[:, :, ::-1]
    if isinstance(model, ZoeDepthNK) and model.route == "batch":
        both = (depth(images), depth(flipped))
    else:
        out = depth(jnp.concatenate([images, flipped]))
        both = (out[:b], out[b:])
    return (both[0] + both[1][:, :, ::-1]) / 2
