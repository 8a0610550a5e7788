"""`s2r_jax.diagnostics.style_invariance`: the figures on constructed cases, the models' representations, the CLI."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2r_jax.checkpoint import Checkpointer
from s2r_jax.data import imageio
from s2r_jax.diagnostics import style_invariance as si
from s2r_jax.models import RGBBaseline, S2RDepthNet

TINY = dict(encoder_dim=4, depth_ngf=4, dsa_channels=(4, 4, 8, 8, 8, 16, 16, 16))
SIZE = (96, 96)


def _scenes_in_two_colours(n=6, h=8, w=10, seed=0):
    """n positive 'structure' fields, each shown in two random colours (a pure colour change)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.2, 1.0, (n, h, w, 1))
    return s * rng.uniform(0.1, 1.0, (n, 1, 1, 3)), s * rng.uniform(0.1, 1.0, (n, 1, 1, 3))


def _colour_blind(x):
    """Brightness relative to the image's mean: the colour (a per-image gain per channel) cancels."""
    x = np.asarray(x)
    return {"colour_blind": x.mean(-1) / x.mean((1, 2, 3))[:, None, None]}


def test_a_representation_that_ignores_colour_is_invariant():
    a, b = _scenes_in_two_colours()
    f = si.measure(_colour_blind, a, b)["colour_blind"]
    assert f["frames"] == 6
    np.testing.assert_allclose(f["corr"], 1.0, atol=1e-12)
    np.testing.assert_allclose(f["style_scene"], 0.0, atol=1e-12)


def test_the_image_itself_is_not_and_the_figures_are_the_definitions():
    a, b = _scenes_in_two_colours()
    f = si.measure(si.image_representation, a, b, batch_size=4)[si.IMAGE]  # two batches: the sums stream
    n = len(a)
    pair = np.mean([np.sum((a[i] - b[i]) ** 2) for i in range(n)])
    scene = np.mean([np.sum((x[i] - x[j]) ** 2) for x in (a, b) for i in range(n) for j in range(n) if i != j])
    corr = np.mean([np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(n)])
    np.testing.assert_allclose(f["style_scene"], pair / scene, rtol=1e-10)
    np.testing.assert_allclose(f["corr"], corr, rtol=1e-10)
    assert f["style_scene"] > 0.3 and f["corr"] < 0.9  # the colour change is visible in the pixels


def test_a_representation_that_ignores_the_scene_scores_one():
    """Independent noise for every call: the style moves it exactly as far as another scene does."""
    rng = np.random.default_rng(1)
    a, b = _scenes_in_two_colours(n=40)
    f = si.measure(lambda x: {"noise": rng.standard_normal((len(x), 2000))}, a, b)["noise"]
    assert abs(f["style_scene"] - 1.0) < 0.03 and abs(f["corr"]) < 0.01


def test_too_few_scenes_and_unpaired_sets_are_refused():
    a, b = _scenes_in_two_colours(n=3)
    with pytest.raises(ValueError, match="at least 2 scenes"):
        si.measure(si.image_representation, a[:1], b[:1])
    with pytest.raises(ValueError, match="pair up"):
        si.measure(si.image_representation, a, b[:2])


def _variables(model, seed=0):
    """Random variables from NumPy on `eval_shape` (compiling init is slow on a CPU)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *SIZE, 3)))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = path[-1].key
        if name == "kernel":
            return (rng.standard_normal(s.shape) * (2.0 / np.prod(s.shape[:-1])) ** 0.5).astype(np.float32)
        if name in ("var", "scale"):
            return np.ones(s.shape, np.float32)
        if name == "prelu":
            return np.full(s.shape, 0.25, np.float32)
        return np.zeros(s.shape, np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def pairs():
    return si.procedural_pairs(3, SIZE, seed=3)


def test_s2r_representations_are_its_outputs(pairs):
    model = S2RDepthNet(**TINY)
    variables = _variables(model)
    a, _ = pairs
    reps = si.depth_model_representation(model, variables, use_attention=True)(a)
    assert list(reps) == [si.STRUCT_CODE, si.STRUCTURE_MAP, si.ATTENTION_MAP, si.DEPTH_SPECIFIC, si.DEPTHNET_CONV2,
                          si.DEPTHNET_CENTRE, si.DEPTH]
    out = jax.jit(model.apply)(variables, a)
    np.testing.assert_allclose(reps[si.STRUCTURE_MAP], out["structure_map"], atol=2e-5)
    np.testing.assert_allclose(reps[si.DEPTH], out["depth"][-1], atol=2e-5)
    code = si.encoder_representation(4, variables["params"]["struct_encoder"])(a)[si.STRUCT_CODE]
    np.testing.assert_allclose(reps[si.STRUCT_CODE], code, rtol=1e-5, atol=1e-6)
    assert reps[si.DEPTHNET_CONV2].shape == (3, 48, 48, 8) and reps[si.DEPTHNET_CENTRE].shape == (3, 12, 12, 16)


def test_same_images_in_both_styles_are_invariant_everywhere(pairs):
    """Every representation of the RGB baseline, identical inputs: corr 1 and style/scene 0."""
    model = RGBBaseline(depth_ngf=4)
    a, _ = pairs
    figures = si.measure(si.depth_model_representation(model, _variables(model), False), a, a.copy())
    assert sorted(figures) == sorted([si.DEPTHNET_CONV2, si.DEPTHNET_CENTRE, si.DEPTH])
    for f in figures.values():
        np.testing.assert_allclose([f["corr"], f["style_scene"]], [1.0, 0.0], atol=1e-6)


def test_procedural_pairs_share_geometry_not_pixels(pairs):
    a, b = pairs
    assert a.shape == b.shape == (3, *SIZE, 3) and a.min() >= -1 and a.max() <= 1
    f = si.measure(si.image_representation, a, b)[si.IMAGE]
    assert 0 < f["style_scene"] and f["corr"] > 0.2  # different pixels, the same scenes


def test_cli_on_a_checkpoint_and_two_folders(tmp_path, pairs):
    model = S2RDepthNet(**TINY)
    config = {"stage": "dsa_depth", "model": dict(TINY, shared_prelu=True, align_corners=True, dtype="float32"),
              "use_attention": True, "data": {"image_size": list(SIZE), "depth_range_m": 80.0}}
    with Checkpointer(tmp_path / "ckpt") as c:
        c.save(0, _variables(model), meta={"written_by": "s2r_jax.train", "config": config})
    for style, images in zip("ab", pairs):
        os.makedirs(tmp_path / style)
        for i, x in enumerate(images):
            imageio.write_rgb(str(tmp_path / style / f"{i:03d}.png"), ((x + 1) * 127.5 + 0.5).astype(np.uint8))
    os.remove(tmp_path / "b" / "002.png")
    cmd = [sys.executable, "-m", "s2r_jax.diagnostics.style_invariance", f"--checkpoint={tmp_path / 'ckpt'}",
           f"--data={tmp_path / 'a'},{tmp_path / 'b'}", f"--output={tmp_path / 'out.json'}", "--random_encoder"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1 and "holds 3 images" in res.stderr and "2" in res.stderr
    os.remove(tmp_path / "a" / "002.png")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "style invariance over 2 scenes at 96x96" in res.stdout
    import json
    rows = json.load(open(tmp_path / "out.json"))["rows"]
    labels = [(r["model"], r["representation"]) for r in rows]
    assert labels[0] == ("-", si.IMAGE) and (str(tmp_path / "ckpt"), si.ATTENTION_MAP) in labels
    assert labels[-1] == ("random encoder (dim 4)", si.STRUCT_CODE)
    # the image row is the pixels of the files, compared as the library compares them
    a, b = (np.stack([imageio.read_rgb(str(tmp_path / s / f"{i:03d}.png")) for i in range(2)]) for s in "ab")
    want = si.measure(si.image_representation, a / 127.5 - 1, b / 127.5 - 1)[si.IMAGE]
    np.testing.assert_allclose([rows[0]["corr"], rows[0]["style_scene"]], [want["corr"], want["style_scene"]],
                               rtol=1e-6)


def test_demo_verdict_reads_the_paired_seed_differences():
    """The demo's conclusion: 'not shown' unless the paired difference exceeds its spread."""
    from s2r_jax import demo

    m, s = demo.mean_sd([1.0, 2.0, 6.0])
    np.testing.assert_allclose([m, s], [3.0, np.std([1.0, 2.0, 6.0], ddof=1)], rtol=1e-12)
    assert np.isnan(demo.mean_sd([1.0])[1])
    # S2R-DepthNet loses 0.01, 0.012, 0.011 less than the baseline: shown, with mean and spread
    good = demo.shift_verdict([0.01, 0.01, 0.01], [0.02, 0.022, 0.021])
    assert good.startswith("S2R-DepthNet loses 0.0110 ± 0.0010 abs_rel less") and "not shown" not in good
    assert "MORE" in demo.shift_verdict([0.02, 0.022, 0.021], [0.01, 0.01, 0.01])
    within = demo.shift_verdict([0.01, 0.03, 0.01], [0.02, 0.01, 0.025])  # mean +0.0017, spread 0.0189
    assert "differ by +0.0017 ± 0.0189" in within and "not shown" in within
    assert "no conclusion" in demo.shift_verdict([0.01], [0.02])


def test_demo_invariance_verdict_says_where_the_invariance_is_lost():
    from s2r_jax import demo

    def figs(*values):
        return [{"style_scene": v} for v in values]

    inv = {("", si.IMAGE): figs(0.65), ("", f"{si.STRUCT_CODE}, encoder at init"): figs(0.6),
           ("", f"{si.STRUCT_CODE}, after pretraining"): figs(0.24),
           ("stage2", si.STRUCTURE_MAP): figs(0.5, 0.7, 0.6), ("stage2", si.DEPTH_SPECIFIC): figs(0.5, 0.8, 0.65)}
    lost = demo.invariance_verdict(inv)
    assert lost[0] == "pretraining made the structure code more style-free: style/scene 0.600 at init -> 0.240 " \
                      "(the image: 0.650)"
    assert lost[1].startswith("but DepthNet's input (depth-specific structure, 0.650 ± 0.150) is no more")
    inv[("stage2", si.DEPTH_SPECIFIC)] = figs(0.2, 0.3, 0.25)
    assert demo.invariance_verdict(inv)[1].startswith("DepthNet's input (depth-specific structure, 0.250 ± 0.050) "
                                                      "is more style-free")
    inv[("", f"{si.STRUCT_CODE}, after pretraining")] = figs(0.7)
    assert demo.invariance_verdict(inv)[0].startswith("pretraining did NOT make")
