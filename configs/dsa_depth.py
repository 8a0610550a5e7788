"""Stage 2: train the depth-specific attention module and a fresh DepthNet.

Official: `train.py --train_stage TrainDSAandDPModule`. Encoder and decoder frozen,
from stage 1's workdir (--config.init_from.struct_encoder=DIR and
--config.init_from.struct_decoder=DIR); the DSA trunk optionally from the ImageNet
DRN-D-22 (`python -m s2r_jax.convert --drn_imagenet ... --output D`, then
--config.init_from.dsa=D; the official code always does this). DepthNet starts from
the official init (normal(0, 0.02)). Loss: multi-scale L1.
"""
from s2r_jax.training.config import stage_config


def get_config(arg: str | None = None):
    return stage_config("dsa_depth", local=arg == "local")
