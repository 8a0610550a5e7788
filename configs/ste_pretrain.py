"""Structure-encoder pretraining (the stage the official release left out).

MUNIT-style translation between Virtual KITTI (domain a) and a style domain (b): any
folder of images, e.g. paintings — no real KITTI image is needed. The trained shared
structure encoder is what stage 1 loads:
  python train.py --config configs/ste_pretrain.py --workdir runs/ste --config.style_images=/data/paintings
  python train.py --config configs/struct_decoder.py --workdir runs/stage1 --config.init_from.struct_encoder=runs/ste
Defaults from MUNIT: Adam lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, lr halved every
100k iterations; loss weights gan 1, recon_x 10, recon_s 1, recon_c 1, cycle 10.
"""
from s2r_jax.training.config import local_variant
from s2r_jax.training.ste import ste_default_config


def get_config(arg: str | None = None):
    c = ste_default_config()
    if arg == "local":
        local_variant(c)
        c.model.encoder_dim, c.model.style_dim, c.model.mlp_dim, c.model.dis_dim = 8, 4, 16, 8
    return c
