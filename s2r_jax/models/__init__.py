"""The S2R-DepthNet networks in Flax Linen (NHWC), one file per paper module."""
from s2r_jax.models.depth_net import DepthNet
from s2r_jax.models.depth_specific_attention import DepthSpecificAttention
from s2r_jax.models.s2r_depthnet import KITTI_MAX_DEPTH, MODULES, RGBBaseline, S2RDepthNet, to_metres
from s2r_jax.models.structure_decoder import StructureDecoder
from s2r_jax.models.structure_encoder import StructureEncoder

__all__ = ["DepthNet", "DepthSpecificAttention", "KITTI_MAX_DEPTH", "MODULES", "RGBBaseline", "S2RDepthNet",
           "StructureDecoder", "StructureEncoder", "to_metres"]
