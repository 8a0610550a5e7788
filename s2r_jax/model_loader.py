"""A checkpoint directory -> a ready depth model: what evaluation, prediction and export
share (no tensorflow).

Two families, one interface. **S2R-DepthNet** (`LoadedModel`): a checkpoint written by
training carries its config (`meta['config']`): the model's widths, input size, attention,
depth range, and for the metric-bins variant (stage `metric_bins_s2r`) its head. One
written by `s2r_jax.convert` (the released weights) has none: the official network at
192x640 with attention and 80 m. **ZoeDepth** (`LoadedZoeDepth`): a converted released
model (meta `family: zoedepth`, `kind`, `model_config`) or a fine-tuning workdir (stage
`zoedepth_finetune`, the model in `config.model`).

Both give `family`, `variables`, `meta`, `image_size`, `metric_depth(variables, images01)`
(pure: RGB in [0, 1] -> metres; what export serialises) and `evaluation`, an
`EvaluationInterface`: how the family's official evaluation shows the model an image and
reads its output, which `eval.py` and evaluation during training hand to
`evaluation.evaluator.DatasetEvaluation`.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from s2r_jax.checkpoint import load_variables
from s2r_jax.models import KITTI_MAX_DEPTH, RGBBaseline, S2RDepthNet, to_metres
from s2r_jax.models.s2r_metric_bins import METRIC_HEAD, S2RMetricBins

OFFICIAL_IMAGE_SIZE = (192, 640)  # H, W: the input size of the released KITTI model
_DTYPES = ("float32", "bfloat16", "float64")
_MODEL_FIELDS = ("encoder_dim", "depth_ngf", "dsa_channels", "shared_prelu", "align_corners")
ZOEDEPTH_STAGE = "zoedepth_finetune"  # the training stage of configs/zoedepth_finetune.py


class CheckpointModelError(ValueError):
    """A checkpoint (or an argument) no depth model can be built from; the message says why."""


@dataclasses.dataclass(frozen=True)
class EvaluationInterface:
    """How a model family is evaluated, as its official evaluation does it.

    predict: pure `(variables, images) -> (N, h, w, 1)`, jitted by the evaluator (flip TTA
      mirrors `images`).
    image_size: (H, W) of the images `preprocess` makes.
    depth_range_m: the prediction is a tanh output; metres = (x + 1) / 2 * range after it is
      resized to the ground truth (S2R-DepthNet's test.py). None: it is in metres already.
    preprocess: `(uint8 RGB (h, w, 3), numpy dtype) -> (H, W, 3)` model input from the image
      (after the protocol's crop); None: the official S2R test's (`preprocessing.model_input`:
      Pillow bicubic to image_size, [-1, 1]).
    """

    predict: Callable
    image_size: tuple
    depth_range_m: float | None
    preprocess: Callable | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint's network is and how to run it."""

    model: dict        # S2RDepthNet keyword arguments (dtype as a string)
    image_size: tuple  # (H, W) the network takes
    use_attention: bool
    depth_range_m: float  # metres that a tanh output of +1 stands for (the training data's depth_range_m)
    rgb_baseline: bool = False  # config.model.rgb_baseline: DepthNet on the RGB image, not S2R-DepthNet
    metric_bins: dict | None = None  # config.model.metric_bins: the metric-bins variant's head (metres out)


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
    metric_bins = given.pop("metric_bins", None)
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
    return ModelSpec(model, size, use_attention, depth_range, rgb_baseline,
                     dict(metric_bins) if metric_bins is not None else None)


def check_model_size(size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(s) for s in size)
    if len(size) != 2 or any(s < 96 or s % 16 for s in size):
        raise CheckpointModelError(f"model input size {size} (H, W): each must be a multiple of 16 and at least 96 "
                                   "(e.g. 192,640)")
    return size


class LoadedModel:
    """A restored S2R-DepthNet (or its RGB baseline, or its metric-bins variant) and how to run it.

    `finest_fn`, `depth_fn` and `metric_depth` are pure functions of (variables, images), for
    jit, sharding and export; `finest` and `predict` run `finest_fn` on this model's variables.
    """

    family = "s2r"

    def __init__(self, variables: Any, spec: ModelSpec, meta: dict | None = None):
        self.spec, self.meta, self.variables = spec, meta or {}, variables
        self.image_size = check_model_size(spec.image_size)
        self.use_attention = spec.use_attention
        self.metric = spec.metric_bins is not None
        if spec.model["dtype"] not in _DTYPES:
            raise CheckpointModelError(f"model dtype {spec.model['dtype']!r}: expected one of {_DTYPES}")
        dtype = jnp.dtype(spec.model["dtype"])
        if spec.rgb_baseline:
            self.model = RGBBaseline(depth_ngf=spec.model["depth_ngf"], dtype=dtype)
            needed = ["depth_net"]
        else:
            needed = ["struct_encoder", "struct_decoder", "depth_net"] + (["dsa"] if self.use_attention else [])
            if self.metric:
                self.model = S2RMetricBins(**dict(spec.model, dtype=dtype), metric_bins=spec.metric_bins)
                needed.append(METRIC_HEAD)
            else:
                self.model = S2RDepthNet(**dict(spec.model, dtype=dtype))
        have = set(variables.get("params", {}))
        missing = [m for m in needed if m not in have]
        if missing:
            raise CheckpointModelError(f"the checkpoint holds no {', '.join(missing)} (it holds {sorted(have)}); "
                                       f"the model needs {', '.join(needed)}")
        self._finest = jax.jit(self.finest_fn)

    def finest_fn(self, variables: Any, images: jax.Array) -> jax.Array:
        """Pure: (N, H, W, 3) in [-1, 1] at `image_size` -> the finest output (N, H, W, 1) in [-1, 1]."""
        return self.model.apply(variables, images, use_attention=self.use_attention)["depth"][-1]

    def depth_fn(self, variables: Any, images: jax.Array) -> jax.Array:
        """Pure: (N, H, W, 3) in [-1, 1] -> the depth the model predicts, (N, H, W, 1): the
        finest tanh output, or metres for the metric-bins variant."""
        if self.metric:
            return self.model.apply(variables, images, use_attention=self.use_attention)["metric_depth"]
        return self.finest_fn(variables, images)

    @property
    def depth_range_m(self) -> float | None:
        """Metres of a tanh output of +1; None when the model predicts metres."""
        return None if self.metric else float(self.spec.depth_range_m)

    @property
    def evaluation(self) -> EvaluationInterface:
        """The official S2R test: Pillow bicubic to `image_size`, [-1, 1]; the output resized to
        the ground truth (align_corners), then mapped to metres."""
        return EvaluationInterface(self.depth_fn, self.image_size, self.depth_range_m)

    def metric_depth(self, variables: Any, images01: jax.Array) -> jax.Array:
        """Pure and traceable (what export serialises): (N, H, W, 3) float32 RGB in [0, 1] at
        `image_size` -> (N, H, W) float32 depth in metres at that size."""
        x = images01.astype(jnp.float32) * 2.0 - 1.0
        if self.metric:
            return self.depth_fn(variables, x)[..., 0].astype(jnp.float32)
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


def zoedepth_fields(meta: Mapping) -> tuple[str, dict] | None:
    """(kind, `build_zoedepth` fields) of a ZoeDepth checkpoint's meta, or None for an S2R-DepthNet
    one. Fields this version does not know are ignored with a warning."""
    from s2r_jax.models.zoedepth import KINDS, ZoeDepth, ZoeDepthNK

    if not isinstance(meta, Mapping):
        return None
    config = meta.get("config") or {}
    if meta.get("family") == "zoedepth":
        kind, fields = meta.get("kind"), dict(meta.get("model_config") or {})
    elif isinstance(config, Mapping) and config.get("stage") == ZOEDEPTH_STAGE:
        fields = dict(config.get("model") or {})
        kind = fields.pop("kind", None)
    else:
        return None
    if kind not in KINDS:
        raise CheckpointModelError(f"ZoeDepth checkpoint of unknown kind {kind!r}; expected one of {KINDS}")
    known = set((ZoeDepthNK if kind == "nk" else ZoeDepth).__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(fields) - known)
    if unknown:
        logging.warning("ignoring ZoeDepth model field(s) %s of the checkpoint", unknown)
    return kind, {k: v for k, v in fields.items() if k in known}


def zoedepth_evaluation_input(rgb: np.ndarray, dtype, size: Sequence[int]) -> np.ndarray:
    """What official ZoeDepth evaluation feeds its network: the image as float / 255 (its
    loader's `np.asarray(image, float32) / 255`), resized to `size` with align_corners
    bilinear (`MidasCore.prep`), here on the host with torch's float32 kernel bit for bit
    (`evaluation.resize.upsample_to`). The network then only normalises it."""
    from s2r_jax.evaluation.resize import upsample_to

    t = np.dtype(dtype).type
    x = rgb.astype(t) / t(255)
    return np.stack([upsample_to(x[..., c], size) for c in range(3)], axis=-1).astype(t)


def zoedepth_evaluation(model) -> EvaluationInterface:
    """ZoeDepth as the official evaluate.py runs it (the 'eval' config): the image at the
    dataset's resolution (the KB crop for KITTI) resized to exactly the network size,
    `keep_aspect_ratio=False` (no `force_keep_ar` in that config), the forward's metric depth at
    that size, averaged with the mirrored image's by the evaluator when the protocol says flip
    TTA (evaluate.py's `infer`) and resized to the ground truth as `compute_metrics` does
    (align_corners bilinear). ZoeD-NK routes each image by its own vote, as the official
    evaluation of one image at a time does."""
    from s2r_jax.models.zoedepth import ZoeDepthNK, midas_input_size

    size = midas_input_size(*model.img_size, model.img_size, keep_aspect_ratio=False)
    per_image = {"route": "image"} if isinstance(model, ZoeDepthNK) else {}
    network = model.clone(keep_aspect_ratio=False, resize_input=False, **per_image)
    predict = lambda variables, images: network.apply(variables, images)["metric_depth"]
    return EvaluationInterface(predict, size, None, functools.partial(zoedepth_evaluation_input, size=size))


def check_zoedepth_size(size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(s) for s in size)
    if len(size) != 2 or any(s < 32 or s % 32 for s in size):
        raise CheckpointModelError(f"ZoeDepth network size {size} (H, W): each must be a multiple of 32 "
                                   "(e.g. 384,512)")
    return size


class LoadedZoeDepth:
    """A restored ZoeDepth (N, K, NK; released or fine-tuned) and how to run it.

    `metric_depth` is the official `model.infer(x)` (reflect padding, the network at a
    multiple of 32 near `image_size` keeping the aspect ratio as the official 'infer' config
    does, torch's bicubic back, flip averaging): RGB in [0, 1] of any size -> metres at that
    size. `evaluation` is the official evaluate.py's way (`zoedepth_evaluation`). ZoeD-NK
    routes each image by its own vote in both (the official model on one image).
    """

    family = "zoedepth"

    def __init__(self, variables: Any, kind: str, fields: Mapping, meta: dict | None = None):
        from s2r_jax.models.zoedepth import build_zoedepth

        self.kind, self.variables, self.meta = kind, variables, meta or {}
        fields = dict(fields)
        dtype = fields.get("dtype", "float32")
        if isinstance(dtype, str) and dtype not in _DTYPES:
            raise CheckpointModelError(f"model dtype {dtype!r}: expected one of {_DTYPES}")
        self.model = build_zoedepth(kind, **fields)
        self.image_size = check_zoedepth_size(self.model.img_size)
        self.dtype = jnp.dtype(self.model.dtype).name
        self.infer_model = self.model.clone(keep_aspect_ratio=True, **({"route": "image"} if kind == "nk" else {}))
        self.evaluation = zoedepth_evaluation(self.model)
        have = set(variables.get("params", {}))
        needed = {"midas", "conv2", "seed_projector", *(f"projectors_{i}" for i in range(4))} | (
            {"head_nyu", "head_kitti", "router"} if kind == "nk" else {"head"})
        if have != needed:
            raise CheckpointModelError(f"the checkpoint's modules {sorted(have)} are not ZoeD-{kind.upper()}'s "
                                       f"({sorted(needed)}): missing {sorted(needed - have)}, unexpected "
                                       f"{sorted(have - needed)}")

    def metric_depth(self, variables: Any, images01: jax.Array, pad_input: bool = True,
                     with_flip_aug: bool = True) -> jax.Array:
        """Pure and traceable: (N, H, W, 3) RGB in [0, 1], any size -> (N, H, W) float32 metres."""
        from s2r_jax.models.zoedepth import infer

        return infer(self.infer_model, variables, images01, pad_input=pad_input, with_flip_aug=with_flip_aug)


def load_model(checkpoint: str, step: int | None = None, depth_range_m: float | None = None,
               image_size: Sequence[int] | None = None, dtype: str | None = None,
               sharding=None) -> LoadedModel | LoadedZoeDepth:
    """The latest (or given) step of a checkpoint directory as a `LoadedModel` (S2R-DepthNet)
    or a `LoadedZoeDepth`, whichever the checkpoint holds.

    `depth_range_m` (metres for a network output of +1) defaults to the training config's
    `data.depth_range_m`, else 80 (KITTI; the official NYUv2 model: 8); models that predict
    metres (ZoeDepth, the metric-bins variant) refuse it. `image_size` (H, W) replaces the
    size the checkpoint was trained at (the network is fully convolutional; for ZoeDepth the
    network size `img_size`, multiples of 32). `dtype` replaces the compute dtype ('float32',
    'bfloat16', 'float64'; float64 needs jax_enable_x64). `sharding`: where the variables go
    (see `checkpoint.load_variables`).
    """
    variables, meta = load_variables(checkpoint, step, sharding)
    if dtype is not None and dtype not in _DTYPES:
        raise CheckpointModelError(f"dtype {dtype!r}: expected one of {_DTYPES}")
    zoedepth = zoedepth_fields(meta)
    if zoedepth is not None:
        kind, fields = zoedepth
        _refuse_depth_range(depth_range_m, f"{checkpoint} holds ZoeD-{kind.upper()}")
        if image_size is not None:
            fields["img_size"] = check_zoedepth_size(image_size)
        if dtype is not None:
            fields["dtype"] = dtype
        return LoadedZoeDepth(variables, kind, fields, meta)
    spec = model_spec(meta)
    if depth_range_m is not None:
        if spec.metric_bins is not None:
            _refuse_depth_range(depth_range_m, f"{checkpoint} holds the metric-bins S2R-DepthNet")
        if not depth_range_m > 0:
            raise CheckpointModelError(f"depth_range_m must be positive, got {depth_range_m}")
        spec = dataclasses.replace(spec, depth_range_m=float(depth_range_m))
    if image_size is not None:
        spec = dataclasses.replace(spec, image_size=check_model_size(image_size))
    if dtype is not None:
        spec = dataclasses.replace(spec, model=dict(spec.model, dtype=dtype))
    return LoadedModel(variables, spec, meta)


def _refuse_depth_range(depth_range_m, what: str) -> None:
    if depth_range_m is not None:
        raise CheckpointModelError(f"{what}, which predicts metres: a depth range ({depth_range_m} m for a tanh "
                                   "output of +1) does not apply; leave it unset (eval: model_depth_range_m=0, "
                                   "e.g. configs/eval_nyu.py:zoedepth; predict: no --depth_range_m)")
