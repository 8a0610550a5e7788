"""`python -m s2r_jax.convert --zoedepth`: .pt files in, orbax checkpoints out; the importer's
wrappers, kind detection and error reporting. (The full-size mapping is proven by the parity
tests, which import the official layout's stand-in weights.)"""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

import zoedepth_golden as zg
from s2r_jax import checkpoint, convert
from s2r_jax.models import build_zoedepth
from s2r_jax.weights import WeightImportError
from s2r_jax.zoedepth_weights import detect_kind, export_zoedepth, import_zoedepth


def _save_pt(path, sd, prefix="", wrap=False):
    tensors = {prefix + k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    torch.save({"model": tensors} if wrap else tensors, path)
    return str(path)


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "s2r_jax.convert", *args], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)


def test_zoedepth_modules_import_without_tensorflow():
    """As on the GPU image, where tensorflow is not installed (the official code, timm and
    torch are not needed either: the benchmark imports them only when asked)."""
    code = ("import sys\n"
            "for name in ('tensorflow', 'tensorflow_datasets', 'timm', 'torch'): sys.modules[name] = None\n"
            "import s2r_jax.models, s2r_jax.zoedepth_weights, s2r_jax.losses, s2r_jax.convert, "
            "s2r_jax.benchmarks.zoedepth_inference\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_help_documents_the_zoedepth_flags():
    res = _run_cli("--help")  # absl's --help exits 1 by design; what matters is what it prints
    assert "--zoedepth:" in res.stdout and "--zoedepth_kind:" in res.stdout


@pytest.mark.parametrize("kind, prefix, wrap", [("nk", "module.", True), ("k", "", False)])
def test_convert_writes_a_checkpoint_that_rebuilds_the_model(tmp_path, kind, prefix, wrap):
    """The official loader's forms (`{"model": ...}`, DataParallel's `module.`) are accepted, the
    kind is detected, and the meta rebuilds the model the variables belong to."""
    sd = zg.tiny_state_dict(kind)
    path = _save_pt(tmp_path / "zoed.pt", sd, prefix, wrap)
    written = convert.convert_zoedepth(path, str(tmp_path / "ckpt"), **zg.TINY)
    variables, meta = checkpoint.load_variables(tmp_path / "ckpt")
    assert meta["family"] == "zoedepth" and meta["kind"] == kind
    jax.tree.map(np.testing.assert_array_equal, variables, written)
    jax.tree.map(np.testing.assert_array_equal, variables, import_zoedepth(sd, kind, **zg.TINY))
    model = build_zoedepth(meta["kind"], **meta["model_config"])
    assert model.bin_type == ("normed" if kind == "k" else "softplus")
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32))
    assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(np.shape, variables)


def test_export_import_round_trip():
    variables = zg.tiny_variables("nk")
    sd = export_zoedepth(variables, "nk", depth=zg.TINY["depth"])
    assert "patch_transformer.transformer_encoder.layers.0.self_attn.in_proj_weight" in sd
    jax.tree.map(np.testing.assert_array_equal, import_zoedepth(sd, **zg.TINY), variables)


def test_kind_detection():
    for kind in ("n", "k", "nk"):
        heads = {k: np.zeros(s["shape"], np.float32) for k, s in zg.LAYOUT[f"zoed_{kind}"].items()
                 if not k.startswith("core.")}
        assert detect_kind({"model": {"module." + k: v for k, v in heads.items()}}) == kind
    with pytest.raises(WeightImportError, match="cannot tell the ZoeDepth model kind"):
        detect_kind({"conv1.weight": np.zeros((1, 1, 1, 1))})


def test_bad_file_names_every_problem_and_writes_nothing(tmp_path):
    """A ZoeD-N file lacking the backbone, one key deleted, one added, one mis-shaped: the CLI
    lists them all in one error and writes nothing."""
    sd = {k: np.zeros(s["shape"], np.float32) for k, s in zg.LAYOUT["zoed_n"].items() if not k.startswith("core.")}
    del sd["conv2.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["seed_projector._net.0.weight"] = np.zeros((128, 255, 1, 1), np.float32)
    path = _save_pt(tmp_path / "broken.pt", sd, "module.", wrap=True)
    out = tmp_path / "never"
    res = _run_cli(f"--zoedepth={path}", f"--output={out}")
    assert res.returncode == 1
    err = res.stderr
    assert "broken.pt" in err and "ZoeD-N layout" in err and "nothing was written" in err
    assert "missing keys (" in err and "conv2.bias" in err and "core.core.pretrained.model.cls_token" in err
    assert "unexpected keys (1):\n    extra.weight" in err
    assert "mis-shaped keys (1):\n    seed_projector._net.0.weight: got (128, 255, 1, 1), expected (128, 256, 1, 1)" \
        in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt"]
