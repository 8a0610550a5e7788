"""ZoeDepth's evaluation protocols against the official `compute_metrics` (golden to 1e-6), their
settings against the official configs, and the image preparation of its evaluation against
torch. NumPy and torch only: nothing is compiled here."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from configs_util import load_config
from s2r_jax import config_schema
from s2r_jax.data.preprocessing import kb_crop
from s2r_jax.evaluation import evaluate, evaluate_frame, get_protocol
from s2r_jax.evaluation.protocols import protocol_from_config
from s2r_jax.model_loader import zoedepth_evaluation_input
from zoedepth_golden import FIXTURES

GOLDEN = dict(np.load(FIXTURES / "golden_metrics.npz"))


def _as_official(result, names):
    return [result[str(n).replace("log_10", "log10")] for n in names]


def _nyu_frame():
    """The golden NYU pair (480x640): stored inside the Eigen box, where alone it counts."""
    top, bottom, left, right = GOLDEN["nyu_box"]
    gt, pred = np.zeros((480, 640), np.float32), np.full((480, 640), 3.0, np.float32)
    gt[top:bottom, left:right], pred[top:bottom, left:right] = GOLDEN["nyu_gt_box"], GOLDEN["nyu_pred_box"]
    return gt, pred


def test_zoedepth_nyu_reproduces_the_official_compute_metrics():
    """The official compute_metrics(gt, pred, dataset='nyu', eigen_crop, 1e-3..10 m); observed
    error 5e-7 on silog (~34), 4e-8 elsewhere: float32 against our float64."""
    gt, pred = _nyu_frame()
    got = _as_official(evaluate_frame(gt, pred, "zoedepth_nyu"), GOLDEN["nyu_metric_names"])
    np.testing.assert_allclose(got, GOLDEN["nyu_metrics"], rtol=0, atol=1e-6)
    # outside the Eigen box nothing counts: another prediction there changes nothing
    other = np.where(gt > 0, pred, 0.5).astype(np.float32)
    assert _as_official(evaluate_frame(gt, other, "zoedepth_nyu"), GOLDEN["nyu_metric_names"]) == got
    # and the cap is 10 m, not 80: the same pair under a 80 m cap differs
    capped80 = evaluate_frame(gt, pred, get_protocol("zoedepth_nyu", max_depth=80.0))["abs_rel"]
    assert abs(capped80 - GOLDEN["nyu_metrics"][3]) > 1e-3


def test_zoedepth_kitti_reproduces_the_official_compute_metrics():
    """The official compute_metrics(gt, pred, dataset='kitti', garg_crop, 1e-3..80 m) on a
    375x1242 frame: zoedepth_kitti's metric step (its range, clamping, no scaling; the Garg
    fractions) to 1e-6. The protocol applies it to the KB crop, as the official loader crops
    ground truth and image to 352x1216 before compute_metrics (the composition is checked
    here; KB + Garg against the official code: tests/test_zero_shot.py, vkitti2 case)."""
    gt, pred = GOLDEN["kitti_gt"], GOLDEN["kitti_pred_at_gt"]
    garg = get_protocol("zoedepth_kitti", crop="garg")
    got = _as_official(evaluate_frame(gt, pred, garg), GOLDEN["kitti_metric_names"])
    np.testing.assert_allclose(got, GOLDEN["kitti_metrics"], rtol=0, atol=1e-6)
    kb = evaluate_frame(gt, pred, "zoedepth_kitti", pred_is_kb_cropped=False)
    assert kb == evaluate_frame(kb_crop(gt), kb_crop(pred), garg)
    assert kb["valid_pixels"] < evaluate_frame(gt, pred, garg)["valid_pixels"]


def test_per_image_means():
    """evaluate.py averages per-image metrics (RunningAverageDict), not pooled pixels."""
    gt, pred = _nyu_frame()
    mean, per_image = evaluate([gt, gt], [pred, np.full_like(pred, 2.0)], "zoedepth_nyu", progress=False)
    assert mean["abs_rel"] == pytest.approx((per_image[0]["abs_rel"] + per_image[1]["abs_rel"]) / 2, rel=1e-12)


def test_protocols_and_eval_presets_are_the_official_settings():
    """zoedepth/utils/config.py: 'nyu' eigen_crop, 1e-3..10; 'kitti' do_kb_crop + garg_crop,
    1e-3..80; evaluate.py always averages with the flipped image; no scaling."""
    nyu, kitti = get_protocol("zoedepth_nyu"), get_protocol("zoedepth_kitti")
    assert (nyu.crop, nyu.min_depth, nyu.max_depth, nyu.median_scaling, nyu.flip_tta) == (
        "zoedepth_eigen", 1e-3, 10.0, "none", True)
    assert (kitti.crop, kitti.min_depth, kitti.max_depth, kitti.median_scaling, kitti.flip_tta) == (
        "kb_garg", 1e-3, 80.0, "none", True)
    for name, protocol in (("eval_nyu", nyu), ("eval_kitti", kitti)):
        c = load_config(name, "zoedepth")
        c.checkpoint = "ckpt"
        config_schema.validate_evaluation(c)
        assert protocol_from_config(c) == protocol
        assert tuple(c.model_image_size) == () and c.model_depth_range_m == 0.0  # the checkpoint's; metres
    with pytest.raises(ValueError, match="variants: zoedepth"):
        load_config("eval_nyu", "zoe")


@pytest.mark.parametrize("size, dtype", [((480, 640), np.float32), ((352, 1216), np.float32),
                                         ((375, 1242), np.float64)])
def test_evaluation_input_is_the_official_prep(size, dtype):
    """What ZoeDepth's evaluation feeds its network: uint8 / 255, then MidasCore.prep's
    F.interpolate(bilinear, align_corners=True) to the network size (no aspect ratio kept), here
    on the host: equal to torch's float32 kernel to the last bit or so (float64 when asked)."""
    rgb = np.random.default_rng(size[1]).integers(0, 256, size + (3,), dtype=np.uint8)
    got = zoedepth_evaluation_input(rgb, dtype, (384, 768))
    x = torch.from_numpy(np.asarray(rgb, dtype) / dtype(255)).permute(2, 0, 1)[None]
    want = torch.nn.functional.interpolate(x, (384, 768), mode="bilinear", align_corners=True)[0].permute(1, 2, 0)
    assert got.dtype == dtype and got.shape == (384, 768, 3)
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=2e-7 if dtype == np.float32 else 1e-12)


def test_the_new_modules_import_without_tensorflow():
    """As on the GPU image: the fine-tuning stage, the metric-bins model, the loader and
    prediction need no tensorflow."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"
            "import s2r_jax.training.zoedepth_stage, s2r_jax.models.s2r_metric_bins, s2r_jax.model_loader, "
            "s2r_jax.predict, s2r_jax.evaluation.evaluator, s2r_jax.config_schema\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
