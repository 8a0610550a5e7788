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
METRIC_MODULES = MODULES + ("metric_head",)  # the metric-bins variant (configs/metric_bins_s2r.py)
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
    "fsdp_min_size": int,
    "distributed": bool,
    "cluster": CLUSTER,
}
EVAL_DURING_TRAINING = {"every_steps": int, "data": DATA, "ground_truth": str, **PROTOCOL, "batch_size": int,
                        "best_metric": str}
S2R_MODEL = {"encoder_dim": int, "depth_ngf": int, "dsa_channels": tuple, "shared_prelu": bool,
             "align_corners": bool, "dtype": str, "rgb_baseline": bool}
DEPTH_STAGE = {
    "stage": str, "init_seed": int,
    "model": S2R_MODEL,
    "train_modules": tuple, "frozen_modules": tuple, "use_attention": bool,
    "init_from": {m: str for m in MODULES}, "allow_random_frozen": bool,
    "data": TRAIN_DATA,
    "loss": {"struct_weight": float, "beta": float, "masked": bool},
    "optimizer": {"learning_rate": float, "b1": float, "b2": float, "decay_every_epochs": int,
                  "decay_factor": float},
    "num_epochs": int, "num_train_steps": int,
    "eval": EVAL_DURING_TRAINING,
    **RUNTIME,
}
METRIC_BINS = {  # ZoeDepth's metric bins module on DepthNet (models/s2r_metric_bins.py)
    "n_bins": int, "bin_type": str, "min_depth": float, "max_depth": float, "bin_embedding_dim": int,
    "projector_hidden": int, "seed_hidden": int, "n_attractors": tuple, "attractor_hidden": int,
    "attractor_alpha": float, "attractor_gamma": float, "attractor_type": str, "attractor_kind": str,
    "attractor_official_strength": bool, "min_temp": float, "max_temp": float,
}
SILOG_LOSS = {"silog_beta": float, "min_depth": float, "max_depth": float}
METRIC_BINS_STAGE = {
    **DEPTH_STAGE,
    "model": {**S2R_MODEL, "metric_bins": METRIC_BINS},
    "init_from": {m: str for m in METRIC_MODULES},
    "loss": SILOG_LOSS,
}
ZOEDEPTH_MODEL = {
    "kind": str, "img_size": tuple, "keep_aspect_ratio": bool, "embed_dim": int, "depth": int, "num_heads": int,
    "taps": tuple, "pretrain_grid": tuple, "reassemble_features": tuple, "features": int, "midas_out_features": int,
    "bin_embedding_dim": int, "n_bins": int, "bin_type": str, "min_depth": float, "max_depth": float,
    "n_attractors": tuple, "attractor_alpha": float, "attractor_gamma": float, "attractor_type": str,
    "attractor_kind": str, "min_temp": float, "max_temp": float, "attractor_official_strength": bool,
    "attractor_normalize_points": bool, "dtype": str,
}
ZOEDEPTH_FINETUNE = {
    "stage": str, "init_seed": int,
    "model": ZOEDEPTH_MODEL, "train_backbone": bool,
    "init_from": str, "allow_random_init": bool,
    "data": TRAIN_DATA,
    "loss": {"w_si": float, **SILOG_LOSS},
    "optimizer": {"learning_rate": float, "weight_decay": float, "b1": float, "b2": float, "eps": float,
                  "encoder_lr_factor": float, "pos_enc_lr_factor": float, "midas_lr_factor": float,
                  "div_factor": float, "final_div_factor": float, "pct_start": float, "cycle_momentum": bool,
                  "base_momentum": float, "max_momentum": float, "clip_grad": float},
    "num_epochs": int, "num_train_steps": int,
    "eval": EVAL_DURING_TRAINING,
    **RUNTIME,
}
STE_PRETRAIN = {
    "stage": str, "init_seed": int,
    "model": {"encoder_dim": int, "style_dim": int, "mlp_dim": int, "decoder_res_blocks": int,
              "dis_dim": int, "dis_layers": int, "dis_scales": int, "dtype": str},
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
               "rgb_baseline": DEPTH_STAGE, "ste_pretrain": STE_PRETRAIN, "metric_bins_s2r": METRIC_BINS_STAGE,
               "zoedepth_finetune": ZOEDEPTH_FINETUNE}
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
    if config.fsdp_min_size < 1:
        problems.append(f"config.fsdp_min_size must be >= 1 (elements), got {config.fsdp_min_size}")
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


def _depth_stage_problems(config, modules=MODULES) -> list[str]:
    problems = []
    trained, frozen = tuple(config.train_modules), tuple(config.frozen_modules)
    for name, mods in (("train_modules", trained), ("frozen_modules", frozen)):
        unknown = [m for m in mods if m not in modules]
        if unknown:
            problems.append(f"config.{name}: unknown module(s) {unknown}; modules are {list(modules)}")
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
    problems += _eval_problems(config)
    return problems


def _eval_problems(config) -> list[str]:
    problems = []
    if config.eval.every_steps:
        if not config.eval.data.dataset:
            problems.append("config.eval.every_steps > 0 needs config.eval.data.dataset")
        metrics = LOWER_IS_BETTER + HIGHER_IS_BETTER
        if config.eval.best_metric not in metrics:
            problems.append(f"config.eval.best_metric must be one of {metrics}, got {config.eval.best_metric!r}")
        _positive(config, ("eval.batch_size",), problems)
    return problems


def _silog_problems(loss) -> list[str]:
    if not 0 <= loss.min_depth < loss.max_depth:
        return [f"config.loss: need 0 <= min_depth < max_depth, got {loss.min_depth}..{loss.max_depth}"]
    return []


def _metric_bins_problems(config) -> list[str]:
    problems = _depth_stage_problems(config, METRIC_MODULES) + _silog_problems(config.loss)
    m = config.model.metric_bins
    if "metric_head" not in tuple(config.train_modules) + tuple(config.frozen_modules):
        problems.append("config.train_modules: the metric-bins stage must train (or freeze) 'metric_head'")
    if config.model.rgb_baseline:
        problems.append("config.model.rgb_baseline: the metric-bins head sits on S2R-DepthNet, not the RGB baseline")
    if len(tuple(m.n_attractors)) != 4:
        problems.append(f"config.model.metric_bins.n_attractors: one count per decoder scale (4), got "
                        f"{tuple(m.n_attractors)}")
    problems += _bins_problems(m, "config.model.metric_bins")
    return problems


def _bins_problems(m, where: str) -> list[str]:
    problems = []
    if m.bin_type not in ("softplus", "normed"):
        problems.append(f"{where}.bin_type must be 'softplus' or 'normed', got {m.bin_type!r}")
    if m.attractor_type not in ("inv", "exp") or m.attractor_kind not in ("mean", "sum"):
        problems.append(f"{where}: attractor_type must be 'inv' or 'exp' and attractor_kind 'mean' or 'sum', got "
                        f"{m.attractor_type!r}, {m.attractor_kind!r}")
    if not 0 <= m.min_depth < m.max_depth:
        problems.append(f"{where}: need 0 <= min_depth < max_depth, got {m.min_depth}..{m.max_depth}")
    return problems


def _zoedepth_problems(config) -> list[str]:
    m, o = config.model, config.optimizer
    problems = _bins_problems(m, "config.model") + _silog_problems(config.loss) + _eval_problems(config)
    if m.kind not in ("n", "k"):
        problems.append(f"config.model.kind must be 'n' or 'k' (ZoeD-NK's training needs its router's domain loss, "
                        f"which is not implemented), got {m.kind!r}")
    size = tuple(m.img_size)
    if len(size) != 2 or any(s < 32 or s % 32 for s in size):
        problems.append(f"config.model.img_size {size}: (H, W), multiples of 32")
    _positive(config, ("num_epochs",), problems)
    _positive(config, ("num_train_steps", "eval.every_steps"), problems, allow_zero=("num_train_steps",
                                                                                        "eval.every_steps"))
    for name in ("encoder_lr_factor", "pos_enc_lr_factor", "midas_lr_factor", "div_factor", "final_div_factor"):
        if not o[name] > 0:
            problems.append(f"config.optimizer.{name} must be > 0, got {o[name]}")
    if not 0 < o.pct_start < 1:
        problems.append(f"config.optimizer.pct_start must be in (0, 1), got {o.pct_start}")
    if o.clip_grad < 0:
        problems.append(f"config.optimizer.clip_grad must be >= 0 (0: no clipping), got {o.clip_grad}")
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
        elif schema is METRIC_BINS_STAGE:
            problems += _metric_bins_problems(config)
        elif schema is ZOEDEPTH_FINETUNE:
            problems += _zoedepth_problems(config)
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
