"""The training configuration: defaults of the official runs, and validation.

Stage configs in `configs/` start from `default_config()` and change what their
stage needs. `validate` rejects any field the defaults do not have (a typo in a
config file would otherwise be silently ignored), naming it.
"""
from __future__ import annotations

import ml_collections

from s2r_jax.data.config import data_config
from s2r_jax.models.depth_specific_attention import DRN_D22_CHANNELS
from s2r_jax.models.s2r_depthnet import MODULES


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stage = "struct_decoder"
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(
        encoder_dim=64, depth_ngf=64, dsa_channels=DRN_D22_CHANNELS, shared_prelu=True, align_corners=True,
        dtype="float32",   # computation dtype ('bfloat16' option); parameters stay float32
        rgb_baseline=False))  # True: not S2R-DepthNet but DepthNet on the RGB image (the demo's baseline)
    # Which modules train (BatchNorm in train mode, Adam) and which are frozen (eval mode,
    # no gradient, no optimizer state). Modules in neither are not part of the stage.
    c.train_modules = ("struct_decoder", "depth_net")
    c.frozen_modules = ("struct_encoder",)
    c.use_attention = False  # stage 1 feeds the structure map straight to DepthNet
    # Per module: a checkpoint directory (a workdir, or one written by s2r_jax.convert)
    # to take that module's variables from. Unset trained modules get the official init.
    c.init_from = ml_collections.ConfigDict({m: "" for m in MODULES})
    c.allow_random_frozen = False  # True only for smoke tests and benchmarks
    c.data = data_config()
    c.loss = ml_collections.ConfigDict(dict(
        struct_weight=1.0,   # lambda_w of the structure-weighted term (stage 1); 0 disables it
        beta=0.001,          # hyper_w inside exp(-beta * |grad D|)
        masked=False))       # L1 only where the ground truth is valid (sparse real ground truth)
    c.optimizer = ml_collections.ConfigDict(dict(
        learning_rate=1e-4, b1=0.9, b2=0.999, decay_every_epochs=10, decay_factor=0.5))
    c.num_epochs = 120
    c.num_train_steps = 0    # > 0 overrides num_epochs
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3))
    c.log = ml_collections.ConfigDict(dict(every_steps=50, image_every_steps=1000, num_images=4, profile=False))
    c.mesh = ml_collections.ConfigDict(dict(shape=(-1,), axes=("data",)))
    c.param_sharding = "replicated"  # or 'fsdp': large arrays split over the data axis
    c.distributed = False  # call jax.distributed.initialize() (also when JAX_COORDINATOR_ADDRESS is set)
    return c


# What each stage of the paper trains and freezes (the configs in configs/ are these).
STAGES = {
    "struct_decoder": dict(train_modules=("struct_decoder", "depth_net"), frozen_modules=("struct_encoder",),
                           use_attention=False, struct_weight=1.0, masked=False),
    "dsa_depth": dict(train_modules=("dsa", "depth_net"), frozen_modules=("struct_encoder", "struct_decoder"),
                      use_attention=True, struct_weight=0.0, masked=False),
    "finetune_kitti": dict(train_modules=("dsa", "depth_net"), frozen_modules=("struct_encoder", "struct_decoder"),
                           use_attention=True, struct_weight=0.0, masked=True),
}


def stage_config(stage: str, local: bool = False) -> ml_collections.ConfigDict:
    """`default_config()` set up for one of `STAGES` (and its ':local' variant)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {sorted(STAGES)}")
    spec = STAGES[stage]
    c = default_config()
    c.stage = stage
    c.train_modules, c.frozen_modules = spec["train_modules"], spec["frozen_modules"]
    c.use_attention = spec["use_attention"]
    c.loss.struct_weight, c.loss.masked = spec["struct_weight"], spec["masked"]
    if stage == "finetune_kitti":
        c.data.dataset, c.data.tfds_config, c.data.split = "kitti_eigen", "", "train"
        c.data.num_examples = 1000      # the paper's 1000 labelled frames
        c.data.shuffle_buffer = 256     # decoded float ground truth is large
    return local_variant(c) if local else c


def local_variant(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ':local' variant of every stage: tiny widths, 96x160, a few steps — a smoke
    run on a laptop CPU, not the paper's setting. (Pretraining sets its own widths.)"""
    if "depth_ngf" in c.model:
        c.model.encoder_dim, c.model.depth_ngf = 8, 8
        c.model.dsa_channels = (4, 4, 8, 8, 16, 16, 16, 16)
    c.data.image_size = (96, 160)
    c.data.batch_size = 8
    c.num_train_steps = 20
    c.checkpoint.every_steps = 10
    c.log.every_steps = 5
    c.log.image_every_steps = 10
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError naming every field that the defaults do not know, and bad values."""
    unknown = []

    def walk(cfg, ref, prefix):
        for key in cfg.keys():
            name = f"{prefix}{key}"
            if key not in ref:
                unknown.append(name)
            elif isinstance(ref[key], ml_collections.ConfigDict) and isinstance(cfg[key], ml_collections.ConfigDict):
                walk(cfg[key], ref[key], name + ".")

    ste = config.get("stage") == "ste_pretrain"
    if ste:
        from s2r_jax.training.ste import ste_default_config
    walk(config, ste_default_config() if ste else default_config(), "config.")
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
    for name in ("checkpoint.every_steps", "log.every_steps", "data.batch_size"):
        group, field = name.split(".")
        if config[group][field] < 1:
            raise ValueError(f"config.{name} must be at least 1, got {config[group][field]}")
    if ste:
        return
    for group in ("train_modules", "frozen_modules"):
        bad = [m for m in config[group] if m not in MODULES]
        if bad:
            raise ValueError(f"config.{group}: unknown module(s) {bad}; modules are {list(MODULES)}")
    both = set(config.train_modules) & set(config.frozen_modules)
    if both:
        raise ValueError(f"module(s) {sorted(both)} are both trained and frozen")
    if config.param_sharding not in ("replicated", "fsdp"):
        raise ValueError(f"config.param_sharding must be 'replicated' or 'fsdp', got {config.param_sharding!r}")
    if config.model.dtype not in ("float32", "bfloat16", "float64"):  # float64: numerical checks under x64
        raise ValueError(f"config.model.dtype must be 'float32' or 'bfloat16', got {config.model.dtype!r}")
