r"""Stage 2 with a metric head: S2R-DepthNet whose depth is ZoeDepth's metric bins module.

Not in either paper (ours; s2r_jax/models/s2r_metric_bins.py): stage 2 of S2R-DepthNet (the
depth-specific attention and a fresh DepthNet on the frozen stage-1 structure) with
ZoeDepth's metric bins head (seed bins, attractors, conditional log-binomial; ZoeD-K's
settings, 1e-3..80 m) on DepthNet's decoder, trained with ZoeDepth's SILog loss in metres
on Virtual KITTI: S2R-DepthNet's style-invariant structure with a metric output.

  python train.py --config configs/metric_bins_s2r.py --workdir runs/metric_bins \
      --config.init_from.struct_encoder=runs/stage1 --config.init_from.struct_decoder=runs/stage1 \
      --config.init_from.dsa=ckpt/drn_imagenet
  python train.py --config configs/metric_bins_s2r.py:local --workdir /tmp/metric_bins \
      --config.data.data_dir=/tmp/tfds --config.allow_random_frozen=True   # a smoke run on a CPU

Provenance of each value: [paper] the CVPR 2021 paper, [official] microsoft/S2R-DepthNet
(train.py, loaddata.py, transform.py, utils.py), [ZoeDepth] isl-org/ZoeDepth (config_zoedepth.json,
config_zoedepth_kitti.json, zoedepth/trainers/loss.py, zoedepth/utils/config.py), [ours] this
project's choice.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.stage = "metric_bins_s2r"   # [ours] recorded in checkpoints; a workdir holds one stage
    c.init_seed = 0             # [ours] seed of the official initialisation of the trained modules

    # The network. Widths are the official ones (87.4M parameters in all).
    c.model = ml_collections.ConfigDict()
    c.model.encoder_dim = 64        # [official] Struct_Encoder(dim=64): 256 channels at 1/4 resolution
    c.model.depth_ngf = 64          # [official] Depth_Net(ngf=64)
    c.model.dsa_channels = (16, 32, 64, 128, 256, 512, 512, 512)  # [official] drn_d_22: the DSA trunk
    c.model.shared_prelu = True     # [official] one nn.PReLU() shared by all of Depth_Net (quirk; False: one each)
    c.model.align_corners = True    # [official] bilinear resizes with align_corners=True
    c.model.dtype = "float32"       # [ours] compute dtype; 'bfloat16' on GPU/TPU (parameters stay float32)
    c.model.rgb_baseline = False    # [ours] the head sits on S2R-DepthNet (must be False)
    c.model.metric_bins = ml_collections.ConfigDict()  # [ZoeDepth] the metric head, ZoeD-K's settings
    c.model.metric_bins.n_bins = 64                    # [ZoeDepth] config_zoedepth.json
    c.model.metric_bins.bin_type = "normed"            # [ZoeDepth] config_zoedepth_kitti.json: bounded centres
    c.model.metric_bins.min_depth = 1e-3               # [ZoeDepth] DATASETS_CONFIG['kitti']
    c.model.metric_bins.max_depth = 80.0
    c.model.metric_bins.bin_embedding_dim = 128        # [ZoeDepth] config_zoedepth.json
    c.model.metric_bins.projector_hidden = 128         # [ZoeDepth] Projector's default mlp_dim
    c.model.metric_bins.seed_hidden = 256              # [ZoeDepth] SeedBinRegressor's default mlp_dim
    c.model.metric_bins.n_attractors = (16, 8, 4, 1)   # [ZoeDepth] one layer per decoder scale (1/8 .. 1/1 here)
    c.model.metric_bins.attractor_hidden = 128         # [ZoeDepth] AttractorLayer's default mlp_dim
    c.model.metric_bins.attractor_alpha = 1000.0       # [ZoeDepth] config_zoedepth.json ...
    c.model.metric_bins.attractor_gamma = 2.0
    c.model.metric_bins.attractor_type = "inv"
    c.model.metric_bins.attractor_kind = "mean"
    c.model.metric_bins.attractor_official_strength = True  # ... whose alpha/gamma the layers ignore (300/2 used)
    c.model.metric_bins.min_temp = 0.0212
    c.model.metric_bins.max_temp = 50.0

    # What this stage trains. Frozen modules run in eval mode, get no gradient and no Adam state.
    c.train_modules = ("dsa", "depth_net", "metric_head")   # [official] stage 2's two, [ours] and the head
    c.frozen_modules = ("struct_encoder", "struct_decoder")  # [official] loaded from stage 1, fixed
    c.use_attention = True                                  # [official] DepthNet sees attention x structure
    c.init_from = ml_collections.ConfigDict()          # a workdir or a converted checkpoint per module
    c.init_from.struct_encoder = ""   # [official] --Shared_Struct_Encoder_path: REQUIRED (stage 1's workdir)
    c.init_from.struct_decoder = ""   # [official] --Struct_Decoder_path: REQUIRED (stage 1's workdir)
    c.init_from.dsa = ""              # [official] the ImageNet DRN-D-22 (convert --drn_imagenet); '' = DRN's init
    c.init_from.depth_net = ""        # [official] a fresh DepthNet: utils.init_weights(normal, 0.02)
    c.init_from.metric_head = ""      # [ZoeDepth] a fresh head: PyTorch's default initialisation
    c.allow_random_frozen = False     # [ours] True only for smoke tests: random frozen modules

    # Data: Virtual KITTI 1.3.1 with the official list and augmentation.
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "virtual_kitti"  # [official] --syn_dataset VKITTI
    c.data.tfds_config = "1.3.1"      # [paper] Virtual KITTI 1.3.1
    c.data.data_dir = ""              # [ours] TFDS data_dir ('' = TFDS's default, e.g. ~/tensorflow_datasets)
    c.data.split = "train"            # [official] datasets/vkitti/train.txt (20,760 frames)
    c.data.num_examples = 0           # [ours] > 0: the first N examples only
    c.data.image_size = (192, 640)    # [official] --loadSize 192 640
    c.data.batch_size = 32            # [official] --batchSize 32 (global, over all devices and hosts)
    c.data.shuffle_seed = 0           # [ours] order and augmentation draws (one global order on any topology)
    c.data.shuffle_buffer = 1024      # [ours] the official loader shuffles the whole list; 1024 encoded frames
    c.data.depth_range_m = 80.0       # [official] depth clipped at 8000 cm, / 8000: tanh +1 = 80 m
    c.data.prefetch = 2               # [ours] batches tf.data prepares ahead
    c.data.augment = ml_collections.ConfigDict()  # [official] transform.RandomImgAugment
    c.data.augment.flip_prob = 0.5
    c.data.augment.rotate_prob = 0.5
    c.data.augment.max_rotation_deg = 5.0          # randrange(-500, 500) / 100
    c.data.augment.colour_prob = 0.5               # brightness, contrast, saturation together
    c.data.augment.colour_low = 0.8
    c.data.augment.colour_high = 1.0

    # Loss: SILog on the metric depth (the tanh outputs get none).
    c.loss = ml_collections.ConfigDict()
    c.loss.silog_beta = 0.15    # [ZoeDepth] SILogLoss(beta=0.15)
    c.loss.min_depth = 1e-3     # [ZoeDepth] the training mask: min_depth < gt < max_depth (kitti) ...
    c.loss.max_depth = 80.0     # ... strict: depth clipped at depth_range_m (the sky) is left out

    # Optimiser and schedule.
    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 1e-4    # [official] --lr 0.0001
    c.optimizer.b1 = 0.9                # [official] torch.optim.Adam defaults
    c.optimizer.b2 = 0.999
    c.optimizer.decay_every_epochs = 10  # [official] --lr_policy step --lr_decay_iters 10
    c.optimizer.decay_factor = 0.5       # [official] utils.get_scheduler: StepLR gamma 0.5
    c.num_epochs = 120                   # [official] --epochs 120
    c.num_train_steps = 0                # [ours] > 0 overrides num_epochs

    # Evaluation during training (off: the official code has none).
    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 0              # [ours] 0 = never; else every N steps and at the end
    c.eval.data = ml_collections.ConfigDict(dict(dataset="", tfds_config="", data_dir="", split="test",
                                                 num_examples=0))
    c.eval.ground_truth = ""            # '' = the dataset's default (kitti_eigen: camera_z)
    c.eval.protocol = "metric"          # [ours] the output is metric: Garg crop, 1e-3..80 m, no scaling
    c.eval.crop = ""                    # overrides of the protocol ('' / 0 / None = the protocol's)
    c.eval.min_depth_eval = 0.0
    c.eval.max_depth_eval = 0.0
    c.eval.median_scaling = ""
    c.eval.flip_tta = ml_collections.config_dict.placeholder(bool)  # None = the protocol's
    c.eval.batch_size = 8               # [ours] global evaluation batch
    c.eval.best_metric = "abs_rel"      # [ours] the best checkpoint (workdir/best) is kept by this metric

    # Checkpoints, logs, devices.
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3))  # [ours] orbax, asynchronous
    c.log = ml_collections.ConfigDict(dict(every_steps=50,          # [ours] averaged scalars to TensorBoard
                                           image_every_steps=1000,  # [ours] image panels (0 = never)
                                           num_images=4, profile=False))
    c.mesh = ml_collections.ConfigDict(dict(shape=(-1,), axes=("data",)))  # [ours] every device data-parallel
    c.param_sharding = "replicated"  # [ours] or 'fsdp': large arrays split over the data axis
    c.fsdp_min_size = 2 ** 18        # [ours] under fsdp, arrays of fewer elements stay replicated
    c.distributed = False            # [ours] True: jax.distributed.initialize() (TPU pods, SLURM, MPI, GKE)
    c.cluster = ml_collections.ConfigDict(dict(
        coordinator_address="",  # [ours] bare machines: 'host:port' of process 0 ('' = auto-detect)
        num_processes=0, process_id=-1,               # with coordinator_address; 0 / -1 = auto-detect
        initialization_timeout_s=300, heartbeat_timeout_s=100))  # [jax defaults] how long a lost host is waited for

    if arg == "local":  # [ours] a smoke run on a laptop CPU: tiny widths, 96x160, 20 steps
        c.model.encoder_dim, c.model.depth_ngf = 8, 8
        c.model.dsa_channels = (4, 4, 8, 8, 16, 16, 16, 16)
        c.model.metric_bins.bin_embedding_dim, c.model.metric_bins.projector_hidden = 16, 16
        c.model.metric_bins.seed_hidden, c.model.metric_bins.attractor_hidden = 32, 16
        c.data.image_size, c.data.batch_size, c.data.shuffle_buffer = (96, 160), 8, 64
        c.num_train_steps = 20
        c.checkpoint.every_steps, c.log.every_steps, c.log.image_every_steps = 10, 5, 10
    elif arg:
        raise ValueError(f"configs/metric_bins_s2r.py: unknown variant {arg!r}; variants: local")
    return c
