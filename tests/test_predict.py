"""`python -m s2r_jax.predict`: depth for one's own images, from files, folders and globs."""
import io
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from s2r_jax import model_loader, predict
from s2r_jax.checkpoint import Checkpointer
from s2r_jax.data.imageio import read_png16, read_rgb
from s2r_jax.models import to_metres
from tiny_checkpoint import write_tiny_checkpoint

TINY = dict(encoder_dim=4, depth_ngf=4, dsa_channels=(4, 4, 8, 8, 8, 16, 16, 16), shared_prelu=True,
            align_corners=True, dtype="float32")
MODEL_SIZE = (96, 160)
MAX_DEPTH = 80.0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", TINY, MODEL_SIZE, MAX_DEPTH)


def _save(path, h, w, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb = (rgb // 2 + np.linspace(0, 120, w, dtype=np.uint8)[None, :, None]).astype(np.uint8)  # some structure
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rgb).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Images of sizes that are not multiples of 16, as a file, a folder and a glob, plus bad inputs."""
    d = str(tmp_path_factory.mktemp("inputs"))
    good = {"a.png": (100, 150), "kitti.JPG": (50, 166),                  # files (375x1242 scaled down)
            "folder/b.png": (96, 160), "folder/c.jpeg": (70, 90),         # a folder ...
            "folder/a.png": (41, 77),                                      # ... with a stem clash
            "glob/g1.png": (60, 200), "glob/g2.png": (33, 47)}             # a glob
    for k, (name, (h, w)) in enumerate(good.items()):
        _save(os.path.join(d, name), h, w, k)
    _save(os.path.join(d, "folder", "sub", "deep.png"), 40, 40, 99)      # only with --recursive
    with open(os.path.join(d, "glob", "notes.txt"), "w") as f:
        f.write("not an image")
    with open(os.path.join(d, "bad.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)                   # corrupt
    args = [os.path.join(d, "a.png"), os.path.join(d, "kitti.JPG"), os.path.join(d, "folder"),
            os.path.join(d, "glob", "*.png"), os.path.join(d, "bad.png"), os.path.join(d, "nope.png"),
            os.path.join(d, "zzz*.png")]
    return {"dir": d, "good": {os.path.join(d, k): v for k, v in good.items()}, "args": args}


@pytest.fixture(scope="module")
def run(ckpt, inputs, tmp_path_factory):
    predictor = predict.load_predictor(ckpt)
    out = str(tmp_path_factory.mktemp("out"))
    log = io.StringIO()
    written, errors = predict.predict_paths(predictor, inputs["args"], out, batch_size=3, point_cloud=True,
                                            log=log)
    return dict(predictor=predictor, out=out, written=written, errors=errors, log=log.getvalue())


def test_load_predictor_reads_the_training_config(run):
    p = run["predictor"]
    assert p.image_size == MODEL_SIZE and p.use_attention and p.depth_range_m == MAX_DEPTH
    assert p.loaded.model.encoder_dim == 4 and tuple(p.loaded.model.dsa_channels) == TINY["dsa_channels"]


def test_converted_checkpoint_means_the_official_model():
    spec = model_loader.model_spec({"written_by": "s2r_jax.convert", "format": "official_pytorch"})
    assert spec.image_size == (192, 640) and spec.use_attention and spec.depth_range_m == 80.0
    assert spec.model["encoder_dim"] == 64 and spec.model["depth_ngf"] == 64 and len(spec.model["dsa_channels"]) == 8
    with pytest.raises(predict.PredictError, match="ste_pretrain"):
        model_loader.model_spec({"config": {"stage": "ste_pretrain", "model": {"style_dim": 8}}})
    # a stage-1 config (no attention); config.model.rgb_baseline=False is plain S2R-DepthNet
    spec = model_loader.model_spec({"config": {"stage": "struct_decoder", "use_attention": False,
                                          "model": dict(TINY, rgb_baseline=False),
                                          "data": {"image_size": [128, 416], "depth_range_m": 10.0}}})
    assert (spec.image_size, spec.use_attention, spec.depth_range_m, spec.rgb_baseline) == (
        (128, 416), False, 10.0, False)
    # checkpoints of s2r_jax 0.1 named the training depth range data.max_depth
    old = model_loader.model_spec({"config": {"stage": "dsa_depth", "model": TINY, "data": {"max_depth": 8.0}}})
    assert old.depth_range_m == 8.0
    assert spec.model == TINY


def test_rgb_baseline_checkpoint(tmp_path, inputs):
    from s2r_jax import models
    if not hasattr(models, "RGBBaseline"):
        pytest.skip("s2r_jax.models has no RGBBaseline")
    model = models.RGBBaseline(depth_ngf=4)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *MODEL_SIZE, 3)))
    variables = jax.tree.map(lambda s: np.full(s.shape, 0.01, np.float32), shapes)
    config = {"stage": "dsa_depth", "model": dict(TINY, rgb_baseline=True), "use_attention": True,
              "data": {"image_size": list(MODEL_SIZE)}}
    with Checkpointer(tmp_path / "ckpt") as c:
        c.save(0, variables, meta={"written_by": "s2r_jax.train", "config": config})
    predictor = predict.load_predictor(tmp_path / "ckpt")
    assert isinstance(predictor.loaded.model, models.RGBBaseline) and not predictor.use_attention
    path = os.path.join(inputs["dir"], "a.png")
    written, errors = predict.predict_paths(predictor, [path], str(tmp_path / "out"), log=None)
    assert not errors and np.load(written[0]["npy"]).shape == inputs["good"][path]


def test_every_good_image_is_written_at_its_own_resolution(run, inputs):
    by_input = {r["input"]: r for r in run["written"]}
    assert sorted(by_input) == sorted(inputs["good"])  # sub-folder not searched, notes.txt ignored
    for path, (h, w) in inputs["good"].items():
        r = by_input[path]
        for kind in ("colour", "depth16", "npy", "ply"):
            assert os.path.isfile(r[kind]), (path, kind)
        assert np.asarray(Image.open(r["colour"])).shape == (h, w, 3)
        depth = np.load(r["npy"])
        assert depth.dtype == np.float32 and depth.shape == (h, w)
        assert np.all(depth > 0) and np.all(depth < MAX_DEPTH)
        # 16-bit PNG = round(metres * 256) exactly (tolerance 0: computed from the same float32 map)
        png16 = read_png16(r["depth16"])
        assert png16.shape == (h, w)
        np.testing.assert_array_equal(png16, np.clip(np.round(depth.astype(np.float64) * 256), 0, 65535))


def test_stem_clash_is_resolved_by_folder(run, inputs):
    names = {os.path.relpath(r["input"], inputs["dir"]): r["name"] for r in run["written"]}
    assert names["a.png"] == "a" and names[os.path.join("folder", "a.png")] == "folder__a"
    assert names["kitti.JPG"] == "kitti"
    assert len({r["npy"] for r in run["written"]}) == len(run["written"])


def test_npy_is_to_metres_of_the_model_output(run, inputs):
    """Independently: Pillow bicubic to 96x160, the model, to_metres at the image's size."""
    p = run["predictor"]
    apply = jax.jit(lambda v, x: p.loaded.model.apply(v, x, use_attention=True)["depth"][-1])
    by_input = {r["input"]: r for r in run["written"]}
    for path, (h, w) in inputs["good"].items():
        rgb = read_rgb(path)
        x = np.asarray(Image.fromarray(rgb).resize(MODEL_SIZE[::-1], Image.BICUBIC), np.float32) / 127.5 - 1
        want = to_metres(apply(p.loaded.variables, x[None]), size=(h, w), max_depth=MAX_DEPTH)[0, :, :, 0]
        got = np.load(by_input[path]["npy"])
        # batch of 3 vs batch of 1: float32 rounding differences only (metres up to 80)
        np.testing.assert_allclose(got, np.asarray(want), rtol=0, atol=1e-4, err_msg=path)


def test_point_cloud_back_projects_every_pixel(run, inputs):
    by_input = {r["input"]: r for r in run["written"]}
    path = os.path.join(inputs["dir"], "kitti.JPG")
    h, w = inputs["good"][path]
    depth, rgb = np.load(by_input[path]["npy"]), read_rgb(path)
    with open(by_input[path]["ply"], "rb") as f:
        data = f.read()
    header, body = data.split(b"end_header\n", 1)
    assert b"format binary_little_endian 1.0" in header and f"element vertex {h * w}\n".encode() in header
    rows = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"),
                                      ("b", "u1")])
    assert len(rows) == h * w
    # KITTI's intrinsics (1242x375) scaled to this 166x50 image, pixel centres at integers
    sx, sy = w / 1242, h / 375
    fx, fy, cx, cy = 721.5377 * sx, 721.5377 * sy, (609.5593 + 0.5) * sx - 0.5, (172.854 + 0.5) * sy - 0.5
    for v, u in [(0, 0), (17, 101), (h - 1, w - 1)]:
        z = float(depth[v, u])
        row = rows[v * w + u]
        np.testing.assert_allclose([row["x"], row["y"], row["z"]], [(u - cx) * z / fx, (v - cy) * z / fy, z],
                                   rtol=1e-5, atol=1e-5)
        assert (row["r"], row["g"], row["b"]) == tuple(rgb[v, u])


def test_intrinsics_scaling_and_overrides():
    kitti = predict.Intrinsics()
    np.testing.assert_allclose(kitti.for_image(375, 1242), (721.5377, 721.5377, 609.5593, 172.854))
    np.testing.assert_allclose(kitti.for_image(750, 2484), (1443.0754, 1443.0754, 1219.6186, 346.208))
    # given intrinsics: unscaled unless their image size is given; fy = fx, centre by default
    mine = predict.intrinsics_from_flags(fx=500.0)
    np.testing.assert_allclose(mine.for_image(100, 200), (500.0, 500.0, 99.5, 49.5))
    scaled = predict.intrinsics_from_flags(fx=500.0, fy=400.0, cx=100.0, cy=50.0, size=(100, 200))
    np.testing.assert_allclose(scaled.for_image(50, 100), (250.0, 200.0, 49.75, 24.75))
    with pytest.raises(ValueError, match="need --fx as well"):
        predict.intrinsics_from_flags(cx=3.0)


def test_ascii_ply_matches_binary(tmp_path):
    pts = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, 80.0]], np.float32)
    col = np.array([[1, 2, 3], [250, 251, 252]], np.uint8)
    predict.write_ply(str(tmp_path / "a.ply"), pts, col, binary=False)
    lines = (tmp_path / "a.ply").read_text().split("end_header\n")[1].splitlines()
    got = np.array([[float(t) for t in line.split()] for line in lines])
    np.testing.assert_allclose(got[:, :3], pts)
    np.testing.assert_array_equal(got[:, 3:], col)


def test_errors_name_the_bad_inputs_and_the_rest_is_written(run, inputs):
    d = inputs["dir"]
    failed = {p: reason for p, reason in run["errors"]}
    assert set(failed) == {os.path.join(d, "bad.png"), os.path.join(d, "nope.png"), os.path.join(d, "zzz*.png")}
    assert "not a readable image" in failed[os.path.join(d, "bad.png")]
    for path in failed:
        assert f"error: {path}: " in run["log"]
    assert run["log"].splitlines()[-1] == "predict: 8/8 images (1 failed)"  # the 8 that exist; bad.png failed
    assert len(run["written"]) == len(inputs["good"])


def test_output_names_rules():
    names = predict.output_names([os.path.join("r", "a", "x.png"), os.path.join("r", "b", "c", "x.png"),
                                  os.path.join("r", "y.png"), os.path.join("r", "y.JPG"), os.path.join("q", "z.png")])
    assert names == ["a__x", "b__c__x", "y_png", "y_jpg", "z"]


def test_expand_inputs_recursive(inputs):
    paths, errors = predict.expand_inputs([os.path.join(inputs["dir"], "folder")], recursive=True)
    assert not errors and any(p.endswith("deep.png") for p in paths) and len(paths) == 4
    paths, errors = predict.expand_inputs([os.path.join(inputs["dir"], "folder", "sub", "nothing")])
    assert not paths and "no such file" in errors[0][1]


def _cli(*args, block_tensorflow=False):
    code = ("import sys, runpy; sys.modules['tensorflow'] = None; "
            "runpy.run_module('s2r_jax.predict', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", code] if block_tensorflow else [sys.executable, "-m", "s2r_jax.predict"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)


def test_cli_exits_1_naming_a_corrupt_image_and_writes_the_others(ckpt, inputs, tmp_path):
    d = inputs["dir"]
    res = _cli(f"--checkpoint={ckpt}", "--input", os.path.join(d, "a.png"), os.path.join(d, "bad.png"),
               f"--output_dir={tmp_path}", "--batch_size=2")
    assert res.returncode == 1, res.stderr
    assert f"error: {os.path.join(d, 'bad.png')}: " in res.stderr
    assert "predict: 2/2 images (1 failed)" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["a_depth.npy", "a_depth.png", "a_depth16.png"]


def test_cli_exits_0_without_tensorflow(ckpt, inputs, tmp_path):
    d = inputs["dir"]
    res = _cli(f"--checkpoint={ckpt}", f"--input={os.path.join(d, 'kitti.JPG')}",
               f"--input={os.path.join(d, 'glob', '*.png')}", f"--output_dir={tmp_path}", "--point_cloud",
               "--depth_range_m=10", block_tensorflow=True)
    assert res.returncode == 0, res.stderr
    assert "error" not in res.stderr
    assert {f for f in os.listdir(tmp_path) if f.endswith(".ply")} == {"kitti.ply", "g1.ply", "g2.ply"}
    assert float(np.load(tmp_path / "g1_depth.npy").max()) < 10.0  # --depth_range_m took effect


def test_module_imports_with_tensorflow_blocked():
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "import s2r_jax.predict as p\n"
            "assert 'tensorflow' not in sys.modules or sys.modules['tensorflow'] is None\n"
            "print('ok', p.predict_paths.__name__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert res.returncode == 0 and "ok predict_paths" in res.stdout, res.stderr


@pytest.mark.parametrize("values", [["96"], ["96", "x"], ["0", "160"], ["96", "160", "3"]])
def test_size_flags_take_two_positive_integers_and_name_the_flag(values):
    from absl import app
    from s2r_jax.cli import parse_pair
    assert parse_pair("image_size", ["96", "160"]) == (96, 160) and parse_pair("image_size", []) is None
    with pytest.raises(app.UsageError, match=r"--intrinsics_size takes H,W \(two positive integers\), got "
                                             + ",".join(values)):
        parse_pair("intrinsics_size", values)
