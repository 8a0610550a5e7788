r"""KITTI Eigen test split (697 frames) under the official S2R-DepthNet protocol.

  python eval.py --config configs/eval_kitti.py --config.checkpoint=ckpt/official_kitti --workdir out/
  python eval.py --config configs/eval_kitti.py:monodepth2 --config.checkpoint=runs/stage2
  python eval.py --config configs/eval_kitti.py:zoedepth --config.checkpoint=...
  python eval.py --config configs/eval_kitti.py --config.predictions=preds.npz --config.gt_file=gt.npz

Variants: '' = S2R-DepthNet's test.py (camera-z velodyne ground truth, Garg crop,
1e-3..80 m, clamp then median-scale); 'monodepth2' = monodepth2's evaluate_depth.py
(velodyne-x ground truth, scale then clamp); 'zoedepth' = ZoeDepth's metric protocol
(improved ground truth, 652 frames, KB crop + Garg, no scaling, flip TTA).
Provenance: [official] microsoft/S2R-DepthNet test.py, [ours] this project's choice.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.checkpoint = ""   # a training workdir or a converted official checkpoint...
    c.predictions = ""  # ...or an .npz of depth maps in metres made by any model, in split order
    c.gt_file = ""      # ground truth from `python -m s2r_jax.data.kitti_gt` instead of the dataset's

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "kitti_eigen"  # build with python -m s2r_jax.data.build kitti_eigen ...
    c.data.tfds_config = ""
    c.data.data_dir = ""            # TFDS data_dir ('' = TFDS's default)
    c.data.split = "test"           # [official] datasets/kitti/test.txt, 697 frames, in list order
    c.data.num_examples = 0         # > 0: the first N frames only
    c.ground_truth = "camera_z"     # [official] KITTI.get_depth: velodyne projected, camera z

    c.protocol = "s2r_official"     # [official] kitti_metrics_preprocess (see docs/evaluation.md)
    c.crop = ""                     # overrides of the protocol ('' / 0 / None = the protocol's own)
    c.min_depth_eval = 0.0
    c.max_depth_eval = 0.0          # e.g. 50 for the 1e-3..50 m range
    c.median_scaling = ""
    c.flip_tta = ml_collections.config_dict.placeholder(bool)  # None = the protocol's; True/False overrides

    c.model_image_size = ()         # (H, W); () = the checkpoint's (converted official: 192x640, --loadSize)
    c.model_depth_range_m = 0.0     # metres of a tanh output of +1; 0 = the checkpoint's (official: 80)
    c.dtype = "float32"             # compute dtype: 'bfloat16', or 'float64' for exactness checks
    c.batch_size = 8                # [ours] global batch of frames (the official test: 1; same numbers)
    c.save_predictions = False      # write predictions.npz (metres, ground-truth size) to the workdir
    c.distributed = False           # True on every host of a cluster: the frames are split between hosts
    c.cluster = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1,
                                               initialization_timeout_s=300, heartbeat_timeout_s=100))

    if arg == "monodepth2":   # monodepth2 and most self-supervised work
        c.ground_truth, c.protocol = "velodyne_x", "monodepth2"
    elif arg == "zoedepth":   # metric-depth work (ZoeDepth, AdaBins, BTS)
        c.ground_truth, c.protocol = "improved", "zoedepth_kitti"
    elif arg:
        raise ValueError(f"configs/eval_kitti.py: unknown variant {arg!r}; variants: monodepth2, zoedepth")
    return c
