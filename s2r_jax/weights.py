"""Official PyTorch state dicts ({name: numpy array}) to our variables and back.

One table per network maps each official module prefix to its Flax module path and
kind. The table, not string munging, is the contract: every official key must be
claimed by it, and every Flax parameter must be filled from it. All problems
(missing, unexpected and mis-shaped keys) are gathered and raised together as one
`WeightImportError`, so a user fixes a checkpoint in one pass.

`export_state_dict` walks the same tables the other way (our variables -> the official
keys), for loading weights trained here into the official PyTorch model.

This module needs neither torch nor tensorflow; `s2r_jax.convert` reads and writes
`.pth` files with torch and calls `import_state_dict` / `export_state_dict`.
"""
from __future__ import annotations

import functools
from typing import Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.models import S2RDepthNet

# Official networks that can be imported, and the S2RDepthNet submodule each fills.
NETWORKS = {
    "struct_encoder": "struct_encoder",
    "struct_decoder": "struct_decoder",
    "dsa": "dsa",
    "depth_net": "depth_net",
    "drn_d_22_imagenet": "dsa",  # the ImageNet DRN-D-22 initialises the DSA trunk only
}

# Networks `export_state_dict` writes (the ImageNet DRN is an input only, never an output).
EXPORTABLE = ("struct_encoder", "struct_decoder", "dsa", "depth_net")

# Parameter counts of the official PyTorch networks (DepthNet's shared PReLU once).
OFFICIAL_PARAMS = {"struct_encoder": 5_385_856, "struct_decoder": 2_234_049, "dsa": 25_259_761,
                   "depth_net": 54_558_404}
_OPTIONAL = ("num_batches_tracked",)  # absent from checkpoints of PyTorch < 0.4.1; unused here


class WeightImportError(ValueError):
    """A state dict does not match the official layout; lists every problem."""


class WeightExportError(ValueError):
    """Variables that the official layout has no place for, or that lack a leaf it needs."""


def _up_projection(torch_prefix: str, flax_path: tuple) -> Iterator[tuple]:
    for conv, bn in (("conv1", "bn1"), ("conv1_2", "bn1_2"), ("conv2", "bn2")):
        yield f"{torch_prefix}.{conv}", flax_path + (conv,), "conv"
        yield f"{torch_prefix}.{bn}", flax_path + (bn,), "bn"


def _struct_encoder() -> Iterator[tuple]:
    yield "conv.conv", ("conv", "conv"), "conv"
    for i in (1, 2):
        yield f"conv{i}.conv", (f"down{i}", "conv"), "conv"
    for i in range(4):
        for c in ("conv1", "conv2"):
            yield f"resblock.model.{i}.{c}", (f"res{i}", c), "conv"


def _struct_decoder(prefix: str = "", path: tuple = ()) -> Iterator[tuple]:
    for j in (1, 2):
        yield from _up_projection(f"{prefix}up{j}", path + (f"up{j}",))
    yield f"{prefix}conv", path + ("conv",), "conv"


def _drn_trunk(prefix: str) -> Iterator[tuple]:
    """DRN-D-22 levels 0..8 under `prefix` (e.g. 'E.base.' or '' for ImageNet keys)."""
    t = ("trunk",)
    for level in (0, 1, 2, 7, 8):
        yield f"{prefix}{level}.0", t + (f"layer{level}", "conv"), "conv"
        yield f"{prefix}{level}.1", t + (f"layer{level}", "bn"), "bn"
    for level in (3, 4, 5, 6):
        for b in (0, 1):
            p, f = f"{prefix}{level}.{b}", t + (f"layer{level}_{b}",)
            for c in ("1", "2"):
                yield f"{p}.conv{c}", f + (f"conv{c}",), "conv"
                yield f"{p}.bn{c}", f + (f"bn{c}",), "bn"
            if b == 0:
                yield f"{p}.downsample.0", f + ("downsample_conv",), "conv"
                yield f"{p}.downsample.1", f + ("downsample_bn",), "bn"


def _dsa() -> Iterator[tuple]:
    yield from _drn_trunk("E.base.")
    for j in (1, 2, 3):
        yield from _up_projection(f"D.up{j}", (f"up{j}",))
    yield "D.conv", ("conv",), "conv"


def _drn_imagenet() -> Iterator[tuple]:
    yield from _drn_trunk("layer")
    yield "fc", None, "ignore"  # ImageNet classifier: not part of the DSA


def _depth_net() -> Iterator[tuple]:
    # Every PReLU key is an alias of the one shared slope (official quirk).
    yield "conv1.1", ("conv1",), "conv"
    yield "conv1.2", ("bn1",), "bn"
    yield "conv1.3", ("prelu",), "prelu"
    for name in ("conv2", "conv3", "conv4"):
        for idx, (leaf, kind) in enumerate((("conv_a", "conv"), ("bn_a", "bn"), (None, "prelu"),
                                            ("conv_b", "conv"), ("bn_b", "bn"), (None, "prelu"))):
            yield f"{name}.model.{idx}", ((name, leaf) if leaf else ("prelu",)), kind
    for i in range(3):
        p, f = f"center.{i}", (f"center{i}",)
        for k in range(3):
            yield f"{p}.layer{k}.1", f + (f"branch{k}",), "conv"
        yield f"{p}.norm1", f + ("norm1",), "bn"
        yield f"{p}.norm2", f + ("norm2",), "bn"
        yield f"{p}.nonlinearity", ("prelu",), "prelu"
        yield f"{p}.branch1x1.1", f + ("fuse",), "conv"
    for torch_name, flax_name in (("center.3", "center_up"), ("deconv4", "deconv4"),
                                  ("deconv3", "deconv3"), ("deconv2", "deconv2")):
        p, f = f"{torch_name}.model", (flax_name,)
        yield f"{p}.1", f + ("conv",), "conv"
        yield f"{p}.2", f + ("bn_a",), "bn"
        yield f"{p}.3", ("prelu",), "prelu"
        yield f"{p}.4", f + ("deconv",), "convT"
        yield f"{p}.5", f + ("bn_b",), "bn"
        yield f"{p}.6", ("prelu",), "prelu"
    for k in (4, 3, 2, 1):
        yield f"output{k}.model.1", (f"output{k}", "conv"), "conv"


_TABLES = {
    "struct_encoder": _struct_encoder,
    "struct_decoder": _struct_decoder,
    "dsa": _dsa,
    "depth_net": _depth_net,
    "drn_d_22_imagenet": _drn_imagenet,
}


@functools.lru_cache(maxsize=None)
def _flax_shapes(submodule: str):
    """Shapes of the official-size model's variables for one submodule (no compute)."""
    model = S2RDepthNet()
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 96, 96, 3))))
    return {col: shapes[col].get(submodule, {}) for col in ("params", "batch_stats")}


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree, path, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _identity(a):
    return a


# kind -> [(torch leaf, collection, flax leaf, torch->flax, flax->torch)]; import and export both read it
def _leaves(kind: str, module_params: Mapping) -> list[tuple]:
    if kind == "conv":  # torch (O, I, kh, kw) <-> HWIO
        out = [("weight", "params", "kernel", lambda w: w.transpose(2, 3, 1, 0), lambda k: k.transpose(3, 2, 0, 1))]
    elif kind == "convT":  # torch (I, O, kh, kw) <-> HWIO
        out = [("weight", "params", "kernel", lambda w: w.transpose(2, 3, 0, 1), lambda k: k.transpose(2, 3, 0, 1))]
    elif kind == "bn":
        return [("weight", "params", "scale", _identity, _identity), ("bias", "params", "bias", _identity, _identity),
                ("running_mean", "batch_stats", "mean", _identity, _identity),
                ("running_var", "batch_stats", "var", _identity, _identity)]
    else:
        raise AssertionError(kind)
    if "bias" in module_params:
        out.append(("bias", "params", "bias", _identity, _identity))
    return out


def _torch_shape(kind: str, flax_leaf: str, shape: tuple) -> tuple:
    if flax_leaf == "kernel":
        kh, kw, i, o = shape
        return (o, i, kh, kw) if kind == "conv" else (i, o, kh, kw)
    return tuple(shape)


def raise_if_mismatched(headline: str, missing: list, unexpected: list, misshaped: list, problems: list = (),
                        error: type = WeightImportError) -> None:
    """Raise one `error` listing every missing, unexpected and mis-shaped key."""
    if not (missing or unexpected or misshaped or problems):
        return
    lines = [headline]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("mis-shaped keys", misshaped), ("other problems", problems)):
        if items:
            lines.append(f"  {title} ({len(items)}):")
            lines.extend(f"    {item}" for item in items)
    raise error("\n".join(lines))


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> dict:
    """Drop DataParallel's `module.` prefix where every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def import_state_dict(network: str, state_dict: Mapping[str, np.ndarray], source: str = "") -> dict:
    """Convert one official state dict to `{'params': {sub: ...}, 'batch_stats': {sub: ...}}`.

    `network` is one of `NETWORKS`; the result is keyed by the S2RDepthNet submodule
    it fills, so results of several networks merge into one variables tree. Raises
    `WeightImportError` listing every missing, unexpected or mis-shaped key.
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected one of {sorted(NETWORKS)}")
    submodule = NETWORKS[network]
    sd = {k: np.asarray(v) for k, v in strip_prefix(state_dict).items()}
    shapes = _flax_shapes(submodule)
    out: dict = {"params": {}, "batch_stats": {}}
    claimed, missing, misshaped, problems = set(), [], [], []
    prelu_values: dict[str, np.ndarray] = {}

    for prefix, path, kind in _TABLES[network]():
        if kind == "ignore":
            claimed.update(k for k in sd if k.startswith(prefix + "."))
            continue
        if kind == "prelu":
            key = f"{prefix}.weight"
            claimed.add(key)
            if key not in sd:
                missing.append(key)
            elif sd[key].shape != (1,):
                misshaped.append(f"{key}: got {sd[key].shape}, expected (1,)")
            else:
                prelu_values[key] = sd[key]
            continue
        module_params = _get(shapes["params"], path)
        for torch_leaf, col, flax_leaf, fn, _ in _leaves(kind, module_params):
            key = f"{prefix}.{torch_leaf}"
            claimed.add(key)
            expected = _torch_shape(kind, flax_leaf, _get(shapes[col], path + (flax_leaf,)).shape)
            if key not in sd:
                missing.append(key)
            elif tuple(sd[key].shape) != expected:
                misshaped.append(f"{key}: got {tuple(sd[key].shape)}, expected {expected}")
            else:
                _set(out[col], (submodule,) + path + (flax_leaf,), np.asarray(fn(sd[key]), np.float32))
        if kind == "bn":
            claimed.update(f"{prefix}.{leaf}" for leaf in _OPTIONAL)

    if prelu_values:
        values = list(prelu_values.values())
        if any(not np.array_equal(v, values[0]) for v in values):
            problems.append("the PReLU keys differ, but the official Depth_Net shares ONE PReLU: "
                            + ", ".join(f"{k}={v.tolist()}" for k, v in prelu_values.items()))
        _set(out["params"], (submodule, "prelu"), np.asarray(values[0], np.float32))

    raise_if_mismatched(f"state dict {source or network!r} does not match the official {network} layout:",
                        missing, sorted(set(sd) - claimed), misshaped, problems)
    if not out["batch_stats"]:
        del out["batch_stats"]
    return out


def _find(tree, path):
    """The subtree or leaf at `path`, or None where the path is absent."""
    for p in path:
        if not isinstance(tree, Mapping) or p not in tree:
            return None
        tree = tree[p]
    return tree


def _paths(tree, where=()) -> Iterator[tuple]:
    for k, v in tree.items():
        yield from (_paths(v, where + (k,)) if isinstance(v, Mapping) else [where + (k,)])


def export_state_dict(network: str, variables: Mapping) -> dict[str, np.ndarray]:
    """The inverse of `import_state_dict`: our variables -> one official state dict.

    `variables` is `{'params': {submodule: ...}, 'batch_stats': {submodule: ...}}` as
    `checkpoint.load_variables` returns it; `network` is one of `EXPORTABLE`. Keys are
    the official module's own (no DataParallel `module.` prefix). Arrays are float32, as
    the official model's, whatever dtype the checkpoint stored. Shapes come from the
    variables, so a model narrower than the official one exports too. Every BatchNorm
    also gets `num_batches_tracked` (int64 0-d, value 0), so that the key set is the released
    files' (torch would fill it in for a dict without version metadata); its value is unused
    by the official model in eval mode (PyTorch reads it only in training, and only for a
    BatchNorm with momentum=None, which the official networks do not build). All of
    DepthNet's PReLU keys get the one shared slope. Raises `WeightExportError` naming
    every leaf the table needs but the variables lack, and every leaf it has no place for.
    """
    if network not in EXPORTABLE:
        raise ValueError(f"cannot export {network!r}; expected one of {list(EXPORTABLE)}")
    submodule = NETWORKS[network]
    tree = {col: _find(variables, (col, submodule)) or {} for col in ("params", "batch_stats")}
    if not tree["params"]:
        raise WeightExportError(f"the variables hold no {submodule!r} module to export as {network}")
    out: dict[str, np.ndarray] = {}
    missing, used = [], set()
    for prefix, path, kind in _TABLES[network]():
        if kind == "ignore":  # not part of the network (no exportable table has one today)
            continue
        if kind == "prelu":  # every official alias gets the one shared slope
            leaves = [("weight", "params", path, _identity)]
        else:  # the official module's leaves (a bias or not), whatever the variables hold
            official = _get(_flax_shapes(submodule)["params"], path)
            leaves = [(t, col, path + (f,), to_torch) for t, col, f, _, to_torch in _leaves(kind, official)]
        for torch_leaf, col, flax_path, to_torch in leaves:
            used.add((col,) + flax_path)
            value = _find(tree[col], flax_path)
            if value is None or isinstance(value, Mapping):
                missing.append("/".join((col, submodule) + flax_path))
            else:
                out[f"{prefix}.{torch_leaf}"] = np.ascontiguousarray(to_torch(np.array(value, np.float32)))
        if kind == "bn":
            out[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
    unexpected = sorted("/".join((col, submodule) + p) for col in tree for p in _paths(tree[col])
                        if (col,) + p not in used)
    problems = []
    if network == "depth_net" and any(p.split("/")[-1].startswith("prelu") for p in unexpected):
        problems.append("the official Depth_Net shares ONE PReLU; a model with shared_prelu=False has no "
                        "official layout")
    if network == "dsa" and any("downsample" in p for p in missing):
        problems.append("the official DRN-D-22 trunk has a downsample at layers 3 to 6 because its channels grow "
                        "there; dsa_channels that do not grow at a layer (e.g. (4, 4, 8, 8, 16, 16, 16, 16)) build "
                        "none, and such a trunk has no official layout")
    raise_if_mismatched(f"variables of {network} (module {submodule!r}) do not fit the official layout:",
                        sorted(set(missing)), unexpected, [], problems, error=WeightExportError)
    return out


def merge_variables(*trees: Mapping) -> dict:
    """Merge imported variable trees; a leaf given twice is an error."""
    merged: dict = {}

    def rec(dst, src, where):
        for k, v in src.items():
            if isinstance(v, Mapping):
                rec(dst.setdefault(k, {}), v, where + (k,))
            elif k in dst:
                raise ValueError(f"variable {'/'.join(where + (k,))} is given by two checkpoints")
            else:
                dst[k] = v

    for t in trees:
        rec(merged, t, ())
    return merged
