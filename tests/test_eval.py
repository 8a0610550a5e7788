"""eval.py: the official protocol end to end, from prediction files and from a checkpoint, and
the evaluation config's checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs_util import ROOT, load_config
from s2r_jax import config_schema, repo
from s2r_jax.evaluation import metrics, prediction_files
from s2r_jax.evaluation.protocols import protocol_from_config

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GOLDEN = np.load(os.path.join(FIXTURES, "kitti_golden.npz"))
ORDER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
evaluator = repo.load_program("eval")


@pytest.fixture(scope="module")
def kitti_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kitti_eval")
    subprocess.run([sys.executable, "-m", "s2r_jax.data.kitti_gt", f"--kitti_root={FIXTURES}/kitti_raw_mini",
                    f"--split_file={FIXTURES}/kitti_mini_test.txt", f"--output={d}/gt.npz"], check=True,
                   capture_output=True)
    np.savez(d / "pred.npz", pred_00000=GOLDEN["metrics_pred"])
    np.savez(d / "stacked.npz", predictions=GOLDEN["metrics_pred"][None])
    return d


def test_official_protocol_reproduces_the_golden_kitti_metrics_through_eval_py(kitti_files, tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), f"--config={ROOT}/configs/eval_kitti.py",
                          f"--config.predictions={kitti_files}/pred.npz", f"--config.gt_file={kitti_files}/gt.npz",
                          f"--workdir={tmp_path}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "protocol s2r_official: crop garg" in res.stdout
    out = json.loads((tmp_path / "metrics.json").read_text())
    got = [out["metrics"][k] for k in ORDER]
    np.testing.assert_allclose(got, GOLDEN["metrics_kitti_median_scaled"], rtol=0, atol=1e-6)
    assert out["protocol"]["median_scaling"] == "official"
    assert set(ORDER) | {"log10", "silog"} <= set(out["metrics"])
    rows = (tmp_path / "per_image.csv").read_text().splitlines()
    assert rows[0].startswith("index,name,abs_rel") and len(rows) == 2
    assert res.stderr.count("\n") <= 3, res.stderr  # no library log flood on the terminal


def _file_config(kitti_files, **fields):
    c = load_config("eval_kitti")
    c.predictions, c.gt_file = str(kitti_files / "stacked.npz"), str(kitti_files / "gt.npz")
    for k, v in fields.items():
        c[k] = v
    config_schema.validate_evaluation(c)
    return c


def _run_file(c):
    return evaluator.evaluate_file(c, protocol_from_config(c))[0]


def test_protocol_options_change_the_result(kitti_files):
    official = _run_file(_file_config(kitti_files))
    assert official["abs_rel"] == pytest.approx(GOLDEN["metrics_kitti_median_scaled"][0], abs=1e-6)
    assert _run_file(_file_config(kitti_files, protocol="monodepth2"))["abs_rel"] != pytest.approx(
        official["abs_rel"], abs=1e-6)
    assert _run_file(_file_config(kitti_files, protocol="metric"))["abs_rel"] != pytest.approx(
        official["abs_rel"], abs=1e-3)
    assert _run_file(_file_config(kitti_files, max_depth_eval=50.0))["frames"] == 1


def test_bad_inputs_are_clear_errors(kitti_files, tmp_path):
    c = load_config("eval_kitti")
    with pytest.raises(config_schema.ConfigError, match="exactly one of config.checkpoint"):
        config_schema.validate_evaluation(c)
    c.checkpoint, c.gt_file = "somewhere", "gt.npz"
    with pytest.raises(config_schema.ConfigError, match="config.gt_file is for evaluating a predictions file"):
        config_schema.validate_evaluation(c)
    # fields that an evaluation cannot honour are refused, not ignored
    for field, value in (("max_depth", 10.0), ("image_size", (96, 160))):
        bad = load_config("eval_kitti")
        bad.predictions, bad[field] = "p.npz", value
        with pytest.raises(config_schema.ConfigError, match=f"config.{field}: unknown field"):
            config_schema.validate_evaluation(bad)
    bad = load_config("eval_kitti")
    bad.predictions, bad.data.augment = "p.npz", {"flip_prob": 0.5}
    with pytest.raises(config_schema.ConfigError, match="config.data.augment: unknown field"):
        config_schema.validate_evaluation(bad)
    c = _file_config(kitti_files)
    c.predictions = str(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        _run_file(c)
    np.savez(tmp_path / "two.npz", a=np.ones((375, 1242)), b=np.ones((375, 1242)))
    c.predictions = str(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="1 ground-truth frames but 2 predictions"):
        _run_file(c)
    np.savez(tmp_path / "nan.npz", a=np.full((375, 1242), np.nan))
    c.predictions = str(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="frame 0"):
        _run_file(c)


def test_checkpoint_evaluation_equals_predicting_the_images_and_evaluating_the_files(
        procedural_vkitti, stage2_checkpoint, tmp_path):
    """eval.py on a checkpoint (tf.data, the mesh, flip TTA) gives the metrics of the prediction
    program's outputs (s2r_jax.predict on the PNG files) evaluated as a predictions file: one
    preprocessing, one model path, one metrics path."""
    from s2r_jax.data import pipeline
    from s2r_jax.evaluation.ground_truth import ground_truth_frames
    from s2r_jax.predict import load_predictor

    e = load_config("eval_vkitti")
    e.data.split, e.data.data_dir, e.checkpoint = "train", procedural_vkitti, stage2_checkpoint
    e.protocol, e.crop, e.save_predictions, e.batch_size = "metric", "none", True, 8
    config_schema.validate_evaluation(e)
    mean, per_image, names, kept, _ = evaluator.evaluate_model(e, protocol_from_config(e))
    assert mean["frames"] == 16 and len(per_image) == 16 and len(kept) == 16
    gts, gt_names = ground_truth_frames(e)
    assert names == gt_names and names[0].startswith("rgb/")
    # the same frames through the prediction program's path: decode the PNG, preprocess, predict
    predictor = load_predictor(stage2_checkpoint)
    root = os.path.dirname(procedural_vkitti)  # the raw tree beside the TFDS dir (conftest)
    images = [np.asarray(Image.open(os.path.join(root, "raw", n)).convert("RGB")) for n in names]
    raw = predictor.predict_raw(np.stack([predictor.preprocess(im) for im in images]))
    preds = [predictor.metres(raw[i], im.shape[:2]) for i, im in enumerate(images)]
    want, _ = metrics.evaluate(gts, preds, protocol_from_config(e), progress=False)
    for k in ORDER:
        assert mean[k] == pytest.approx(want[k], rel=1e-5), k
    # the saved predictions evaluate to the same numbers through the file path
    prediction_files.save_predictions(str(tmp_path / "p.npz"), *zip(*kept))
    e2 = load_config("eval_vkitti")
    e2.data.split, e2.data.data_dir, e2.predictions = "train", procedural_vkitti, str(tmp_path / "p.npz")
    e2.protocol, e2.crop = "metric", "none"
    assert _run_file(e2)["abs_rel"] == pytest.approx(mean["abs_rel"], rel=1e-6)
    assert pipeline.num_examples(e.data) == 16


def test_flip_tta_averages_with_the_mirrored_prediction(procedural_vkitti, stage2_checkpoint):
    """With flip TTA a frame's prediction is (p(x) + mirror(p(mirror(x)))) / 2, computed here
    from the model alone; zoedepth_kitti predicts the KB-cropped image (the pipeline's crop:
    test_pipeline.py)."""
    import tensorflow_datasets as tfds

    from s2r_jax.data import pipeline
    from s2r_jax.evaluation.crops import image_crop
    from s2r_jax.evaluation.protocols import get_protocol
    from s2r_jax.evaluation.resize import upsample_to
    from s2r_jax.model_loader import load_model
    assert image_crop(get_protocol("zoedepth_kitti").crop) == "kb"
    assert image_crop(get_protocol("s2r_official").crop) == "none"
    e = load_config("eval_vkitti")
    e.data.split, e.data.data_dir, e.checkpoint, e.crop = "train", procedural_vkitti, stage2_checkpoint, "none"
    e.flip_tta, e.save_predictions, e.data.num_examples = True, True, 2
    kept = evaluator.evaluate_model(e, protocol_from_config(e))[3]
    model = load_model(stage2_checkpoint)
    batch = next(iter(tfds.as_numpy(pipeline.eval_dataset(e.data, image_size=model.image_size, batch_size=2))))
    plain = np.asarray(model.finest(batch["image"]))
    mirrored = np.asarray(model.finest(batch["image"][:, :, ::-1]))[:, :, ::-1]
    assert np.abs(plain - mirrored).max() * 40 > 1e-3  # in metres, beyond the tolerance below: not vacuous
    for index, _, metres in kept:
        h, w = batch["gt_shape"][index]
        want = (upsample_to((plain[index] + mirrored[index])[..., 0] / 2, (h, w)) + 1) / 2 * 80.0
        np.testing.assert_allclose(metres, want, rtol=1e-5, atol=1e-4)


def test_prediction_keys_are_read_in_natural_order(tmp_path):
    np.savez(tmp_path / "p.npz", **{f"pred_{i}": np.full((2, 2), i, np.float32) for i in (10, 2, 1, 0)})
    assert [int(a[0, 0]) for a in prediction_files.load_predictions(str(tmp_path / "p.npz"))] == [0, 1, 2, 10]
    # a directory of per-host files is one set of predictions, ordered by frame
    (tmp_path / "hosts").mkdir()
    prediction_files.save_predictions(str(tmp_path / "hosts" / "predictions.process00001.npz"), [1, 3], ["b", "d"],
                                      [np.full((2, 2), 1.0), np.full((2, 2), 3.0)])
    prediction_files.save_predictions(str(tmp_path / "hosts" / "predictions.process00000.npz"), [0, 2], ["a", "c"],
                                      [np.full((2, 2), 0.0), np.full((2, 2), 2.0)])
    assert [float(a[0, 0]) for a in prediction_files.load_predictions(str(tmp_path / "hosts"))] == [0, 1, 2, 3]


def test_eval_py_reproduces_the_official_test_py_end_to_end_in_float64(tmp_path):
    """From the PNG and the velodyne scan to the metrics: the official test.py pipeline, run in
    float64 with the golden weights at --loadSize 96 320 (tests/fixtures/README.md), against
    `eval.py --config.dtype=float64` with the same weights converted, run as a user runs it.
    Tolerance 1e-6 relative (seen: ~1e-8; the ground truth is stored in float32)."""
    import golden
    from s2r_jax import convert, weights
    from s2r_jax.data import build
    want = json.loads(open(os.path.join(FIXTURES, "official_kitti_test_py_float64.json")).read())
    networks = ("struct_encoder", "struct_decoder", "dsa", "depth_net")
    variables = weights.merge_variables(*(weights.import_state_dict(n, golden.state_dict(n), source=n)
                                          for n in networks))
    convert.write_checkpoint(variables, {"written_by": "s2r_jax.convert"}, str(tmp_path / "ckpt"))
    build.build("kitti_eigen", os.path.join(FIXTURES, "kitti_raw_mini"), str(tmp_path / "tfds"),
                test_list=os.path.join(FIXTURES, "kitti_mini_test.txt"))
    h, w = want["load_size"]
    res = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), f"--config={ROOT}/configs/eval_kitti.py",
                          f"--config.checkpoint={tmp_path / 'ckpt'}", f"--config.data.data_dir={tmp_path / 'tfds'}",
                          "--config.dtype=float64", f"--config.model_image_size=({h}, {w})", "--config.batch_size=1",
                          f"--workdir={tmp_path / 'out'}"], capture_output=True, text=True,
                         env={**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    for k, v in want["metrics"].items():
        assert got[k] == pytest.approx(v, rel=1e-6), k
