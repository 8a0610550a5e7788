r"""Virtual KITTI 1.3.1 test split (500 frames): in-domain, metric (Garg crop, 1e-3..80 m, no
scaling).

  python eval.py --config configs/eval_vkitti.py --config.checkpoint=runs/stage2 --workdir out/

Provenance: [official] microsoft/S2R-DepthNet datasets/vkitti/test.txt, [ours] this project's choice.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.checkpoint = ""   # a training workdir or a converted official checkpoint...
    c.predictions = ""  # ...or an .npz of depth maps in metres made by any model, in split order
    c.gt_file = ""      # a ground-truth .npz in split order instead of the dataset's

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "virtual_kitti"  # build with python -m s2r_jax.data.build virtual_kitti ...
    c.data.tfds_config = "1.3.1"
    c.data.data_dir = ""            # TFDS data_dir ('' = TFDS's default)
    c.data.split = "test"           # [official] datasets/vkitti/test.txt, 500 frames
    c.data.num_examples = 0         # > 0: the first N frames only
    c.ground_truth = "depth"        # the rendered depth PNG in cm

    c.protocol = "metric"           # [ours] in-domain: Garg crop, 1e-3..80 m, no scaling
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

    if arg:
        raise ValueError(f"configs/eval_vkitti.py: unknown variant {arg!r}; it has none")
    return c
