"""S2R-DepthNet with ZoeDepth's metric bins head: style-invariant structure, metric output.

Not in either paper (ours): the structure encoder and decoder, the depth-specific
attention and DepthNet as in S2R-DepthNet; on DepthNet's decoder, instead of reading its
tanh output as a fraction of a fixed depth range, ZoeDepth's metric bins module
(`metric_bins.MetricBinsHead`: seed bins, attractors, conditional log-binomial) predicts
depth in metres, trained with SILog:

- bottleneck: DepthNet's 1/16 centre (after the inception blocks) -> 1x1 conv -> the seed
  bin regressor and the seed projector (ZoeDepth: MiDaS's 1/32 `l4_rn` -> `conv2`);
- the four attractor layers read DepthNet's up-blocks at 1/8, 1/4, 1/2 and 1/1, projected
  to the bin embedding (ZoeDepth: the fusion blocks at 1/16 .. 1/2);
- the conditional log-binomial reads the full-size decoder features with the finest tanh
  output as an extra channel, as ZoeDepth appends MiDaS's relative depth to `out_conv`.

DepthNet's four tanh outputs are still computed (its decoder feeds each coarse output to
the next scale) but get no loss of their own. The head's defaults are ZoeD-K's (normed
bins over 1e-3..80 m: KITTI-like scenes); parameters `metric_head/{conv2, seed_projector,
projectors_0..3, head}`, initialised with PyTorch's defaults as ZoeDepth's heads are.
"""
from __future__ import annotations

from typing import Collection, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.layers import Conv, Dtype
from s2r_jax.models.metric_bins import MetricBinsHead, Projector
from s2r_jax.models.s2r_depthnet import S2RDepthNet

METRIC_HEAD = "metric_head"


class DepthNetMetricHead(nn.Module):
    """DepthNet's features (`DepthNet(..., with_features=True)`) and finest output -> metric depth."""

    n_bins: int = 64
    bin_type: str = "normed"         # ZoeD-K's: bounded centres
    min_depth: float = 1e-3
    max_depth: float = 80.0
    bin_embedding_dim: int = 128     # ZoeDepth's
    projector_hidden: int = 128      # ZoeDepth's projectors' default mlp_dim
    seed_hidden: int = 256           # ZoeDepth's SeedBinRegressor default mlp_dim
    n_attractors: Sequence[int] = (16, 8, 4, 1)
    attractor_hidden: int = 128
    attractor_alpha: float = 1000.0
    attractor_gamma: float = 2.0
    attractor_type: str = "inv"
    attractor_kind: str = "mean"
    attractor_official_strength: bool = True  # ZoeDepth's quirk (alpha 300, gamma 2 used): see metric_bins.py
    min_temp: float = 0.0212
    max_temp: float = 50.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: dict, finest: jax.Array) -> dict:
        dim, dt = self.bin_embedding_dim, self.dtype
        bottleneck = Conv(features["bottleneck"].shape[-1], 1, dtype=dt, name="conv2")(features["bottleneck"])
        seed_embedding = Projector(dim, self.projector_hidden, dt, name="seed_projector")(bottleneck)
        embeddings = [Projector(dim, self.projector_hidden, dt, name=f"projectors_{i}")(f)
                      for i, f in enumerate(features["decoder"])]
        last = jnp.concatenate([features["decoder"][-1], finest.astype(dt)], axis=-1)
        head = MetricBinsHead(
            self.n_bins, self.bin_type, self.min_depth, self.max_depth, self.seed_hidden, tuple(self.n_attractors),
            self.attractor_hidden, self.attractor_alpha, self.attractor_gamma, self.attractor_type,
            self.attractor_kind, self.attractor_official_strength, False, 2, self.min_temp, self.max_temp, dt,
            name="head")
        return head(bottleneck, seed_embedding, embeddings, last)


# The head's fields, as `config.model.metric_bins` names them.
HEAD_FIELDS = tuple(f.name for f in DepthNetMetricHead.__dataclass_fields__.values()
                    if f.name not in ("dtype", "parent", "name"))


class S2RMetricBins(S2RDepthNet):
    """S2R-DepthNet whose depth is predicted by `DepthNetMetricHead`. Outputs those of
    `S2RDepthNet` plus `metric_depth` (N, H, W, 1) in metres, `bin_centers` and `probs`.
    Variables: S2R-DepthNet's modules and `metric_head`."""

    metric_bins: dict | None = None  # `DepthNetMetricHead` fields (None: its defaults)

    def setup(self):
        super().setup()
        fields = dict(self.metric_bins or {})
        unknown = sorted(set(fields) - set(HEAD_FIELDS))
        if unknown:
            raise ValueError(f"unknown metric bins field(s) {unknown}; fields are {list(HEAD_FIELDS)}")
        if "n_attractors" in fields:
            fields["n_attractors"] = tuple(int(n) for n in fields["n_attractors"])
        self.metric_head = DepthNetMetricHead(**fields, dtype=self.dtype)

    def __call__(self, image: jax.Array, train: bool | Collection[str] = False, use_attention: bool = True):
        out, structure, is_train = self.depth_input(image, train, use_attention)
        out["depth"], features = self.depth_net(structure, is_train("depth_net"), with_features=True)
        out.update(self.metric_head(features, out["depth"][-1]))
        return out
