"""`python -m s2r_jax.export`: a tiny checkpoint to every format, each file run in its own
runtime, in a process that cannot import s2r_jax, by the examples of docs/export.md."""
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import onnx
import pytest
from PIL import Image

from s2r_jax import export
from s2r_jax.checkpoint import Checkpointer
from s2r_jax.export import ExportError, ExportOptions
from s2r_jax.export.common import atomic_output, output_bytes
from s2r_jax.export.to_onnx import weights_to_float16
from s2r_jax.model_loader import load_model
from s2r_jax.predict import Predictor
from tiny_checkpoint import write_tiny_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(encoder_dim=8, depth_ngf=8, dsa_channels=(4, 4, 8, 8, 16, 16, 16, 16))
MODEL_SIZE = (96, 160)
PHOTO_SIZE = (75, 250)  # the photo the documented pipeline resizes to the model's size and back
FLOAT32_TOLERANCE = 1e-4  # metres, max abs
FLOAT16_RELATIVE = 2e-3   # float16 weights: |error| <= 2e-3 * depth
# name in docs/export.md -> export file names: the docs' example's (float32) and a float16 one
RUNTIMES = {"stablehlo": ("s2r_kitti.stablehlo", "half.stablehlo"),
            "savedmodel": ("s2r_kitti_savedmodel", "half_savedmodel"),
            "tflite": ("s2r_kitti.tflite", "half.tflite"),
            "onnx": ("s2r_kitti.onnx", "half.onnx")}
DYNAMIC = ("stablehlo", "savedmodel")  # exported with a dynamic batch; the others with batch 1 (float32), 2 (float16)
HALF_BATCH = {"stablehlo": 2, "savedmodel": 2, "tflite": 2, "onnx": 1}  # images the float16 exports are run on


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", TINY, MODEL_SIZE)


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A photo of another size than the model's, for the documented pipeline."""
    rgb = np.random.default_rng(2).integers(0, 256, (*PHOTO_SIZE, 3), dtype=np.uint8)
    rgb = (rgb // 2 + np.linspace(0, 120, PHOTO_SIZE[1], dtype=np.uint8)[None, :, None]).astype(np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def images(model, photo):
    """The photo as prediction preprocesses it (mapped to [0, 1]) and a random image."""
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    first = (Predictor(model).preprocess(rgb) + 1) / 2
    return np.stack([first, np.random.default_rng(1).uniform(0, 1, first.shape)]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, images):
    """The JAX model: `metric_depth`, jitted as the library runs it."""
    return np.asarray(jax.jit(model.metric_depth)(model.variables, images))


@pytest.fixture(scope="module")
def exports(model, photo, tmp_path_factory):
    """Every format in float32 (under the docs' file name; lowered for the default platforms)
    and float16 (for the CPU only), written through the public API, beside the photo."""
    d = tmp_path_factory.mktemp("exports")
    for fmt, (name, half) in RUNTIMES.items():
        dynamic = fmt in DYNAMIC
        export.export_model(model, fmt, d / name, ExportOptions(batch=None if dynamic else 1))
        if fmt != "onnx":
            export.export_model(model, fmt, d / half, ExportOptions(batch=None if dynamic else HALF_BATCH[fmt],
                                                                    dtype="float16", platforms=("cpu",)))
    # ONNX's float16 is the float32 graph with float16 weights (`onnx_model`): made from the
    # float32 file here, which saves a second conversion (~10 s) and keeps batch 1.
    onnx_proto = onnx.load(str(d / RUNTIMES["onnx"][0]))
    onnx.save(weights_to_float16(onnx_proto), str(d / RUNTIMES["onnx"][1]))
    (d / "photo.png").write_bytes(photo.read_bytes())
    return d


def _doc_examples() -> dict:
    text = (ROOT / "docs" / "export.md").read_text()
    return dict(re.findall(r"<!-- export-example: (\w+) -->\n```python\n(.*?)```", text, re.S))


_HARNESS = """
# --- test harness: the example's model (compiled for one image already) and the float16
# export on the test's images
test_images = np.load("images.npy")
np.save("float32.npy", depth_model(test_images[:1]))
half_model, _ = load_depth_model(sys.argv[1])
np.save("float16.npy", half_model(test_images[:int(sys.argv[2])]))
np.save("model_size.npy", np.array(model_size))
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in ("s2r_jax", "flax"))
assert not loaded, loaded
"""


def _run_example(fmt: str, directory: pathlib.Path, images: np.ndarray) -> dict:
    """Run docs/export.md's example for `fmt` (with its pre/post-processing block) in a fresh
    process in which importing s2r_jax fails, on the docs' file names; then the float32
    model on the first of `images` and the float16 export on `HALF_BATCH` of them.
    Returns the outputs."""
    examples = _doc_examples()
    outputs = ("photo_depth", "float32", "float16", "model_size")
    for leftover in outputs:
        (directory / f"{leftover}.npy").unlink(missing_ok=True)
    np.save(directory / "images.npy", images)
    script = directory / f"run_{fmt}.py"
    script.write_text("import sys\nsys.modules['s2r_jax'] = None  # the export must run without our code\n"
                      + examples["prepost"] + examples[fmt] + _HARNESS)
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, script.name, RUNTIMES[fmt][1], str(HALF_BATCH[fmt])], cwd=directory,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return {k: np.load(directory / f"{k}.npy") for k in outputs}


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_export_runs_in_its_runtime_as_the_jax_model(fmt, model, exports, images, reference):
    out = _run_example(fmt, exports, images)
    assert tuple(out["model_size"]) == MODEL_SIZE
    assert out["float32"].shape == (1, *MODEL_SIZE) and out["float32"].dtype == np.float32
    np.testing.assert_allclose(out["float32"], reference[:1], rtol=0, atol=FLOAT32_TOLERANCE)
    half, n = out["float16"], HALF_BATCH[fmt]
    assert half.shape == (n, *MODEL_SIZE) and half.dtype == np.float32
    relative = np.abs(half - reference[:n]) / reference[:n]
    assert relative.max() <= FLOAT16_RELATIVE, relative.max()
    assert np.abs(half - reference[:n]).max() > 1e-4  # the weights really are float16

    # The documented pipeline (image file -> depth at the image's size) is prediction's:
    # images[0] is the photo as prediction preprocesses it; its output resized as it does.
    predictor = Predictor(model)
    raw = reference[0][..., None] / predictor.depth_range_m * 2 - 1
    expected = predictor.metres(raw, PHOTO_SIZE)
    assert out["photo_depth"].shape == PHOTO_SIZE
    np.testing.assert_allclose(out["photo_depth"], expected, rtol=0, atol=FLOAT32_TOLERANCE)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_float16_halves_the_export(fmt, exports):
    name, half = RUNTIMES[fmt]
    if fmt == "savedmodel":  # its graph (the program, lowered for other platforms) stays as it is
        name, half = name + "/variables", half + "/variables"
    assert output_bytes(exports / half) < 0.6 * output_bytes(exports / name)


def test_signatures_name_images_and_depth(exports):
    from ai_edge_litert.interpreter import Interpreter

    graph = onnx.load(str(exports / "s2r_kitti.onnx")).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["depth"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *MODEL_SIZE, 3]
    signatures = Interpreter(model_path=str(exports / "s2r_kitti.tflite")).get_signature_list()
    assert signatures == {"serving_default": {"inputs": ["images"], "outputs": ["depth"]}}
    exported = jax.export.deserialize(bytearray((exports / "s2r_kitti.stablehlo").read_bytes()))
    assert str(exported.in_avals[0].shape[0]) == "batch" and exported.in_avals[0].shape[1:] == (*MODEL_SIZE, 3)
    assert exported.platforms == export.DEFAULT_PLATFORMS


def test_cli_exports_and_refuses_what_a_format_cannot_take(checkpoint, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    out = tmp_path / "cli.stablehlo"
    cmd = [sys.executable, "-m", "s2r_jax.export", "--checkpoint", checkpoint, "--format", "stablehlo",
           "--output", str(out), "--batch", "2", "--platforms", "cpu", "--image_size", "112,176"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(2, 112, 176, 3)" in res.stdout and f"wrote {out}" in res.stdout
    exported = jax.export.deserialize(bytearray(out.read_bytes()))  # run by the runtime tests
    assert exported.platforms == ("cpu",) and exported.in_avals[0].shape == (2, 112, 176, 3)
    assert exported.out_avals[0].shape == (2, 112, 176)

    bad = tmp_path / "bad.tflite"
    res = subprocess.run([sys.executable, "-m", "s2r_jax.export", "--checkpoint", checkpoint, "--format", "tflite",
                          "--output", str(bad), "--batch", "dynamic"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode != 0 and "tflite needs a fixed batch size" in res.stderr
    assert not bad.exists()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)  # exists, no --overwrite
    assert res.returncode == 1 and f"{out} exists; pass --overwrite" in res.stderr


@pytest.mark.parametrize("fmt, options, message", [
    ("onnx", ExportOptions(batch=None), "onnx needs a fixed batch size"),
    ("tflite", ExportOptions(dtype="bfloat16"), "dtype 'bfloat16'"),
    ("stablehlo", ExportOptions(batch=0), "batch 0"),
    ("stablehlo", ExportOptions(platforms=("gpu",)), "platforms gpu"),
    ("onnx", ExportOptions(opset=11), "opset 11"),
    ("coreml", ExportOptions(), "format 'coreml'"),
])
def test_options_a_format_cannot_take_are_refused_by_name(fmt, options, message, model, tmp_path):
    with pytest.raises(ExportError, match=re.escape(message)):
        export.export_model(model, fmt, tmp_path / "out", options)
    assert not any(tmp_path.iterdir())


def test_batch_flag_values():
    assert export.parse_batch("dynamic") is None and export.parse_batch("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(ExportError, match="positive integer or 'dynamic'"):
            export.parse_batch(bad)


def test_checkpoint_without_a_depth_model_is_refused(tmp_path):
    d = tmp_path / "ste"
    with Checkpointer(d) as c:
        c.save(0, {"params": {"x": np.zeros(2, np.float32)}}, meta={"written_by": "s2r_jax.train",
                                                                   "config": {"stage": "ste_pretrain"}})
    res = subprocess.run([sys.executable, "-m", "s2r_jax.export", "--checkpoint", str(d), "--format", "onnx",
                          "--output", str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 1 and f"error: {d}" in res.stderr and "holds no depth model" in res.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_an_interrupted_export_leaves_the_previous_one(model, tmp_path, monkeypatch):
    out = tmp_path / "m.stablehlo"
    out.write_bytes(b"previous export")
    with pytest.raises(ExportError, match="exists; pass --overwrite"):
        export.export_model(model, "stablehlo", out, ExportOptions(platforms=("cpu",)))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jax.export.Exported, "serialize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_model(model, "stablehlo", out, ExportOptions(platforms=("cpu",)), overwrite=True)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.stablehlo"]  # no partial file left


def test_overwrite_replaces_only_what_an_export_wrote(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not a SavedModel directory"):
        with atomic_output(folder, overwrite=True, directory=True):
            pass
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"old")
    with atomic_output(saved, overwrite=True, directory=True) as tmp:
        os.makedirs(tmp)
        pathlib.Path(tmp, "saved_model.pb").write_bytes(b"new")
    assert (saved / "saved_model.pb").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "sm"]
