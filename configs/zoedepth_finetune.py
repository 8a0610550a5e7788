r"""Fine-tune ZoeDepth (ZoeD-K) on Virtual KITTI: the metric head, optionally the backbone.

The official recipe (isl-org/ZoeDepth: `python train_mono.py -m zoedepth -d kitti`, its
trainer and configs) on our sharded loop: SILog in metres, AdamW with the official
parameter groups, OneCycle, gradient clipping 0.1. Start from the released weights:

  python -m s2r_jax.convert --zoedepth ZoeD_M12_K.pt --output ckpt/zoed_k
  python train.py --config configs/zoedepth_finetune.py --workdir runs/zoed_k_vkitti \
      --config.init_from=ckpt/zoed_k [--config.train_backbone=True]
  python train.py --config configs/zoedepth_finetune.py:local --workdir /tmp/zoed \
      --config.data.data_dir=/tmp/tfds --config.allow_random_init=True   # a smoke run on a CPU

Provenance of each value: [official] isl-org/ZoeDepth (zoedepth/models/zoedepth/
config_zoedepth.json and config_zoedepth_kitti.json, zoedepth/utils/config.py, the trainers
in zoedepth/trainers/, zoedepth/data/data_mono.py; torch's AdamW defaults where the official
code leaves them), [ours] this project's choice.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.stage = "zoedepth_finetune"   # [ours] recorded in checkpoints; a workdir holds one stage
    c.init_seed = 0                 # [ours] seed of allow_random_init's initialisation (smoke tests)

    # The network: ZoeD-K as `get_config('zoedepth', 'train', 'kitti', config_version='kitti')` builds it.
    c.model = ml_collections.ConfigDict()
    c.model.kind = "k"                          # [official] ZoeD-K (KITTI); 'n' for ZoeD-N (NYUv2)
    c.model.img_size = (384, 768)               # [official] config_zoedepth_kitti.json
    c.model.keep_aspect_ratio = False           # [official] training builds MidasCore without force_keep_ar
    c.model.embed_dim = 1024                    # [official] MiDaS DPT_BEiT_L_384: BEiT-L/16 ...
    c.model.depth = 24
    c.model.num_heads = 16
    c.model.taps = (5, 11, 17, 23)              # ... the blocks DPT reads
    c.model.pretrain_grid = (24, 24)            # ... relative position tables learnt at 384x384
    c.model.reassemble_features = (256, 512, 1024, 1024)
    c.model.features = 256
    c.model.midas_out_features = 32
    c.model.bin_embedding_dim = 128             # [official] config_zoedepth.json
    c.model.n_bins = 64
    c.model.bin_type = "normed"                 # [official] config_zoedepth_kitti.json
    c.model.min_depth = 1e-3                    # [official] DATASETS_CONFIG['kitti']
    c.model.max_depth = 80.0
    c.model.n_attractors = (16, 8, 4, 1)        # [official] config_zoedepth.json
    c.model.attractor_alpha = 1000.0
    c.model.attractor_gamma = 2.0
    c.model.attractor_type = "inv"
    c.model.attractor_kind = "mean"
    c.model.min_temp = 0.0212
    c.model.max_temp = 50.0
    c.model.attractor_official_strength = True  # [official] quirk: the attractors use alpha 300, gamma 2
    c.model.attractor_normalize_points = False  # [official] quirk: normed bins use the raw attractor points
    c.model.dtype = "float32"                   # [ours] compute dtype; 'bfloat16' on GPU/TPU (params float32)

    c.train_backbone = False   # [ours] the metric head only; True: MiDaS too, with the official lr groups
    #                            (the official train_midas is True: it trains ZoeDepth from MiDaS)
    c.init_from = ""           # REQUIRED: a converted ZoeDepth checkpoint or a zoedepth_finetune workdir
    c.allow_random_init = False  # [ours] True only for smoke tests: random weights

    # Data: Virtual KITTI through our pipeline (image and depth in [-1, 1], a mask); the step
    # maps them back to RGB in [0, 1] and metres.
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "virtual_kitti"  # [ours] the project's training data
    c.data.tfds_config = "1.3.1"
    c.data.data_dir = ""              # [ours] TFDS data_dir ('' = TFDS's default)
    c.data.split = "train"
    c.data.num_examples = 0           # [ours] 0 = the whole split
    c.data.image_size = (384, 768)    # [ours] the network's size (official: 352x1216 KB crops, which the
    #                                   model resizes to img_size without keeping the aspect ratio)
    c.data.batch_size = 16            # [official] bs (global, over all devices and hosts)
    c.data.shuffle_seed = 0           # [ours]
    c.data.shuffle_buffer = 64        # [ours] full-size decoded frames are large
    c.data.depth_range_m = 80.0       # [official] DATASETS_CONFIG['kitti'] max_depth: the pipeline's clip
    c.data.prefetch = 2               # [ours]
    c.data.augment = ml_collections.ConfigDict()
    c.data.augment.flip_prob = 0.5         # [official] train_preprocess: random flip
    c.data.augment.rotate_prob = 1.0       # [official] do_random_rotate: every image ...
    c.data.augment.max_rotation_deg = 1.0  # ... by up to degree = 1.0
    c.data.augment.colour_prob = 0.5       # [official] augment_image with probability 0.5; [ours] the
    c.data.augment.colour_low = 0.9        # pipeline's brightness/contrast/saturation jitter in ZoeDepth's
    c.data.augment.colour_high = 1.1       # KITTI range 0.9..1.1 (official: gamma, brightness, colour)

    # Loss: SILog on metric depth.
    c.loss = ml_collections.ConfigDict()
    c.loss.w_si = 1.0           # [official] w_si (w_grad 0: no gradient loss)
    c.loss.silog_beta = 0.15    # [official] SILogLoss(beta=0.15)
    c.loss.min_depth = 1e-3     # [official] the training mask: min_depth < gt < max_depth (kitti)
    c.loss.max_depth = 80.0

    # Optimiser: AdamW with the official parameter groups, OneCycle, clipping.
    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 0.000161  # [official] optim_kwargs lr (the metric head's)
    c.optimizer.weight_decay = 0.01       # [official] optim_kwargs wd
    c.optimizer.b1 = 0.9                  # [official] torch AdamW default (used when cycle_momentum is off)
    c.optimizer.b2 = 0.999                # [official] torch AdamW default
    c.optimizer.eps = 1e-8                # [official] torch AdamW default
    c.optimizer.encoder_lr_factor = 10.0  # [official] BEiT (and the reassemble layers) at lr / 10
    c.optimizer.pos_enc_lr_factor = 10.0  # [official] BEiT's relative position tables at lr / 10
    c.optimizer.midas_lr_factor = 1.0     # [official] MiDaS's decoder at lr / 1 (ZoeD-N/K config)
    c.optimizer.div_factor = 1.0          # [official] sched_kwargs: OneCycle starts at its maximum ...
    c.optimizer.final_div_factor = 10000.0  # ... ends at max / 1e4 ...
    c.optimizer.pct_start = 0.7           # ... after 70 % of the steps at the maximum
    c.optimizer.cycle_momentum = True     # [official] beta1 cycled ...
    c.optimizer.base_momentum = 0.85      # ... base_momentum=0.85, max_momentum=0.95 (base_trainer.py)
    c.optimizer.max_momentum = 0.95
    c.optimizer.clip_grad = 0.1           # [official] COMMON_TRAINING_CONFIG clip_grad
    c.num_epochs = 5                      # [official] epochs
    c.num_train_steps = 0                 # [ours] > 0 overrides num_epochs (and the OneCycle length)

    # Evaluation during training (the official validates every quarter epoch).
    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 0              # [ours] 0 = never; else every N steps and at the end
    c.eval.data = ml_collections.ConfigDict(dict(dataset="", tfds_config="", data_dir="", split="test",
                                                 num_examples=0))
    c.eval.ground_truth = ""            # '' = the dataset's default (kitti_eigen: camera_z; 'improved' for ZoeDepth's)
    c.eval.protocol = "zoedepth_kitti"  # [official] KB crop + Garg, 1e-3..80 m, no scaling, flip TTA
    c.eval.crop = ""                    # overrides of the protocol ('' / 0 / None = the protocol's)
    c.eval.min_depth_eval = 0.0
    c.eval.max_depth_eval = 0.0
    c.eval.median_scaling = ""
    c.eval.flip_tta = ml_collections.config_dict.placeholder(bool)  # None = the protocol's
    c.eval.batch_size = 8               # [ours] global evaluation batch
    c.eval.best_metric = "abs_rel"      # [official] metric_criterion: the best checkpoint by abs_rel

    # Checkpoints, logs, devices.
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3))  # [ours] orbax, asynchronous
    c.log = ml_collections.ConfigDict(dict(every_steps=50,          # [official] losses logged every 50 steps
                                           image_every_steps=1000,  # [ours] image panels (0 = never)
                                           num_images=4, profile=False))
    c.mesh = ml_collections.ConfigDict(dict(shape=(-1,), axes=("data",)))  # [ours] every device data-parallel
    c.param_sharding = "fsdp"        # [ours] 345M parameters and AdamW moments split over the data axis
    c.fsdp_min_size = 2 ** 18        # [ours] under fsdp, arrays of fewer elements stay replicated
    c.distributed = False            # [ours] True: jax.distributed.initialize() (TPU pods, SLURM, MPI, GKE)
    c.cluster = ml_collections.ConfigDict(dict(
        coordinator_address="",  # [ours] bare machines: 'host:port' of process 0 ('' = auto-detect)
        num_processes=0, process_id=-1,               # with coordinator_address; 0 / -1 = auto-detect
        initialization_timeout_s=300, heartbeat_timeout_s=100))  # [jax defaults] how long a lost host is waited for

    if arg == "local":  # [ours] a smoke run on a laptop CPU: a tiny BEiT/DPT, 96x160, 20 steps
        c.model.img_size = (64, 96)
        c.model.embed_dim, c.model.depth, c.model.num_heads = 32, 2, 2
        c.model.taps, c.model.pretrain_grid = (0, 0, 1, 1), (3, 3)
        c.model.reassemble_features, c.model.features, c.model.midas_out_features = (8, 16, 16, 32), 16, 8
        c.model.bin_embedding_dim = 16
        c.data.image_size, c.data.batch_size, c.data.shuffle_buffer = (96, 160), 8, 16
        c.num_train_steps = 20
        c.checkpoint.every_steps, c.log.every_steps, c.log.image_every_steps = 10, 5, 10
    elif arg:
        raise ValueError(f"configs/zoedepth_finetune.py: unknown variant {arg!r}; variants: local")
    return c
