r"""Convert the official S2R-DepthNet (or ZoeDepth) PyTorch checkpoints into an s2r_jax checkpoint.

  python -m s2r_jax.convert \
      --struct_encoder struct_encoder.pth --struct_decoder struct_decoder.pth \
      --dsa dsa.pth --depth_net depth_net.pth --output ckpt/official
  python -m s2r_jax.convert --zoedepth ZoeD_M12_N.pt --output ckpt/zoed_n

Any subset of the networks may be given (e.g. only --struct_encoder to start
training stage 1); --drn_imagenet drn_d_22-4bd2f8ea.pth initialises the DSA trunk
from the ImageNet DRN-D-22 instead. DataParallel's `module.` key prefix is
accepted. Every file is checked before anything is written: a missing,
unexpected or mis-shaped key in any of them stops the conversion with one error
listing them all. Reading `.pth` files needs PyTorch (`pip install s2r_jax[torch]`).

`--zoedepth` converts one released ZoeDepth model (ZoeD_M12_N.pt, _K.pt, _NK.pt; the
kind is detected from its keys, or given by --zoedepth_kind) on its own; its checkpoint's
meta records `family: zoedepth`, the kind and the model configuration
(docs/zoedepth.md).
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

import numpy as np
from absl import app, flags, logging

from s2r_jax import weights

_FLAGS = {
    "struct_encoder": "Official structure encoder (Struct_Encoder) state dict, .pth.",
    "struct_decoder": "Official structure decoder (Struct_Decoder) state dict, .pth.",
    "dsa": "Official depth-specific attention module (AutoED(drn_d_22())) state dict, .pth.",
    "depth_net": "Official depth network (Depth_Net) state dict, .pth.",
    "drn_imagenet": "ImageNet DRN-D-22 (drn_d_22-4bd2f8ea.pth): initialises only the DSA trunk; "
                    "its fc layer is dropped. Not together with --dsa.",
}
_NETWORK = {"drn_imagenet": "drn_d_22_imagenet"}



def define_flags():
    """Only when run as a program: importing `convert` must not claim flag names."""
    for name, help_ in _FLAGS.items():
        flags.DEFINE_string(name, None, help_)
    flags.DEFINE_string("zoedepth", None, "A released ZoeDepth checkpoint (ZoeD_M12_N.pt, ZoeD_M12_K.pt or "
                        "ZoeD_M12_NK.pt); converted on its own, not with the S2R-DepthNet flags.")
    flags.DEFINE_enum("zoedepth_kind", None, ["n", "k", "nk"], "The --zoedepth model's kind; default: detected "
                      "from its keys (the router means NK; two outputs per attractor mean K).")
    flags.DEFINE_string("output", None, "Directory to write the orbax checkpoint to (step 0). Must not "
                        "hold a checkpoint already unless --overwrite.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing checkpoint in --output.")


def read_pth(path: str) -> dict[str, np.ndarray]:
    """A `.pth` state dict as {key: float32/int64 numpy array}."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("reading .pth files needs PyTorch: pip install 's2r_jax[torch]'") from e
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    for wrapper in ("state_dict", "model"):  # a training checkpoint (ZoeDepth's: "model") wrapping the state dict
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def convert(sources: Mapping[str, str], output: str, overwrite: bool = False) -> dict:
    """Convert `{network: path}` (network as in `weights.NETWORKS`) and write `output`.

    Returns the variables written. Raises `weights.WeightImportError` (nothing
    written) if any file does not match the official layout.
    """
    if not sources:
        raise ValueError("nothing to convert: give at least one of --" + ", --".join(_FLAGS))
    imported, errors = [], []
    for network, path in sources.items():
        print(f"reading {network} from {path}", flush=True)
        try:
            imported.append(weights.import_state_dict(network, read_pth(path), source=path))
        except weights.WeightImportError as e:
            errors.append(str(e))
    if errors:
        raise weights.WeightImportError("\n".join(errors) + "\nnothing was written.")
    variables = weights.merge_variables(*imported)

    meta = {"written_by": "s2r_jax.convert", "format": "official_pytorch",
            "sources": {n: os.path.abspath(p) for n, p in sources.items()},
            "modules": sorted(variables["params"])}
    write_checkpoint(variables, meta, output, overwrite)
    n = sum(int(np.prod(a.shape)) for a in _leaves(variables["params"]))
    print(f"wrote {output} (step 0): modules {', '.join(meta['modules'])}; {n:,} parameters")
    return variables


def convert_zoedepth(path: str, output: str, overwrite: bool = False, kind: str | None = None,
                     **model_overrides) -> dict:
    """Convert one released ZoeDepth checkpoint and write `output`; returns the variables.

    `model_overrides` (fields of `build_zoedepth`) describe a model of the official layout
    but other sizes; the meta records them with the official configuration. Raises
    `weights.WeightImportError` (nothing written) if the file does not match the layout.
    """
    from s2r_jax import zoedepth_weights  # builds the model's shapes: only when converting ZoeDepth
    from s2r_jax.models.zoedepth import zoedepth_config

    print(f"reading ZoeDepth from {path}", flush=True)
    state_dict = read_pth(path)
    kind = kind or zoedepth_weights.detect_kind(state_dict)
    print(f"importing ZoeD-{kind.upper()}", flush=True)
    try:
        variables = zoedepth_weights.import_zoedepth(state_dict, kind, source=path, **model_overrides)
    except weights.WeightImportError as e:
        raise weights.WeightImportError(f"{e}\nnothing was written.") from None
    config = {k: list(v) if isinstance(v, tuple) else v
              for k, v in dict(zoedepth_config(kind), **model_overrides).items()}
    meta = {"written_by": "s2r_jax.convert", "format": "official_pytorch", "family": "zoedepth", "kind": kind,
            "model_config": config, "sources": {"zoedepth": os.path.abspath(path)},
            "modules": sorted(variables["params"])}
    write_checkpoint(variables, meta, output, overwrite)
    n = sum(int(np.prod(a.shape)) for a in _leaves(variables["params"]))
    print(f"wrote {output} (step 0): ZoeD-{kind.upper()}; {n:,} parameters")
    return variables


def _check_replaceable(output: str, overwrite: bool) -> None:
    if not (os.path.isdir(output) and os.listdir(output)):
        if os.path.exists(output) and not os.path.isdir(output):
            raise FileExistsError(f"{output} exists and is not a directory; choose another --output")
        return
    if not overwrite:
        raise FileExistsError(f"{output} is not empty; pass --overwrite to replace it")
    # only ever replace a checkpoint directory: numbered steps and orbax's own files
    foreign = [n for n in os.listdir(output) if not (n.isdigit() or n.startswith(("_", ".")) or "orbax" in n)]
    if foreign:
        raise FileExistsError(f"{output} holds more than a checkpoint ({', '.join(sorted(foreign)[:5])}); "
                              "choose another --output")


def write_checkpoint(variables: dict, meta: dict, output: str, overwrite: bool = False) -> None:
    """Write `variables` and `meta` as step 0 of a checkpoint directory `output`, atomically.

    The checkpoint is written completely under a temporary name beside `output` and then
    renamed into place, so an interrupted conversion leaves no directory that could later
    be restored as a checkpoint, and `--overwrite` keeps the old checkpoint until the new
    one is complete.
    """
    import shutil
    import tempfile

    from s2r_jax.checkpoint import Checkpointer  # orbax only when writing

    output = os.path.abspath(output)
    _check_replaceable(output, overwrite)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.partial-", dir=parent)
    old = None
    try:
        with Checkpointer(tmp, async_save=False) as ckpt:
            ckpt.save(0, variables, meta)
        if os.path.isdir(output):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.old-", dir=parent)
            os.rmdir(old)
            os.rename(output, old)
        os.rename(tmp, output)
    except BaseException:
        if old is not None and not os.path.exists(output):
            os.rename(old, output)  # put the previous checkpoint back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _leaves(tree):
    for v in tree.values():
        yield from (_leaves(v) if isinstance(v, Mapping) else [v])


def main(argv):
    del argv
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every step of a save at INFO
    if f.output is None:
        raise app.UsageError("--output is required")
    if f.zoedepth_kind and not f.zoedepth:
        raise app.UsageError("--zoedepth_kind needs --zoedepth")
    if f.zoedepth:
        if any(getattr(f, n) for n in _FLAGS):
            raise app.UsageError("--zoedepth is converted on its own: give no S2R-DepthNet flag with it")
        _run(convert_zoedepth, f.zoedepth, f.output, f.overwrite, f.zoedepth_kind)
        return
    if f.dsa and f.drn_imagenet:
        raise app.UsageError("--dsa and --drn_imagenet both set the DSA trunk; give one")
    sources = {_NETWORK.get(n, n): getattr(f, n) for n in _FLAGS if getattr(f, n)}
    if not sources:
        raise app.UsageError("give at least one checkpoint: --" + ", --".join(_FLAGS))
    _run(convert, sources, f.output, f.overwrite)


def _run(fn, *args):
    """Report a bad input as one error line (the message lists every problem) and exit 1."""
    try:
        fn(*args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
