"""Semi-supervised: fine-tune a stage-2 model on N labelled real KITTI frames.

The paper's semi-supervised setting: 1000 KITTI frames with their sparse velodyne
ground truth (build kitti_eigen with --train_list). The L1 loss is taken only where
the ground truth is valid, and sparse ground truth is never interpolated across
holes (nearest-neighbour resizing in the pipeline, a validity mask in the loss).
Set --config.init_from.{struct_encoder,struct_decoder,dsa,depth_net}=STAGE2_WORKDIR.
"""
from s2r_jax.training.config import default_config, local_variant


def get_config(arg: str | None = None):
    c = default_config()
    c.stage = "finetune_kitti"
    c.train_modules = ("dsa", "depth_net")
    c.frozen_modules = ("struct_encoder", "struct_decoder")
    c.use_attention = True
    c.loss.struct_weight = 0.0
    c.loss.masked = True
    c.data.dataset = "kitti_eigen"
    c.data.tfds_config = ""
    c.data.split = "train"
    c.data.num_examples = 1000
    c.data.shuffle_buffer = 256  # decoded float ground truth is large
    if arg == "local":
        local_variant(c)
    return c
