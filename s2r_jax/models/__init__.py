"""The S2R-DepthNet networks and ZoeDepth in Flax Linen (NHWC), one file per paper module."""
from s2r_jax.models.beit import Beit
from s2r_jax.models.depth_net import DepthNet
from s2r_jax.models.depth_specific_attention import DepthSpecificAttention
from s2r_jax.models.metric_bins import MetricBinsHead
from s2r_jax.models.midas_dpt import MidasDPT
from s2r_jax.models.s2r_depthnet import KITTI_MAX_DEPTH, MODULES, RGBBaseline, S2RDepthNet, to_metres
from s2r_jax.models.structure_decoder import StructureDecoder
from s2r_jax.models.structure_encoder import StructureEncoder
from s2r_jax.models.zoedepth import ZoeDepth, ZoeDepthNK, build_zoedepth, infer as zoedepth_infer, zoedepth_config

__all__ = ["Beit", "DepthNet", "DepthSpecificAttention", "KITTI_MAX_DEPTH", "MODULES", "MetricBinsHead", "MidasDPT",
           "RGBBaseline", "S2RDepthNet", "StructureDecoder", "StructureEncoder", "ZoeDepth", "ZoeDepthNK",
           "build_zoedepth", "to_metres", "zoedepth_config", "zoedepth_infer"]
