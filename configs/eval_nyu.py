r"""NYUv2 test (654 frames) under the official S2R-DepthNet NYU protocol: no crop, 1e-3..8 m,
median scaling; the indoor model runs at 192x256 and predicts up to 8 m (official test.py).

  python eval.py --config configs/eval_nyu.py --config.checkpoint=ckpt/official_nyu --workdir out/
  python eval.py --config configs/eval_nyu.py:zoedepth --config.checkpoint=ckpt/zoed_n --workdir out/

Variants: '' = S2R-DepthNet's test.py; 'zoedepth' = ZoeDepth's evaluate.py on NYUv2 (eigen
crop, 1e-3..10 m, no scaling, flip TTA), for a ZoeDepth (or any metric) checkpoint.
Provenance: [official] microsoft/S2R-DepthNet test.py, [official ZoeDepth] isl-org/ZoeDepth
zoedepth/utils/config.py and evaluate.py, [ours] this project's choice.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.checkpoint = ""   # a training workdir or a converted official checkpoint...
    c.predictions = ""  # ...or an .npz of depth maps in metres made by any model, in split order
    c.gt_file = ""      # ground truth from `python -m s2r_jax.data.kitti_gt` instead of the dataset's

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "nyu_depth_test"  # build with python -m s2r_jax.data.build nyu_depth_test ...
    c.data.tfds_config = ""
    c.data.data_dir = ""            # TFDS data_dir ('' = TFDS's default)
    c.data.split = "test"           # the 654 test frames, in the packaged list's order (BTS/ZoeDepth's)
    c.data.num_examples = 0         # > 0: the first N frames only
    c.ground_truth = "depth"        # [official] the NYUv2 depth PNG in mm, / 1000

    c.protocol = "s2r_official_nyu"  # [official] nyu_metrics_preprocess: no crop, 1e-3..8 m, median scaling
    c.crop = ""                     # overrides of the protocol ('' / 0 / None = the protocol's own)
    c.min_depth_eval = 0.0
    c.max_depth_eval = 0.0
    c.median_scaling = ""
    c.flip_tta = ml_collections.config_dict.placeholder(bool)  # None = the protocol's; True/False overrides

    c.model_image_size = (192, 256)  # [official] test.py --loadSize 192 256 for NYUD_V2
    c.model_depth_range_m = 8.0      # [official] pred_depth *= 8.0 (the indoor model)
    c.dtype = "float32"             # compute dtype: 'bfloat16', or 'float64' for exactness checks
    c.batch_size = 8                # [ours] global batch of frames (the official test: 1; same numbers)
    c.save_predictions = False      # write predictions.npz (metres, ground-truth size) to the workdir
    c.distributed = False           # True on every host of a cluster: the frames are split between hosts
    c.cluster = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1,
                                               initialization_timeout_s=300, heartbeat_timeout_s=100))

    if arg == "zoedepth":   # ZoeDepth's metric protocol (zoedepth/utils/config.py 'nyu', evaluate.py)
        c.protocol = "zoedepth_nyu"   # [official ZoeDepth] eigen crop, 1e-3..10 m, no scaling, flip TTA
        c.model_image_size = ()       # the checkpoint's network size (ZoeD-N: 384x512)
        c.model_depth_range_m = 0.0   # ZoeDepth predicts metres
    elif arg:
        raise ValueError(f"configs/eval_nyu.py: unknown variant {arg!r}; variants: zoedepth")
    return c
