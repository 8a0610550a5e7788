"""Semi-supervised: fine-tune a stage-2 model on N labelled real KITTI frames.

The paper's semi-supervised setting: 1000 KITTI frames with their sparse velodyne
ground truth (build kitti_eigen with --train_list). The L1 loss is taken only where
the ground truth is valid, and sparse ground truth is never interpolated across
holes (nearest-neighbour resizing in the pipeline, a validity mask in the loss).
Set --config.init_from.{struct_encoder,struct_decoder,dsa,depth_net}=STAGE2_WORKDIR.
"""
from s2r_jax.training.config import stage_config


def get_config(arg: str | None = None):
    return stage_config("finetune_kitti", local=arg == "local")
