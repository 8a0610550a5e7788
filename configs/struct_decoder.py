"""Stage 1: train the structure decoder and DepthNet on the frozen structure encoder.

Official: `train.py --train_stage TrainStructDecoder`. The encoder comes from
structure-encoder pretraining (configs/ste_pretrain.py) or the converted official
weights: set --config.init_from.struct_encoder=DIR. Loss: multi-scale L1 +
lambda_w (1) * structure-weighted term (beta 0.001).
"""
from s2r_jax.training.config import stage_config


def get_config(arg: str | None = None):
    return stage_config("struct_decoder", local=arg == "local")
