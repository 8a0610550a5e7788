r"""Zero-shot transfer: a model (or predictions made by any model) on every transfer dataset that
is built, each under its published protocol, mRI_theta against a reference, one report.

  python eval.py --config configs/zero_shot.py --config.checkpoint=runs/stage2 \
      --config.data_dir=~/tensorflow_datasets --workdir out/zero_shot
  python eval.py --config configs/zero_shot.py:s2r --config.checkpoint=...      # median-scaled protocols
  python eval.py --config configs/zero_shot.py --config.predictions=preds/ ...  # preds/<dataset>.npz

The datasets, their protocols and ZoeDepth's published tables are in
s2r_jax/evaluation/zero_shot.py (docs/zero_shot.md). Writes metrics.json, report.md,
chart.png and per_image_<dataset>.csv to --workdir.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.checkpoint = ""    # a training workdir or a converted checkpoint...
    c.predictions = ""   # ...or a directory of <dataset>.npz depth maps in metres (any model), in split order
    c.data_dir = ""      # the TFDS data_dir the datasets are built in ('' = TFDS's default)
    c.datasets = ()      # () = every dataset of zero_shot.DATASETS built in data_dir; or names, each must be built
    c.num_examples = 0   # > 0: the first N frames of each dataset
    c.protocol = "zoedepth"   # [ZoeDepth] its crops and caps, no scaling, flip TTA; 's2r': median-scaled
    c.reference = "NeWCRFs"   # [ZoeDepth Tables 3-4] mRI_theta reference: a method of the tables, or a
    #                           metrics.json of another run (eval.py's or this suite's); '' = none
    c.model_image_size = ()   # (H, W); () = the checkpoint's
    c.model_depth_range_m = 0.0  # metres of a tanh output of +1; 0 = the checkpoint's
    c.dtype = "float32"       # compute dtype ('bfloat16'; 'float64' for exactness checks)
    c.batch_size = 8          # global batch of frames
    c.distributed = False     # True on every host: each host evaluates its rows of every batch
    c.cluster = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1,
                                               initialization_timeout_s=300, heartbeat_timeout_s=100))
    if arg == "s2r":          # the median-scaled protocols S2R-DepthNet's transfer results use
        c.protocol = "s2r"
    elif arg == "indoor":
        c.datasets = ("sun_rgbd", "ibims", "diode_indoor", "hypersim")
    elif arg == "outdoor":
        c.datasets = ("vkitti2", "ddad", "diml_outdoor", "diode_outdoor", "make3d", "cityscapes", "driving_stereo")
    elif arg:
        raise ValueError(f"configs/zero_shot.py: unknown variant {arg!r}; variants: s2r, indoor, outdoor")
    return c
