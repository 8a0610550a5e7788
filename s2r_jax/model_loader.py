"""A checkpoint directory -> a ready depth model: what evaluation, prediction and export
share (no tensorflow).

A checkpoint written by training carries its config (`meta['config']`): the model's
widths, input size, attention, depth range. One written by `s2r_jax.convert` (the
released weights) has none: the official network at 192x640 with attention and 80 m.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from s2r_jax.checkpoint import load_variables
from s2r_jax.models import KITTI_MAX_DEPTH, RGBBaseline, S2RDepthNet, to_metres

OFFICIAL_IMAGE_SIZE = (192, 640)  # H, W: the input size of the released KITTI model
_DTYPES = ("float32", "bfloat16", "float64")
_MODEL_FIELDS = ("encoder_dim", "depth_ngf", "dsa_channels", "shared_prelu", "align_corners")


class CheckpointModelError(ValueError):
    """A checkpoint (or an argument) no depth model can be built from; the message says why."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint's network is and how to run it."""

    model: dict        # S2RDepthNet keyword arguments (dtype as a string)
    image_size: tuple  # (H, W) the network takes
    use_attention: bool
    depth_range_m: float  # metres that a tanh output of +1 stands for (the training data's depth_range_m)
    rgb_baseline: bool = False  # config.model.rgb_baseline: DepthNet on the RGB image, not S2R-DepthNet


def model_spec(meta: dict) -> ModelSpec:
    """The network, input size, attention and depth range a checkpoint's `meta` describes.

    Fields of `config.model` that this version does not know are ignored with a warning
    (a network they would change no longer fits the checkpoint's variables, and
    building the model says so).
    """
    official = {name: getattr(S2RDepthNet, name) for name in _MODEL_FIELDS}  # the class defaults
    official["dsa_channels"] = tuple(official["dsa_channels"])
    official["dtype"] = "float32"
    config = meta.get("config") if isinstance(meta, dict) else None
    if not config:
        if isinstance(meta, dict) and meta.get("written_by") not in (None, "s2r_jax.convert"):
            raise CheckpointModelError(f"checkpoint written by {meta.get('written_by')!r} has no config to build "
                                       "the model from")
        return ModelSpec(official, OFFICIAL_IMAGE_SIZE, True, KITTI_MAX_DEPTH)
    stage = config.get("stage")
    if "model" not in config or stage == "ste_pretrain":
        raise CheckpointModelError(f"the checkpoint (stage {stage!r}) holds no depth model: use one of a depth "
                                   "stage or one written by s2r_jax.convert")
    given = dict(config["model"])
    rgb_baseline = bool(given.pop("rgb_baseline", False))
    unknown = sorted(set(given) - set(official))
    if unknown:
        logging.warning("ignoring config.model field(s) %s of the checkpoint (stage %r)", unknown, stage)
    model = dict(official, **{k: v for k, v in given.items() if k in official})
    model["dsa_channels"] = tuple(int(c) for c in model["dsa_channels"])
    data = config.get("data", {})
    size = tuple(int(s) for s in data.get("image_size", OFFICIAL_IMAGE_SIZE))
    use_attention = bool(config.get("use_attention", True)) and not rgb_baseline
    # checkpoints of s2r_jax 0.1 called the training depth range data.max_depth
    depth_range = float(data.get("depth_range_m", data.get("max_depth", KITTI_MAX_DEPTH)))
    return ModelSpec(model, size, use_attention, depth_range, rgb_baseline)


def check_model_size(size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(s) for s in size)
    if len(size) != 2 or any(s < 96 or s % 16 for s in size):
        raise CheckpointModelError(f"model input size {size} (H, W): each must be a multiple of 16 and at least 96 "
                                   "(e.g. 192,640)")
    return size


class LoadedModel:
    """A restored model and how to run it.

    `finest_fn` and `metric_depth` are pure functions of (variables, images), for jit,
    sharding and export; `finest` and `predict` run them on this model's variables.
    """

    def __init__(self, variables: Any, spec: ModelSpec, meta: dict | None = None):
        self.spec, self.meta, self.variables = spec, meta or {}, variables
        self.image_size = check_model_size(spec.image_size)
        self.use_attention = spec.use_attention
        if spec.model["dtype"] not in _DTYPES:
            raise CheckpointModelError(f"model dtype {spec.model['dtype']!r}: expected one of {_DTYPES}")
        dtype = jnp.dtype(spec.model["dtype"])
        if spec.rgb_baseline:
            self.model = RGBBaseline(depth_ngf=spec.model["depth_ngf"], dtype=dtype)
            needed = ["depth_net"]
        else:
            self.model = S2RDepthNet(**dict(spec.model, dtype=dtype))
            needed = ["struct_encoder", "struct_decoder", "depth_net"] + (["dsa"] if self.use_attention else [])
        have = set(variables.get("params", {}))
        missing = [m for m in needed if m not in have]
        if missing:
            raise CheckpointModelError(f"the checkpoint holds no {', '.join(missing)} (it holds {sorted(have)}); "
                                       f"the model needs {', '.join(needed)}")
        self._finest = jax.jit(self.finest_fn)

    def finest_fn(self, variables: Any, images: jax.Array) -> jax.Array:
        """Pure: (N, H, W, 3) in [-1, 1] at `image_size` -> the finest output (N, H, W, 1) in [-1, 1]."""
        return self.model.apply(variables, images, use_attention=self.use_attention)["depth"][-1]

    def metric_depth(self, variables: Any, images01: jax.Array) -> jax.Array:
        """Pure and traceable (what export serialises): (N, H, W, 3) float32 RGB in [0, 1] at
        `image_size` -> (N, H, W) float32 depth in metres at that size."""
        x = images01.astype(jnp.float32) * 2.0 - 1.0
        return to_metres(self.finest_fn(variables, x), max_depth=self.spec.depth_range_m)[..., 0]

    def finest(self, images) -> jax.Array:
        """`finest_fn` on this model's variables, jitted, on device."""
        return self._finest(self.variables, images)

    def predict(self, images: np.ndarray, flip_tta: bool = False) -> np.ndarray:
        """As `finest`, as NumPy (N, H, W); `flip_tta` averages with the mirrored image's
        prediction, mirrored back."""
        out = self.finest(jnp.asarray(images))[..., 0]
        if flip_tta:
            flipped = self.finest(jnp.asarray(np.asarray(images)[:, :, ::-1]))[..., 0]
            out = (out + flipped[:, :, ::-1]) / 2
        return np.asarray(out)


def load_model(checkpoint: str, step: int | None = None, depth_range_m: float | None = None,
               image_size: Sequence[int] | None = None, dtype: str | None = None, sharding=None) -> LoadedModel:
    """The latest (or given) step of a checkpoint directory as a `LoadedModel`.

    `depth_range_m` (metres for a network output of +1) defaults to the training config's
    `data.depth_range_m`, else 80 (KITTI; the official NYUv2 model: 8). `image_size` (H, W)
    replaces the size the checkpoint was trained at (the network is fully convolutional).
    `dtype` replaces the compute dtype ('float32', 'bfloat16', 'float64'; float64 needs
    jax_enable_x64). `sharding`: where the variables go (see `checkpoint.load_variables`).
    """
    variables, meta = load_variables(checkpoint, step, sharding)
    spec = model_spec(meta)
    if depth_range_m is not None:
        if not depth_range_m > 0:
            raise CheckpointModelError(f"depth_range_m must be positive, got {depth_range_m}")
        spec = dataclasses.replace(spec, depth_range_m=float(depth_range_m))
    if image_size is not None:
        spec = dataclasses.replace(spec, image_size=check_model_size(image_size))
    if dtype is not None:
        if dtype not in _DTYPES:
            raise CheckpointModelError(f"dtype {dtype!r}: expected one of {_DTYPES}")
        spec = dataclasses.replace(spec, model=dict(spec.model, dtype=dtype))
    return LoadedModel(variables, spec, meta)
