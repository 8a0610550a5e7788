"""The zero-shot suite through eval.py: every built transfer dataset under its protocol, mRI
against a reference, the report, from predictions files and from a checkpoint."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import transfer_trees
from configs_util import ROOT, load_config
from s2r_jax import config_schema, repo
from s2r_jax.data import build, preprocessing
from s2r_jax.evaluation import metrics, zero_shot, zero_shot_suite
from s2r_jax.evaluation.ground_truth import dataset_frames

evaluator = repo.load_program("eval")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """iBims-1 (an indoor set with a validity mask, eigen box by absolute indices) and Make3D (a
    window protocol), built in one data_dir; the rest of zero_shot.DATASETS is not built."""
    d = tmp_path_factory.mktemp("zero_shot")
    transfer_trees.write_ibims(d / "ibims", n=2, h=96, w=128)
    transfer_trees.write_make3d(d / "make3d")
    build.build("ibims", str(d / "ibims"), str(d / "tfds"))
    build.build("make3d", str(d / "make3d"), str(d / "tfds"))
    return d


def _config(built, validate=True, **fields):
    c = load_config("zero_shot")
    c.data_dir = str(built / "tfds")
    for k, v in fields.items():
        c[k] = v
    if validate:
        config_schema.validate_evaluation(c)
    return c


def _predictions(built, tmp_path):
    """Per dataset, one depth map per frame (ground-truth size for iBims, the image window's
    Make3D output at model size for Make3D): a smooth ramp, so metrics are non-trivial."""
    out = tmp_path / "preds"
    out.mkdir()
    for name in ("ibims", "make3d"):
        gts, _ = dataset_frames(zero_shot_suite.data_config(name, _config(built, validate=False)),
                                zero_shot_suite.ground_truth(name))
        shape = (48, 64) if name == "make3d" else gts[0].shape
        ramp = np.linspace(1.0, 9.0, shape[0] * shape[1], dtype=np.float32).reshape(shape)
        np.savez(out / f"{name}.npz", **{f"pred_{i:05d}": ramp * (1 + 0.1 * i) for i in range(len(gts))})
    return out


def test_predictions_are_scored_under_each_datasets_protocol_with_mri(built, tmp_path):
    preds = _predictions(built, tmp_path)
    c = _config(built, predictions=str(preds))
    assert zero_shot_suite.select_datasets(c) == ["ibims", "make3d"]  # only what is built
    results, mri, _ = evaluator.evaluate_zero_shot(c)
    for name in ("ibims", "make3d"):
        spec = zero_shot.get_dataset(name)
        valid = spec.valid_feature if spec.uses_mask("zoedepth") else None
        gts, _ = dataset_frames(zero_shot_suite.data_config(name, c), zero_shot_suite.ground_truth(name), valid)
        want, _ = metrics.evaluate(gts, [np.load(preds / f"{name}.npz")[f"pred_{i:05d}"] for i in range(len(gts))],
                                   spec.zoedepth, progress=False)
        assert results[name]["metrics"] == pytest.approx(want, rel=1e-12)
        assert results[name]["protocol"] is spec.zoedepth
    # iBims' mask is applied: its valid pixels are fewer than its positive ones
    masked, _ = dataset_frames(zero_shot_suite.data_config("ibims", c), zero_shot_suite.ground_truth("ibims"), "valid")
    plain, _ = dataset_frames(zero_shot_suite.data_config("ibims", c), zero_shot_suite.ground_truth("ibims"))
    assert (masked[0] > 0).sum() < (plain[0] > 0).sum()
    # mRI against NeWCRFs' published iBims-1 numbers, by hand; Make3D is not in ZoeDepth's tables
    ref = zero_shot.PUBLISHED["ibims"]["NeWCRFs"]
    ours = results["ibims"]["metrics"]
    hand = np.mean([(ours["a1"] - ref["a1"]) / ref["a1"], (ref["abs_rel"] - ours["abs_rel"]) / ref["abs_rel"],
                    (ref["rmse"] - ours["rmse"]) / ref["rmse"]])
    assert mri["per_dataset"]["ibims"]["mri"] == pytest.approx(hand, rel=1e-12)
    assert "no NeWCRFs numbers for make3d" in mri["per_dataset"]["make3d"]["error"]
    assert mri["over_datasets"]["abs_rel"] == pytest.approx((ref["abs_rel"] - ours["abs_rel"]) / ref["abs_rel"])


def test_eval_py_writes_the_report_and_a_run_against_itself_has_mri_zero(built, tmp_path):
    preds = _predictions(built, tmp_path)
    run = lambda workdir, *more: subprocess.run(
        [sys.executable, os.path.join(ROOT, "eval.py"), f"--config={ROOT}/configs/zero_shot.py",
         f"--config.predictions={preds}", f"--config.data_dir={built / 'tfds'}", f"--workdir={workdir}", *more],
        capture_output=True, text=True)
    first = run(tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ibims" in first.stdout and "make3d" in first.stdout and "mRI vs NeWCRFs" in first.stdout
    out = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert set(out["datasets"]) == {"ibims", "make3d"} and out["datasets"]["make3d"]["protocol"]["crop"] == "make3d_c1"
    report = (tmp_path / "a" / "report.md").read_text()
    assert "| iBims-1 |" in report and "NeWCRFs" in report and zero_shot.PUBLISHED_SOURCE[:30] in report
    with Image.open(tmp_path / "a" / "chart.png") as chart:
        assert chart.size[0] > 200 and len(set(np.asarray(chart.convert("L")).ravel())) > 2  # bars drawn
    rows = (tmp_path / "a" / "per_image_ibims.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("index,name,abs_rel")
    again = run(tmp_path / "b", f"--config.reference={tmp_path / 'a' / 'metrics.json'}")
    assert again.returncode == 0, again.stderr[-3000:]
    mri = json.loads((tmp_path / "b" / "metrics.json").read_text())["mri"]
    assert mri["per_dataset"]["ibims"]["mri"] == 0.0 and mri["per_dataset"]["make3d"]["mri"] == 0.0
    bad = run(tmp_path / "c", "--config.datasets=('ibims','ddad')")
    assert bad.returncode == 1 and "['ddad'] are not built" in bad.stderr


def test_a_checkpoint_runs_through_the_suite(built, tmp_path, stage2_checkpoint):
    """The model path: the image window each protocol shows (Make3D's 2:1 centre crop), flip
    TTA, iBims' mask; every frame is scored."""
    c = _config(built, checkpoint=stage2_checkpoint, batch_size=8)
    results, mri, source = evaluator.evaluate_zero_shot(c)
    assert {n: int(r["metrics"]["frames"]) for n, r in results.items()} == {"ibims": 2, "make3d": 2}
    assert source["checkpoint"] == stage2_checkpoint
    assert preprocessing.image_window((2272, 1704), "make3d") == (710, 1562, 0, 1704)
    assert preprocessing.image_window((1024, 2048), "cityscapes") == (0, 768, 0, 2048)
