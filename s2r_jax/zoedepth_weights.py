"""Import the released ZoeDepth state dicts (ZoeD_M12_{N,K,NK}.pt as {name: numpy array}).

As `s2r_jax.weights` does for S2R-DepthNet: a table maps every official key prefix to the
Flax module path and kind it fills; every official key must be claimed by the table and
every Flax parameter filled from it; all problems (missing, unexpected, mis-shaped keys)
are raised together as one `WeightImportError`.

Keys the table claims but does not import, each with the reason:
- `relative_position_index` (every BEiT block) and the log-binomial's `k_idx`,
  `K_minus_1`: constants the model computes itself (the first depends on the input's
  patch grid);
- timm's ImageNet classifier `head.*`, `fc_norm.*`: not part of the depth network;
- MiDaS's `scratch.refinenet4.resConfUnit1`: built by MiDaS but never run (the coarsest
  fusion block has no skip input).

The model kind ('n', 'k', 'nk') is detected from the keys: the router's keys mean ZoeD-NK;
otherwise normed bins (ZoeD-K) have two outputs per attractor. This module needs neither
torch nor tensorflow; `s2r_jax.convert --zoedepth` reads the `.pt` file.
"""
from __future__ import annotations

from typing import Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models.zoedepth import KINDS, NK_BIN_CONF, build_zoedepth
from s2r_jax.weights import WeightImportError, _get, _set, raise_if_mismatched

# Official parameter counts (`sum(p.numel() for p in model.parameters())`), from the
# reference layouts; ours are smaller by the classifier and the unused fusion unit.
OFFICIAL_PARAMS = {"n": 344_816_746, "k": 344_820_487, "nk": 346_100_355}
UNUSED_PREFIXES = ("core.core.pretrained.model.head.", "core.core.pretrained.model.fc_norm.",
                   "core.core.scratch.refinenet4.resConfUnit1.")
_INDEX_BUFFERS = ("relative_position_index", "k_idx", "K_minus_1")
_BEIT = "core.core.pretrained.model."
_MIDAS = "core.core."


def _midas(depth: int) -> Iterator[tuple]:
    """(official prefix, Flax path, kind) for MiDaS DPT-BEiT-L."""
    m = ("midas",)
    yield f"{_BEIT}cls_token", m + ("beit", "cls_token"), "param"
    yield f"{_BEIT}patch_embed.proj", m + ("beit", "patch_embed"), "conv"
    for i in range(depth):
        p, f = f"{_BEIT}blocks.{i}.", m + ("beit", f"block{i}")
        for leaf in ("gamma_1", "gamma_2"):
            yield p + leaf, f + (leaf,), "param"
        for leaf in ("q_bias", "v_bias", "relative_position_bias_table"):
            yield p + "attn." + leaf, f + ("attn", leaf), "param"
        yield p + "attn.qkv", f + ("attn", "qkv"), "linear"
        yield p + "attn.proj", f + ("attn", "proj"), "linear"
        yield p + "norm1", f + ("norm1",), "layernorm"
        yield p + "norm2", f + ("norm2",), "layernorm"
        yield p + "mlp.fc1", f + ("fc1",), "linear"
        yield p + "mlp.fc2", f + ("fc2",), "linear"
    for j, resample in ((1, "convT"), (2, "convT"), (3, None), (4, "conv")):
        p, f = f"{_MIDAS}pretrained.act_postprocess{j}.", m + (f"reassemble{j}",)
        yield p + "0.project.0", f + ("readout",), "linear"
        yield p + "3", f + ("conv",), "conv"
        if resample:
            yield p + "4", f + ("resample",), resample
    for j in (1, 2, 3, 4):
        yield f"{_MIDAS}scratch.layer{j}_rn", m + (f"layer{j}_rn",), "conv"
        p, f = f"{_MIDAS}scratch.refinenet{j}.", m + (f"refinenet{j}",)
        yield p + "out_conv", f + ("out_conv",), "conv"
        for u in ((2,) if j == 4 else (1, 2)):
            for c in (1, 2):
                yield p + f"resConfUnit{u}.conv{c}", f + (f"res_conf_unit{u}", f"conv{c}"), "conv"
    for idx, name in ((0, "head_conv1"), (2, "head_conv2"), (4, "head_conv3")):
        yield f"{_MIDAS}scratch.output_conv.{idx}", m + (name,), "conv"


def _mlp(prefix: str, path: tuple, net: str = "_net") -> Iterator[tuple]:
    yield f"{prefix}.{net}.0", path + ("mlp", "conv1"), "conv"
    yield f"{prefix}.{net}.2", path + ("mlp", "conv2"), "conv"


def _head(seed: str, attractors: str, clb: str, path: tuple) -> Iterator[tuple]:
    yield from _mlp(seed, path + ("seed_bin_regressor",))
    for i in range(4):
        yield from _mlp(f"{attractors}.{i}", path + (f"attractor{i}",))
    yield from _mlp(clb, path + ("conditional_log_binomial",), "mlp")


def _table(kind: str, depth: int = 24) -> Iterator[tuple]:
    yield from _midas(depth)
    yield "conv2", ("conv2",), "conv"
    yield from _mlp("seed_projector", ("seed_projector",))
    for i in range(4):
        yield from _mlp(f"projectors.{i}", (f"projectors_{i}",))
    if kind != "nk":
        yield from _head("seed_bin_regressor", "attractors", "conditional_log_binomial", ("head",))
        return
    for name, *_ in NK_BIN_CONF:
        yield from _head(f"seed_bin_regressors.{name}", f"attractors.{name}", f"conditional_log_binomial.{name}",
                         (f"head_{name}",))
    r = "patch_transformer."
    yield r + "embedding_convPxP", ("router", "embedding"), "conv"
    for i in range(4):
        p, f = f"{r}transformer_encoder.layers.{i}.", ("router", f"layer{i}")
        yield p + "self_attn", f + ("in_proj",), "in_proj"
        yield p + "self_attn.out_proj", f + ("out_proj",), "linear"
        yield p + "linear1", f + ("linear1",), "linear"
        yield p + "linear2", f + ("linear2",), "linear"
        yield p + "norm1", f + ("norm1",), "layernorm"
        yield p + "norm2", f + ("norm2",), "layernorm"
    yield "mlp_classifier.0", ("router", "classifier1"), "linear"
    yield "mlp_classifier.2", ("router", "classifier2"), "linear"


# kind -> [(torch leaf, flax leaf, torch -> flax, flax shape -> torch shape, flax -> torch)];
# None leaf: the table's key itself. Conv/linear biases are added where the module has one.
_IDENTITY = (lambda a: a, lambda s: s, lambda a: a)
_TRANSPOSE = (lambda w: w.T, lambda s: (s[1], s[0]), lambda k: k.T)
_LEAVES = {
    "conv": [("weight", "kernel", lambda w: w.transpose(2, 3, 1, 0), lambda s: (s[3], s[2], s[0], s[1]),
              lambda k: k.transpose(3, 2, 0, 1))],
    "convT": [("weight", "kernel", lambda w: w.transpose(2, 3, 0, 1), lambda s: (s[2], s[3], s[0], s[1]),
               lambda k: k.transpose(2, 3, 0, 1))],
    "linear": [("weight", "kernel", *_TRANSPOSE)],
    "in_proj": [("in_proj_weight", "kernel", *_TRANSPOSE), ("in_proj_bias", "bias", *_IDENTITY)],
    "layernorm": [("weight", "scale", *_IDENTITY), ("bias", "bias", *_IDENTITY)],
    "param": [(None, None, *_IDENTITY)],
}


def _entries(kind: str, shapes: Mapping, depth: int) -> Iterator[tuple]:
    """(official key, Flax path, torch -> flax, flax shape -> torch shape, flax -> torch) for every parameter."""
    for prefix, path, table_kind in _table(kind, depth):
        for torch_leaf, flax_leaf, *fns in _LEAVES[table_kind]:
            yield (prefix if torch_leaf is None else f"{prefix}.{torch_leaf}",
                   path if flax_leaf is None else path + (flax_leaf,), *fns)
        if table_kind in ("conv", "convT", "linear") and "bias" in _get(shapes, path):
            yield (f"{prefix}.bias", path + ("bias",), *_IDENTITY)


def detect_kind(state_dict: Mapping[str, np.ndarray]) -> str:
    """'nk' if the router is there; else 'k' for normed bins (two outputs per attractor), else 'n'."""
    sd = strip_wrappers(state_dict)
    if any(k.startswith("patch_transformer.") for k in sd):
        return "nk"
    last = sd.get("attractors.3._net.2.weight")
    first = sd.get("attractors.0._net.2.weight")
    if last is None or first is None:
        raise WeightImportError("cannot tell the ZoeDepth model kind: the state dict has neither ZoeD-NK's router "
                                "(patch_transformer.*) nor a single head's attractors (attractors.0/3._net.2.weight); "
                                "is this a ZoeDepth checkpoint?")
    return "k" if np.shape(last)[0] == 2 else "n"


def strip_wrappers(state_dict: Mapping) -> dict:
    """Accept `{"model": state_dict}` and DataParallel's `module.` prefix, as the official loader."""
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


_SHAPES: dict = {}


def flax_shapes(kind: str, **overrides) -> dict:
    """Shapes of the parameters of `build_zoedepth(kind, **overrides)` (no compute; cached)."""
    key = (kind, repr(sorted(overrides.items())))
    if key not in _SHAPES:
        model = build_zoedepth(kind, **overrides)
        _SHAPES[key] = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))["params"]
    return _SHAPES[key]


def import_zoedepth(state_dict: Mapping, kind: str | None = None, source: str = "", **model_overrides) -> dict:
    """An official ZoeDepth state dict -> `{'params': ...}` for `build_zoedepth(kind)`.

    `kind` ('n', 'k', 'nk') is detected from the keys when None. `model_overrides` are
    the model's size fields when importing a smaller model of the official layout (tests).
    Raises `WeightImportError` listing every missing, unexpected or mis-shaped key.
    """
    sd = {k: np.asarray(v) for k, v in strip_wrappers(state_dict).items()}
    kind = detect_kind(sd) if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"unknown ZoeDepth kind {kind!r}; expected one of {KINDS}")
    shapes = flax_shapes(kind, **model_overrides)
    params: dict = {}
    claimed, missing, misshaped = set(), [], []
    for key, path, to_flax, torch_shape, _ in _entries(kind, shapes, model_overrides.get("depth", 24)):
        claimed.add(key)
        expected = tuple(torch_shape(_get(shapes, path).shape))
        if key not in sd:
            missing.append(key)
        elif tuple(sd[key].shape) != expected:
            misshaped.append(f"{key}: got {tuple(sd[key].shape)}, expected {expected}")
        else:
            _set(params, path, np.asarray(to_flax(sd[key]), np.float32))
    ignored = {k for k in sd if k.startswith(UNUSED_PREFIXES) or k.rsplit(".", 1)[-1] in _INDEX_BUFFERS}
    unexpected = sorted(set(sd) - claimed - ignored)
    raise_if_mismatched(f"state dict {source or 'given'!r} does not match the official ZoeD-{kind.upper()} layout:",
                        missing, unexpected, misshaped)
    return {"params": params}


def export_zoedepth(variables: Mapping, kind: str, depth: int = 24) -> dict[str, np.ndarray]:
    """The inverse of `import_zoedepth`: our variables -> an official-layout state dict (without
    the constants, the classifier and the unused fusion unit, which PyTorch rebuilds), e.g.
    to load weights trained here into the official PyTorch model with strict=False."""
    params = variables["params"]
    return {key: np.asarray(from_flax(np.asarray(_get(params, path))))
            for key, path, _, _, from_flax in _entries(kind, params, depth)}
