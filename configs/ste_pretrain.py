r"""Structure-encoder pretraining (the stage the official release left out).

MUNIT-style translation between Virtual KITTI (domain a) and a style domain (b): any
folder of images, e.g. paintings; no real KITTI image is needed. The shared structure
encoder it trains is what stage 1 loads:

  python train.py --config configs/ste_pretrain.py --workdir runs/ste --config.style_images=/data/paintings
  python train.py --config configs/struct_decoder.py --workdir runs/stage1 --config.init_from.struct_encoder=runs/ste

Provenance of each value: [paper] the CVPR 2021 paper (Sec. 3.1: a shared structure
encoder trained by image translation), [munit] MUNIT's configs/edges2handbags_folder.yaml
and trainer, the recipe the paper builds on, [ours] this project's choice. See
docs/ste_pretraining.md.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.stage = "ste_pretrain"  # [ours] recorded in checkpoints
    c.init_seed = 0           # [ours] MUNIT's init and the per-step random style codes

    c.model = ml_collections.ConfigDict()
    c.model.encoder_dim = 64  # [paper] the S2R structure encoder: 64 -> 256 channels at 1/4
    c.model.style_dim = 8     # [munit] gen.style_dim
    c.model.mlp_dim = 256     # [munit] gen.mlp_dim
    c.model.decoder_res_blocks = 4  # [munit] gen.n_res (AdaIN residual blocks of each decoder)
    c.model.dis_dim = 64      # [munit] dis.dim
    c.model.dis_layers = 4    # [munit] dis.n_layer (stride-2 convolutions per scale)
    c.model.dis_scales = 3    # [munit] dis.num_scales
    c.model.dtype = "float32"  # [ours] compute dtype ('bfloat16' on accelerators)

    # Domain a: synthetic images (their depth is not used).
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "virtual_kitti"  # [paper] the synthetic domain
    c.data.tfds_config = "1.3.1"
    c.data.data_dir = ""              # [ours] TFDS data_dir ('' = TFDS's default)
    c.data.split = "train"
    c.data.num_examples = 0
    c.data.image_size = (192, 640)    # [ours] the depth stages' size (the translation networks take any)
    c.data.batch_size = 8             # [ours] MUNIT trains with 1; 8 keeps accelerators busy
    c.data.shuffle_seed = 0
    c.data.shuffle_buffer = 1024
    c.data.depth_range_m = 80.0       # unused here (the depth is not read)
    c.data.prefetch = 2
    c.data.augment = ml_collections.ConfigDict(dict(  # [official] the depth stages' augmentation
        flip_prob=0.5, rotate_prob=0.5, max_rotation_deg=5.0, colour_prob=0.5, colour_low=0.8, colour_high=1.0))
    c.style_images = ""  # domain b: a folder of PNG/JPEG images of any style: REQUIRED

    c.loss = ml_collections.ConfigDict(dict(
        gan=1.0,         # [munit] gan_w
        recon_x=10.0,    # [munit] recon_x_w
        recon_s=1.0,     # [munit] recon_s_w
        recon_c=1.0,     # [munit] recon_c_w
        recon_cyc=10.0))  # [munit] recon_x_cyc_w (0 or 10 in MUNIT's configs; 10 here)
    c.optimizer = ml_collections.ConfigDict(dict(
        learning_rate=1e-4, b1=0.5, b2=0.999,  # [munit] lr, beta1, beta2
        weight_decay=1e-4,                     # [munit] weight_decay (coupled, as torch's Adam)
        decay_every_steps=100_000, decay_factor=0.5))  # [munit] step_size, gamma
    c.num_train_steps = 1_000_000  # [munit] max_iter

    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=10_000, keep=3))
    c.log = ml_collections.ConfigDict(dict(every_steps=100, image_every_steps=1000, num_images=4, profile=False))
    c.mesh = ml_collections.ConfigDict(dict(shape=(-1,), axes=("data",)))
    c.param_sharding = "replicated"  # [ours] or 'fsdp': large arrays split over the data axis
    c.fsdp_min_size = 2 ** 18        # [ours] under fsdp, arrays of fewer elements stay replicated
    c.distributed = False
    c.cluster = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1,
                                               initialization_timeout_s=300, heartbeat_timeout_s=100))

    if arg == "local":  # [ours] a smoke run on a laptop CPU
        c.model.encoder_dim, c.model.style_dim, c.model.mlp_dim, c.model.dis_dim = 8, 4, 16, 8
        c.data.image_size, c.data.shuffle_buffer = (64, 96), 64
        c.num_train_steps = 20
        c.checkpoint.every_steps, c.log.every_steps, c.log.image_every_steps = 10, 5, 10
    elif arg:
        raise ValueError(f"configs/ste_pretrain.py: unknown variant {arg!r}; variants: local")
    return c
