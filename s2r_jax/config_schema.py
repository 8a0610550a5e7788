"""What a config may and must hold, and the check that says what is wrong with one.

The values of a run live in its config file (`configs/*.py`), each with where it comes
from; the library holds only the shape of a config: field names, types and allowed
values. `validate` names every unknown field (a typo would otherwise be silently
ignored), every missing one and every value of the wrong type or out of range, in one
error. No tensorflow here.
"""
from __future__ import annotations

from typing import Any, Mapping

OPTIONAL_BOOL = "bool or None"  # a field left None means "the protocol's choice"

MODULES = ("struct_encoder", "struct_decoder", "dsa", "depth_net")
DTYPES = ("float32", "bfloat16", "float64")

DATA = {
    "dataset": str, "tfds_config": str, "data_dir": str, "split": str, "num_examples": int,
}
TRAIN_DATA = {
    **DATA, "image_size": tuple, "batch_size": int, "shuffle_seed": int, "shuffle_buffer": int,
    "depth_range_m": float, "prefetch": int,
    "augment": {"flip_prob": float, "rotate_prob": float, "max_rotation_deg": float, "colour_prob": float,
                "colour_low": float, "colour_high": float},
}
PROTOCOL = {
    "protocol": str, "crop": str, "min_depth_eval": float, "max_depth_eval": float, "median_scaling": str,
    "flip_tta": OPTIONAL_BOOL,
}
CLUSTER = {
    "coordinator_address": str, "num_processes": int, "process_id": int, "initialization_timeout_s": int,
    "heartbeat_timeout_s": int,
}
RUNTIME = {
    "checkpoint": {"every_steps": int, "keep": int},
    "log": {"every_steps": int, "image_every_steps": int, "num_images": int, "profile": bool},
    "mesh": {"shape": tuple, "axes": tuple},
    "param_sharding": str,
    "distributed": bool,
    "cluster": CLUSTER,
}
DEPTH_STAGE = {
    "stage": str, "init_seed": int,
    "model": {"encoder_dim": int, "depth_ngf": int, "dsa_channels": tuple, "shared_prelu": bool,
              "align_corners": bool, "dtype": str, "rgb_baseline": bool},
    "train_modules": tuple, "frozen_modules": tuple, "use_attention": bool,
    "init_from": {m: str for m in MODULES}, "allow_random_frozen": bool,
    "data": TRAIN_DATA,
    "loss": {"struct_weight": float, "beta": float, "masked": bool},
    "optimizer": {"learning_rate": float, "b1": float, "b2": float, "decay_every_epochs": int,
                  "decay_factor": float},
    "num_epochs": int, "num_train_steps": int,
    "eval": {"every_steps": int, "data": DATA, "ground_truth": str, **PROTOCOL, "batch_size": int,
             "best_metric": str},
    **RUNTIME,
}
STE_PRETRAIN = {
    "stage": str, "init_seed": int,
    "model": {"encoder_dim": int, "style_dim": int, "mlp_dim": int, "dis_dim": int, "dtype": str},
    "data": TRAIN_DATA, "style_images": str,
    "loss": {"gan": float, "recon_x": float, "recon_s": float, "recon_c": float, "recon_cyc": float},
    "optimizer": {"learning_rate": float, "b1": float, "b2": float, "weight_decay": float,
                  "decay_every_steps": int, "decay_factor": float},
    "num_train_steps": int,
    **RUNTIME,
}
EVALUATION = {
    "checkpoint": str, "predictions": str, "gt_file": str, "data": DATA, "ground_truth": str, **PROTOCOL,
    "model_image_size": tuple, "model_depth_range_m": float, "dtype": str, "batch_size": int,
    "save_predictions": bool, "distributed": bool, "cluster": CLUSTER,
}
ZERO_SHOT = {
    "checkpoint": str, "predictions": str, "data_dir": str, "datasets": tuple, "num_examples": int,
    "protocol": str, "reference": str, "model_image_size": tuple, "model_depth_range_m": float, "dtype": str,
    "batch_size": int, "distributed": bool, "cluster": CLUSTER,
}
STAGE_KINDS = {"struct_decoder": DEPTH_STAGE, "dsa_depth": DEPTH_STAGE, "finetune_kitti": DEPTH_STAGE,
               "rgb_baseline": DEPTH_STAGE, "ste_pretrain": STE_PRETRAIN}
LOWER_IS_BETTER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
HIGHER_IS_BETTER = ("a1", "a2", "a3")


class ConfigError(ValueError):
    """A config that does not fit its schema; the message lists every problem."""


def _type_ok(value: Any, kind) -> bool:
    if kind is OPTIONAL_BOOL:
        return value is None or isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is tuple:
        return isinstance(value, (tuple, list))
    return isinstance(value, kind)


def _kind_name(kind) -> str:
    return kind if isinstance(kind, str) else ("a group" if isinstance(kind, Mapping) else kind.__name__)


def shape_problems(config: Mapping, schema: Mapping, prefix: str = "config.") -> list[str]:
    """Unknown, missing and wrongly typed fields of `config` against `schema`, as lines."""
    problems = []
    for key in config.keys():
        if key not in schema:
            problems.append(f"{prefix}{key}: unknown field")
    for key, kind in schema.items():
        name = f"{prefix}{key}"
        if key not in config:
            problems.append(f"{name}: missing ({_kind_name(kind)})")
            continue
        value = config[key]
        if isinstance(kind, Mapping):
            if not hasattr(value, "keys"):
                problems.append(f"{name}: expected a group of fields, got {value!r}")
            else:
                problems += shape_problems(value, kind, name + ".")
        elif not _type_ok(value, kind):
            problems.append(f"{name}: expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
    return problems


def _positive(config, names, problems, allow_zero=()):
    for name in names:
        node = config
        for part in name.split("."):
            node = node[part]
        low = 0 if name in allow_zero else 1
        if node < low:
            problems.append(f"config.{name} must be at least {low}, got {node}")


def _runtime_problems(config) -> list[str]:
    problems = []
    _positive(config, ("checkpoint.every_steps", "checkpoint.keep", "log.every_steps", "data.batch_size",
                       "data.shuffle_buffer", "data.prefetch"), problems)
    if config.param_sharding not in ("replicated", "fsdp"):
        problems.append(f"config.param_sharding must be 'replicated' or 'fsdp', got {config.param_sharding!r}")
    if config.model.dtype not in DTYPES:
        problems.append(f"config.model.dtype must be one of {DTYPES}, got {config.model.dtype!r}")
    if "data" not in tuple(config.mesh.axes):
        problems.append(f"config.mesh.axes must contain 'data' (the batch axis), got {tuple(config.mesh.axes)}")
    if len(tuple(config.mesh.shape)) != len(tuple(config.mesh.axes)):
        problems.append(f"config.mesh.shape {tuple(config.mesh.shape)} and config.mesh.axes "
                        f"{tuple(config.mesh.axes)} differ in length")
    size = tuple(config.data.image_size)
    if len(size) != 2 or min(size) < 1:
        problems.append(f"config.data.image_size must be (H, W), got {size}")
    return problems


def _depth_stage_problems(config) -> list[str]:
    problems = []
    trained, frozen = tuple(config.train_modules), tuple(config.frozen_modules)
    for name, mods in (("train_modules", trained), ("frozen_modules", frozen)):
        unknown = [m for m in mods if m not in MODULES]
        if unknown:
            problems.append(f"config.{name}: unknown module(s) {unknown}; modules are {list(MODULES)}")
    both = sorted(set(trained) & set(frozen))
    if both:
        problems.append(f"module(s) {both} are both trained and frozen")
    if not trained:
        problems.append("config.train_modules is empty: nothing to train")
    if ("dsa" in trained + frozen) != bool(config.use_attention):
        problems.append("config.use_attention must be True exactly when the dsa module is part of the stage")
    if config.model.rgb_baseline and (trained + frozen) != ("depth_net",):
        problems.append("config.model.rgb_baseline trains DepthNet alone: train_modules=('depth_net',), "
                        "frozen_modules=()")
    size = tuple(config.data.image_size)
    if len(size) == 2 and any(s < 96 or s % 16 for s in size):
        problems.append(f"config.data.image_size {size}: S2R-DepthNet needs H and W multiples of 16, at least 96")
    _positive(config, ("num_epochs",), problems)
    _positive(config, ("num_train_steps", "eval.every_steps"), problems, allow_zero=("num_train_steps",
                                                                                        "eval.every_steps"))
    if config.eval.every_steps:
        if not config.eval.data.dataset:
            problems.append("config.eval.every_steps > 0 needs config.eval.data.dataset")
        metrics = LOWER_IS_BETTER + HIGHER_IS_BETTER
        if config.eval.best_metric not in metrics:
            problems.append(f"config.eval.best_metric must be one of {metrics}, got {config.eval.best_metric!r}")
        _positive(config, ("eval.batch_size",), problems)
    return problems


def validate(config) -> None:
    """Raise `ConfigError` listing everything wrong with a training config (any stage)."""
    stage = config.get("stage") if hasattr(config, "get") else None
    if stage not in STAGE_KINDS:
        raise ConfigError(f"config.stage must be one of {sorted(STAGE_KINDS)}, got {stage!r}")
    schema = STAGE_KINDS[stage]
    problems = shape_problems(config, schema)
    if not problems:
        problems = _runtime_problems(config)
        if schema is DEPTH_STAGE:
            problems += _depth_stage_problems(config)
        elif not config.style_images:
            problems.append("config.style_images: a folder of images for the style domain is required")
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the {stage} config:\n  " + "\n  ".join(problems))


def is_zero_shot(config) -> bool:
    """An `eval.py` config of the zero-shot suite (configs/zero_shot.py) rather than of one dataset."""
    return "datasets" in config


def validate_evaluation(config) -> None:
    """Raise `ConfigError` listing everything wrong with an `eval.py` config (one dataset, or
    the zero-shot suite)."""
    zero_shot = is_zero_shot(config)
    problems = shape_problems(config, ZERO_SHOT if zero_shot else EVALUATION)
    if not problems:
        if bool(config.checkpoint) == bool(config.predictions):
            problems.append("give exactly one of config.checkpoint (a model) and config.predictions "
                            f"({'a directory of <dataset>.npz' if zero_shot else 'a file'})")
        if zero_shot and config.protocol not in ("zoedepth", "s2r"):
            problems.append(f"config.protocol must be 'zoedepth' or 's2r', got {config.protocol!r}")
        if not zero_shot and config.checkpoint and config.gt_file:
            problems.append("config.gt_file is for evaluating a predictions file; a checkpoint is evaluated "
                            "against the dataset's own ground truth (choose it with config.ground_truth)")
        if config.dtype not in DTYPES:
            problems.append(f"config.dtype must be one of {DTYPES}, got {config.dtype!r}")
        if config.batch_size < 1:
            problems.append(f"config.batch_size must be at least 1, got {config.batch_size}")
        if config.model_depth_range_m < 0:
            problems.append(f"config.model_depth_range_m must be > 0 (or 0: the checkpoint's), got "
                            f"{config.model_depth_range_m}")
        size = tuple(config.model_image_size)
        if size and (len(size) != 2 or any(s < 96 or s % 16 for s in size)):
            problems.append(f"config.model_image_size {size}: (H, W), each a multiple of 16 and at least 96")
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the evaluation config:\n  " + "\n  ".join(problems))
