r"""Convert the official S2R-DepthNet (or ZoeDepth) PyTorch checkpoints into an s2r_jax checkpoint, and back.

  python -m s2r_jax.convert \
      --struct_encoder struct_encoder.pth --struct_decoder struct_decoder.pth \
      --dsa dsa.pth --depth_net depth_net.pth --output ckpt/official
  python -m s2r_jax.convert --zoedepth ZoeD_M12_N.pt --output ckpt/zoed_n
  python -m s2r_jax.convert --to_official runs/dsa_depth --output pth/ [--step N]

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

`--to_official CKPT_DIR` goes the other way: it restores the checkpoint's variables
(latest step, or --step) onto one device, whatever topology wrote them, and writes
`<network>.pth` in --output for each of struct_encoder, struct_decoder, dsa and depth_net
the checkpoint holds: float32 tensors under the official keys (the same table as the
import), loadable with `load_state_dict(strict=True)` where the official test.py loads
the released files. The decoder's, DSA's and DepthNet's keys carry DataParallel's
`module.` prefix as the released files do, since test.py wraps those three in
nn.DataParallel before loading; --nomodule_prefix leaves it off. ZoeDepth checkpoints are
not exported.
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
    flags.DEFINE_string("to_official", None, "Export instead: an s2r_jax checkpoint directory (ours or a "
                        "converted one, from any topology) -> the official <network>.pth state dicts in --output, "
                        "one per S2R-DepthNet network it holds. Not with the import flags.")
    flags.DEFINE_integer("step", None, "With --to_official: the checkpoint step to export (default: the latest).")
    flags.DEFINE_bool("module_prefix", True, "With --to_official: prefix the struct_decoder, dsa and depth_net keys "
                      "with DataParallel's 'module.', as the released files (and the official test.py, which wraps "
                      "those three in nn.DataParallel) have them; --nomodule_prefix for unwrapped modules.")
    flags.DEFINE_string("output", None, "Directory to write to: the orbax checkpoint (step 0), which must not "
                        "exist there already unless --overwrite; with --to_official, the .pth files.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing checkpoint in --output (with --to_official: "
                      "existing .pth files of the same names).")


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("reading and writing .pth files needs PyTorch: pip install 's2r_jax[torch]'") from e
    return torch


def read_pth(path: str) -> dict[str, np.ndarray]:
    """A `.pth` state dict as {key: float32/int64 numpy array}."""
    torch = _torch()
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


# Networks the official test.py wraps in nn.DataParallel before `load_state_dict`: their
# released files (and so ours) have every key prefixed with `module.`.
WRAPPED_IN_DATAPARALLEL = ("struct_decoder", "dsa", "depth_net")


def to_official(checkpoint_dir: str, output: str, overwrite: bool = False, step: int | None = None,
                module_prefix: bool = True) -> dict[str, str]:
    """Write `<network>.pth` in `output` for each official network the checkpoint holds.

    Restores `variables` of `step` (default: the latest) onto one device, exports each
    network with `weights.export_state_dict` (all of them before anything is written) and
    saves each file under a temporary name, renamed into place only once every file is
    complete. Returns `{network: path}`. Raises `checkpoint.CheckpointError` for a missing
    directory or step, a ZoeDepth checkpoint or one holding none of the networks,
    `FileExistsError` for existing files without `overwrite`, `weights.WeightExportError`
    for variables that do not fit the official layout.
    """
    from s2r_jax.checkpoint import Checkpointer  # orbax only when restoring

    _torch()  # a missing PyTorch fails before the restore, not after
    with Checkpointer(checkpoint_dir, read_only=True) as ckpt:
        step, held, networks = _networks_to_export(ckpt, step)
        paths = {n: os.path.join(output, f"{n}.pth") for n in networks}
        existing = [p for p in paths.values() if os.path.exists(p)]
        if existing and not overwrite:
            raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace")
        print(f"reading {ckpt.directory} (step {step})", flush=True)
        variables = ckpt.restore_variables(step)

    state_dicts = {n: weights.export_state_dict(n, variables) for n in networks}
    prefixed = {n: {("module." if module_prefix and n in WRAPPED_IN_DATAPARALLEL else "") + k: v
                    for k, v in sd.items()} for n, sd in state_dicts.items()}
    _save_pth_all_or_none(prefixed, paths)
    for n in networks:
        sd = state_dicts[n]
        print(f"wrote {paths[n]}: {len(sd)} tensors, {sum(a.size for a in sd.values() if a.ndim):,} values")
    skipped = sorted(set(held) - {weights.NETWORKS[n] for n in networks})
    if skipped:
        print(f"not exported (no official PyTorch network): {', '.join(skipped)}")
    return paths


def _networks_to_export(ckpt, step: int | None) -> tuple[int, list[str], list[str]]:
    """(step, the checkpoint's modules, the official networks among them), or a CheckpointError
    for a missing step, a ZoeDepth checkpoint, or one holding none of the networks."""
    from s2r_jax.checkpoint import CheckpointError

    steps = ckpt.all_steps()
    if step is not None and step not in steps:
        raise CheckpointError(f"{ckpt.directory} has no step {step} (steps: {steps or 'none'})")
    step = ckpt.latest_step() if step is None else step
    meta = ckpt.restore_meta(step)  # step None: "no checkpoint found in <dir>"
    if _is_zoedepth(meta):
        raise CheckpointError(
            f"{ckpt.directory} is a ZoeDepth checkpoint: --to_official writes the S2R-DepthNet networks only. "
            "An official ZoeDepth file also holds constants and classifier weights this model does not keep, "
            "so an exported one would not load with strict=True (s2r_jax.zoedepth_weights.export_zoedepth gives "
            "the state dict for load_state_dict(strict=False)).")
    held = sorted({p.split("/")[1] for p in ckpt.variables_shapes(step) if p.startswith("params/")})
    networks = [n for n in weights.EXPORTABLE if weights.NETWORKS[n] in held]
    if not networks:
        raise CheckpointError(f"{ckpt.directory} (step {step}) holds none of the networks "
                              f"{', '.join(weights.EXPORTABLE)}; its modules: {', '.join(held) or 'none'}")
    return step, held, networks


def _save_pth_all_or_none(state_dicts: dict[str, dict], paths: dict[str, str]) -> None:
    """torch.save each state dict to a temporary name beside its path; rename them all into
    place only once every one is written (a failure leaves the old files, and no partial one)."""
    torch = _torch()
    partial = {}
    try:
        for n, sd in state_dicts.items():
            os.makedirs(os.path.dirname(paths[n]) or ".", exist_ok=True)
            partial[n] = os.path.join(os.path.dirname(paths[n]), f".{n}.pth.partial-{os.getpid()}")
            with open(partial[n], "wb") as f:  # opened as usual: the umask's mode
                torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, f)
                f.flush()
                os.fsync(f.fileno())
        for n in list(partial):
            os.replace(partial.pop(n), paths[n])
    finally:
        for tmp in partial.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def _is_zoedepth(meta: Mapping) -> bool:
    from s2r_jax.model_loader import CheckpointModelError, zoedepth_fields

    try:
        return zoedepth_fields(meta) is not None
    except CheckpointModelError:  # a ZoeDepth checkpoint of a kind this version does not know
        return True


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
    if f.to_official:
        if f.zoedepth or f.zoedepth_kind or any(getattr(f, n) for n in _FLAGS):
            raise app.UsageError("--to_official exports a checkpoint: give no .pth input flag (nor --zoedepth_kind) "
                                 "with it")
        _run(to_official, f.to_official, f.output, f.overwrite, f.step, f.module_prefix)
        return
    if f.step is not None:
        raise app.UsageError("--step needs --to_official")
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
