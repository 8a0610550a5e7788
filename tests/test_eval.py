"""eval.py: the official protocol end to end, file-based and from a checkpoint."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from s2r_jax.evaluation import runner
from s2r_jax.evaluation.config import eval_config

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = np.load(os.path.join(FIXTURES, "kitti_golden.npz"))
ORDER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


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


def test_protocol_options_change_the_result(kitti_files):
    def run(**kw):
        c = eval_config(dataset="kitti_eigen", tfds_config="")
        c.predictions, c.gt_file = str(kitti_files / "stacked.npz"), str(kitti_files / "gt.npz")
        for k, v in kw.items():
            c[k] = v
        return runner.run(c)
    official = run()
    assert official["abs_rel"] == pytest.approx(GOLDEN["metrics_kitti_median_scaled"][0], abs=1e-6)
    assert run(protocol="monodepth2")["abs_rel"] != pytest.approx(official["abs_rel"], abs=1e-6)
    assert run(protocol="metric")["abs_rel"] != pytest.approx(official["abs_rel"], abs=1e-3)
    assert run(max_depth_eval=50.0)["frames"] == 1


def test_bad_inputs_are_clear_errors(kitti_files, tmp_path):
    c = eval_config(dataset="kitti_eigen", tfds_config="")
    with pytest.raises(ValueError, match="exactly one of config.checkpoint"):
        runner.run(c)
    c.predictions, c.gt_file = str(tmp_path / "missing.npz"), str(kitti_files / "gt.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        runner.run(c)
    np.savez(tmp_path / "two.npz", a=np.ones((375, 1242)), b=np.ones((375, 1242)))
    c.predictions = str(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="1 ground-truth frames but 2 predictions"):
        runner.run(c)
    np.savez(tmp_path / "nan.npz", a=np.full((375, 1242), np.nan))
    c.predictions = str(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="frame 0"):
        runner.run(c)


def test_checkpoint_evaluation_on_procedural_data(procedural_vkitti, tmp_path):
    """A tiny trained stage-2 model, evaluated from its workdir on the dataset's own ground truth."""
    from s2r_jax.training import loop
    from s2r_jax.training.config import stage_config
    c = stage_config("dsa_depth", local=True)
    c.data.data_dir, c.allow_random_frozen, c.num_train_steps, c.log.image_every_steps = procedural_vkitti, True, 2, 0
    loop.train(c, str(tmp_path / "w"))
    e = eval_config(dataset="virtual_kitti", tfds_config="1.3.1")
    e.data.split, e.data.data_dir, e.gt, e.checkpoint = "train", procedural_vkitti, "depth", str(tmp_path / "w")
    e.protocol, e.crop, e.save_predictions, e.flip_tta = "metric", "none", True, True
    mean = runner.run(e, str(tmp_path / "out"))
    assert mean["frames"] == 16 and 0 < mean["abs_rel"] < 10
    preds = runner.load_predictions(str(tmp_path / "out" / "predictions.npz"))
    with np.load(tmp_path / "out" / "predictions.npz") as f:
        assert len(f["names"]) == 16 and str(f["names"][0]).startswith("rgb/")
    assert len(preds) == 16 and preds[0].shape == (96, 160)  # at the ground truth's resolution, in metres
    assert 0 <= preds[0].min() and preds[0].max() <= 80
    # the saved predictions evaluate to the same numbers through the file path
    e2 = eval_config(dataset="virtual_kitti", tfds_config="1.3.1")
    e2.data.split, e2.data.data_dir, e2.gt = "train", procedural_vkitti, "depth"
    e2.protocol, e2.crop, e2.predictions = "metric", "none", str(tmp_path / "out" / "predictions.npz")
    assert runner.run(e2)["abs_rel"] == pytest.approx(mean["abs_rel"], rel=1e-5)


def test_prediction_keys_are_read_in_natural_order(tmp_path):
    np.savez(tmp_path / "p.npz", **{f"pred_{i}": np.full((2, 2), i, np.float32) for i in (10, 2, 1, 0)})
    assert [int(a[0, 0]) for a in runner.load_predictions(str(tmp_path / "p.npz"))] == [0, 1, 2, 10]
