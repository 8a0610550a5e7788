"""S2R-DepthNet: the three modules composed.

image -> StructureEncoder -> StructureDecoder -> structure map S
image -> DepthSpecificAttention -> attention map A
A * S (depth-specific structure) -> DepthNet -> four depth maps, coarse to fine.

Stage 1 of the official training skips the attention (DepthNet sees S directly):
`use_attention=False`.
"""
from __future__ import annotations

from typing import Collection, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2r_jax.models.depth_net import DepthNet
from s2r_jax.models.depth_specific_attention import DRN_D22_CHANNELS, DepthSpecificAttention
from s2r_jax.models.layers import Dtype, check_image, resize_bilinear
from s2r_jax.models.structure_decoder import StructureDecoder
from s2r_jax.models.structure_encoder import StructureEncoder

MODULES = ("struct_encoder", "struct_decoder", "dsa", "depth_net")
KITTI_MAX_DEPTH = 80.0


class S2RDepthNet(nn.Module):
    """The full network. Variables: {'params', 'batch_stats'} keyed by `MODULES`.

    The defaults are the official widths; `encoder_dim`, `depth_ngf` and
    `dsa_channels` shrink the network for quick runs and tests.

    `train` is a bool (all modules) or the names of the modules whose BatchNorm runs
    in train mode (batch statistics, running averages updated); the others use their
    running statistics, as the official trainer's `.eval()` on frozen modules.
    """

    encoder_dim: int = 64
    depth_ngf: int = 64
    dsa_channels: Sequence[int] = DRN_D22_CHANNELS
    shared_prelu: bool = True
    align_corners: bool = True
    dtype: Dtype = jnp.float32  # computation dtype; parameters stay float32

    def setup(self):
        dt = self.dtype
        self.struct_encoder = StructureEncoder(self.encoder_dim, dtype=dt)
        self.struct_decoder = StructureDecoder(4 * self.encoder_dim, self.align_corners, dt)
        self.dsa = DepthSpecificAttention(tuple(self.dsa_channels), self.align_corners, dt)
        self.depth_net = DepthNet(self.depth_ngf, shared_prelu=self.shared_prelu, dtype=dt)

    def __call__(self, image: jax.Array, train: bool | Collection[str] = False, use_attention: bool = True):
        out, structure, is_train = self.depth_input(image, train, use_attention)
        out["depth"] = self.depth_net(structure, is_train("depth_net"))
        return out

    def depth_input(self, image: jax.Array, train: bool | Collection[str], use_attention: bool):
        """Everything before DepthNet: (outputs so far, DepthNet's input, module -> train mode)."""
        check_image(image, 3, "S2RDepthNet input")
        is_train = (lambda m: bool(train)) if isinstance(train, bool) else (lambda m: m in train)
        code = self.struct_encoder(image)
        structure = self.struct_decoder(code, is_train("struct_decoder"))
        out = {"struct_code": code, "structure_map": structure}
        if use_attention:
            attention = self.dsa(image, is_train("dsa"))
            structure = attention * structure
            out.update(attention_map=attention, depth_specific_structure=structure)
        return out, structure, is_train


class RGBBaseline(nn.Module):
    """A plain image -> depth network of the same DepthNet, for comparison (the demo):
    what S2R-DepthNet's structure representation buys under a style shift."""

    depth_ngf: int = 64
    dtype: Dtype = jnp.float32

    def setup(self):
        self.depth_net = DepthNet(self.depth_ngf, in_channels=3, dtype=self.dtype)

    def __call__(self, image: jax.Array, train: bool | Collection[str] = False, use_attention: bool = False):
        is_train = bool(train) if isinstance(train, bool) else "depth_net" in train
        return {"depth": self.depth_net(image, is_train)}


def to_metres(depth: jax.Array, size: Sequence[int] | None = None, max_depth: float = KITTI_MAX_DEPTH,
              align_corners: bool = True) -> jax.Array:
    """Map a tanh depth output (N, h, w, 1) in [-1, 1] to metres, optionally resized.

    As the official test: bilinear resize with align_corners=True to `size`, then
    (x + 1) / 2 * max_depth (80 m outdoors).
    """
    depth = depth.astype(jnp.float32)
    if size is not None:
        depth = resize_bilinear(depth, size, align_corners)
    return (depth + 1.0) / 2.0 * max_depth
