"""KITTI Eigen test split (697 frames) under the official S2R-DepthNet protocol by default.

  python eval.py --config configs/eval_kitti.py --config.checkpoint=ckpt/official_kitti --workdir out/
  python eval.py --config configs/eval_kitti.py --config.checkpoint=runs/stage2 --config.protocol=monodepth2 \
      --config.gt=velodyne_x
  python eval.py --config configs/eval_kitti.py --config.predictions=preds.npz --config.gt_file=gt.npz

Protocols: s2r_official (Garg crop, 1e-3..80 m, clamp then median-scale), monodepth2 (scale then
clamp), metric (no scaling), zoedepth_kitti (KB crop + Garg, metric, flip TTA). Ground truth:
camera_z (velodyne, official S2R), velodyne_x (monodepth2's export), improved (652 frames).
"""
from s2r_jax.evaluation.config import eval_config


def get_config(arg: str | None = None):
    c = eval_config(dataset="kitti_eigen", tfds_config="")
    c.gt = "camera_z"
    return c
