"""NYUv2 test (654 frames) under the official S2R-DepthNet NYU protocol: no crop, 1e-3..8 m,
median scaling; the indoor model predicts up to 8 m (official test.py).

  python eval.py --config configs/eval_nyu.py --config.checkpoint=ckpt/official_nyu --workdir out/
"""
from s2r_jax.evaluation.config import eval_config


def get_config(arg: str | None = None):
    c = eval_config(dataset="nyu_depth_test", tfds_config="", max_depth=10.0)
    c.gt = "depth"
    c.protocol = "s2r_official_nyu"
    c.image_size = (192, 256)  # official test.py --loadSize 192 256 for NYUD_V2
    c.max_depth = 8.0          # official test.py: pred_depth *= 8.0
    return c
