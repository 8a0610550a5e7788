"""Virtual KITTI 1.3.1 test split (500 frames): in-domain, metric by default (1e-3..80 m,
Garg crop, no scaling).

  python eval.py --config configs/eval_vkitti.py --config.checkpoint=runs/stage2 --workdir out/
"""
from s2r_jax.evaluation.config import eval_config


def get_config(arg: str | None = None):
    c = eval_config(dataset="virtual_kitti", tfds_config="1.3.1")
    c.gt = "depth"
    c.protocol = "metric"
    return c
