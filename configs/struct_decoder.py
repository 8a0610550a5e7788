"""Stage 1: train the structure decoder and DepthNet on the frozen structure encoder.

Official: `train.py --train_stage TrainStructDecoder`. The encoder comes from
structure-encoder pretraining (configs/ste_pretrain.py) or the converted official
weights: set --config.init_from.struct_encoder=DIR. Loss: multi-scale L1 +
lambda_w (1) * structure-weighted term (beta 0.001).
"""
from s2r_jax.training.config import default_config, local_variant


def get_config(arg: str | None = None):
    c = default_config()
    c.stage = "struct_decoder"
    c.train_modules = ("struct_decoder", "depth_net")
    c.frozen_modules = ("struct_encoder",)
    c.use_attention = False
    c.loss.struct_weight = 1.0
    if arg == "local":
        local_variant(c)
    return c

