"""The evaluation core: official S2R-DepthNet metrics and the other protocols."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2r_jax.evaluation import (
    METRIC_NAMES,
    OFFICIAL_METRIC_ORDER,
    PROTOCOLS,
    Protocol,
    compute_metrics,
    crop_box,
    crop_mask,
    evaluate,
    evaluate_frame,
    format_table,
    get_protocol,
    kb_crop,
    mean_metrics,
    upsample_to,
)

GOLDEN = Path(__file__).parent / "fixtures" / "kitti_golden.npz"
KITTI_SIZES = [(375, 1242), (370, 1224), (374, 1238), (376, 1241)]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def _official_vector(result):
    return np.array([result[k] for k in OFFICIAL_METRIC_ORDER])


# ----------------------------------------------------------------------------- acceptance


def test_official_kitti_reproduces_golden(golden):
    res = evaluate_frame(golden["depth_camera_z"], golden["metrics_pred"], "s2r_official")
    np.testing.assert_allclose(_official_vector(res), golden["metrics_kitti_median_scaled"], rtol=0, atol=1e-6)


def test_official_nyu_reproduces_golden(golden):
    res = evaluate_frame(golden["nyu_gt"], golden["nyu_pred"], "s2r_official_nyu")
    np.testing.assert_allclose(_official_vector(res), golden["metrics_nyu_median_scaled"], rtol=0, atol=1e-6)


def test_evaluate_mean_over_frames_reproduces_golden(golden):
    gts = [golden["depth_camera_z"], golden["depth_camera_z"]]
    preds = [golden["metrics_pred"], golden["metrics_pred"][..., None]]  # (H, W, 1) accepted
    mean, per = evaluate(gts, preds, PROTOCOLS["s2r_official"], progress=False)
    np.testing.assert_allclose(_official_vector(mean), golden["metrics_kitti_median_scaled"], rtol=0, atol=1e-6)
    assert mean["frames"] == 2 and mean["frames_skipped"] == 0
    assert len(per) == 2 and per[0]["valid_pixels"] == per[1]["valid_pixels"] > 0
    assert mean["scale_median"] == pytest.approx(per[0]["scale"])


# ----------------------------------------------------------------------------- scaling order


def test_scaling_orders_differ_on_golden(golden):
    gt, pred = golden["depth_camera_z"], golden["metrics_pred"]
    official = _official_vector(evaluate_frame(gt, pred, "s2r_official"))
    mono = _official_vector(evaluate_frame(gt, pred, "monodepth2"))
    metric = _official_vector(evaluate_frame(gt, pred, "metric"))
    assert np.abs(official - mono).max() > 1e-3
    assert np.abs(metric - official).max() > 1e-3
    assert np.abs(metric - mono).max() > 1e-3


def test_scaling_orders_by_hand():
    # 1x3 frame, no crop, range 1e-3..80: pred's median 20, gt's median 40 -> scale 2.
    gt = np.array([[40.0, 40.0, 79.0]])
    pred = np.array([[20.0, 20.0, 100.0]])
    base = dict(crop="none", min_depth=1e-3, max_depth=80.0)
    # official: clamp -> [20, 20, 80], scale 2 -> [40, 40, 160], no clamp after
    off = evaluate_frame(gt, pred, Protocol("o", median_scaling="official", **base))
    assert off["scale"] == 2.0
    assert off["abs_rel"] == pytest.approx((160 - 79) / 79 / 3)
    # monodepth2: scale 2 -> [40, 40, 200], clamp -> [40, 40, 80]
    mono = evaluate_frame(gt, pred, Protocol("m", median_scaling="monodepth2", **base))
    assert mono["scale"] == 2.0
    assert mono["abs_rel"] == pytest.approx((80 - 79) / 79 / 3)
    # none: clamp -> [20, 20, 80]
    none = evaluate_frame(gt, pred, Protocol("n", median_scaling="none", **base))
    assert none["scale"] == 1.0
    assert none["abs_rel"] == pytest.approx((0.5 + 0.5 + 1 / 79) / 3)


def test_official_scale_uses_clamped_prediction():
    # The median is taken after the clamp: pred [0, 0, 10] -> [1e-3, 1e-3, 10].
    gt = np.array([[2.0, 2.0, 2.0]])
    pred = np.array([[0.0, 0.0, 10.0]])
    res = evaluate_frame(gt, pred, Protocol("o", crop="none", median_scaling="official"))
    assert res["scale"] == pytest.approx(2.0 / 1e-3)
    with pytest.raises(ValueError, match="median"):
        evaluate_frame(gt, pred, Protocol("m", crop="none", median_scaling="monodepth2"), index=4)


def test_range_mask_is_strict():
    gt = np.array([[1e-3, 80.0, 10.0]])  # only 10 m is valid
    pred = np.array([[5.0, 5.0, 5.0]])
    res = evaluate_frame(gt, pred, get_protocol("metric", crop="none"))
    assert res["valid_pixels"] == 1
    assert res["abs_rel"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- crops


def test_crop_boxes_375x1242():
    # Garg: 0.40810811*375=153.04, 0.99189189*375=371.96, 0.03594771*1242=44.65, 0.96405229*1242=1197.35
    assert crop_box((375, 1242), "garg") == (153, 371, 44, 1197)
    # Eigen: 0.3324324*375=124.66, 0.91351351*375=342.57, 0.0359477*1242=44.65, 0.96405229*1242=1197.35
    assert crop_box((375, 1242), "eigen") == (124, 342, 44, 1197)
    assert crop_box((375, 1242), "none") == (0, 375, 0, 1242)
    # KB crop at (23, 13); Garg of 352x1216 = (143, 349, 43, 1172)
    assert crop_box((375, 1242), "kb_garg") == (166, 372, 56, 1185)


@pytest.mark.parametrize("shape, garg, eigen, kb_offset", [
    ((375, 1242), (153, 371, 44, 1197), (124, 342, 44, 1197), (23, 13)),
    # 0.99189189*370 = 366.9999993 and 0.03594771*1224 = 43.99999704 truncate down
    ((370, 1224), (151, 366, 43, 1180), (122, 337, 43, 1180), (18, 4)),
    ((374, 1238), (152, 370, 44, 1193), (124, 341, 44, 1193), (22, 11)),
    ((376, 1241), (153, 372, 44, 1196), (124, 343, 44, 1196), (24, 12)),
])
def test_crop_boxes_all_kitti_sizes(shape, garg, eigen, kb_offset):
    assert crop_box(shape, "garg") == garg
    assert crop_box(shape, "eigen") == eigen
    top, left = kb_offset
    assert crop_box(shape, "kb_garg") == (top + 143, top + 349, left + 43, left + 1172)
    a = np.arange(shape[0] * shape[1]).reshape(shape)
    c = kb_crop(a)
    assert c.shape == (352, 1216)
    assert c[0, 0] == a[top, left] and c[-1, -1] == a[top + 351, left + 1215]
    assert kb_crop(a[..., None]).shape == (352, 1216, 1)
    mask = crop_mask(shape, "garg")
    assert mask.dtype == bool and mask.shape == shape
    assert mask.sum() == (garg[1] - garg[0]) * (garg[3] - garg[2])
    assert mask[garg[0], garg[2]] and not mask[garg[0] - 1, garg[2]] and not mask[garg[1], garg[2]]


def test_garg_crop_matches_official_int32_expression_for_many_sizes():
    for h in range(300, 400, 7):
        for w in range(1150, 1260, 11):
            official = np.array([0.40810811 * h, 0.99189189 * h, 0.03594771 * w, 0.96405229 * w]).astype(np.int32)
            assert crop_box((h, w), "garg") == tuple(int(v) for v in official)


def test_nyu_eigen_crop_and_errors():
    assert crop_box((480, 640), "nyu_eigen") == (45, 471, 41, 601)
    with pytest.raises(ValueError, match="480x640"):
        crop_box((192, 256), "nyu_eigen")
    with pytest.raises(ValueError, match="352x1216"):
        kb_crop(np.zeros((192, 640)))
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask((10, 10), "diagonal")


def test_zoedepth_kitti_equals_masked_metric_on_full_frame(golden):
    gt, pred = golden["depth_camera_z"], golden["metrics_pred"]
    res_full = evaluate_frame(gt, pred, "zoedepth_kitti")
    res_cropped = evaluate_frame(gt, kb_crop(pred), "zoedepth_kitti")  # prediction of the KB-cropped image
    m = (gt > 1e-3) & (gt < 80) & crop_mask(gt.shape, "kb_garg")
    ref = compute_metrics(gt[m], np.clip(pred[m].astype(np.float64), 1e-3, 80))
    for k in METRIC_NAMES:
        assert res_full[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12)
        assert res_cropped[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12)
    assert res_full["valid_pixels"] == int(m.sum())
    assert PROTOCOLS["zoedepth_kitti"].flip_tta


# ----------------------------------------------------------------------------- resize


@pytest.mark.parametrize("src, dst", [((4, 5), (9, 13)), ((48, 160), (375, 1242)), ((7, 3), (2, 5)),
                                      ((1, 4), (3, 8)), ((5, 6), (1, 1)), ((6, 8), (6, 8))])
def test_upsample_to_matches_torch(src, dst):
    x = np.random.default_rng(0).uniform(0.1, 80.0, size=src)
    ref64 = F.interpolate(torch.from_numpy(x)[None, None], size=dst, mode="bilinear", align_corners=True)[0, 0]
    np.testing.assert_allclose(upsample_to(x, dst), ref64.numpy(), rtol=0, atol=1e-11)
    x32 = x.astype(np.float32)
    ref32 = F.interpolate(torch.from_numpy(x32)[None, None], size=dst, mode="bilinear", align_corners=True)[0, 0]
    out32 = upsample_to(x32, dst)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, ref32.numpy(), rtol=1e-6, atol=1e-5)
    assert upsample_to(x[..., None], dst).shape == dst


def test_upsample_to_matches_jax_resize_bilinear():
    from s2r_jax.models.layers import resize_bilinear

    x = np.random.default_rng(1).uniform(0.1, 8.0, size=(12, 20)).astype(np.float32)
    ref = np.asarray(resize_bilinear(x[None, :, :, None], (37, 61), align_corners=True))[0, :, :, 0]
    np.testing.assert_allclose(upsample_to(x, (37, 61)), ref, rtol=2e-6, atol=1e-5)


def test_evaluate_upsamples_predictions(golden):
    gt = golden["depth_camera_z"]
    small = golden["metrics_pred"][::4, ::4]  # float32, like the official network output
    for dtype, rel in ((np.float32, 1e-6), (np.float64, 1e-12)):
        pred = small.astype(dtype)
        mean, _ = evaluate([gt], [pred], "s2r_official", progress=False)
        up = F.interpolate(torch.from_numpy(pred)[None, None], size=gt.shape,
                           mode="bilinear", align_corners=True)[0, 0].numpy()
        ref = evaluate_frame(gt, up, "s2r_official")
        for k in METRIC_NAMES:
            assert mean[k] == pytest.approx(ref[k], rel=rel, abs=1e-12), (dtype, k)


# ----------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_double_prediction():
    gt = np.array([1.0, 2.0, 4.0])
    m = compute_metrics(gt, 2 * gt)
    assert set(m) == set(METRIC_NAMES)
    assert m["abs_rel"] == pytest.approx(1.0)
    assert m["sq_rel"] == pytest.approx(7 / 3)  # mean(gt^2 / gt) = mean(gt)
    assert m["rmse"] == pytest.approx(math.sqrt(7))  # sqrt(mean(gt^2)) = sqrt(21 / 3)
    assert m["rmse_log"] == pytest.approx(math.log(2))
    assert m["log10"] == pytest.approx(math.log10(2))
    assert m["silog"] == 0.0  # scale-invariant: no NaN from rounding
    assert (m["a1"], m["a2"], m["a3"]) == (0.0, 0.0, 0.0)  # ratio 2 > 1.25^3 = 1.953125


def test_compute_metrics_perfect_and_thresholds():
    gt = np.array([1.0, 1.0, 1.0, 1.0])
    assert compute_metrics(gt, gt) == dict(abs_rel=0.0, sq_rel=0.0, rmse=0.0, rmse_log=0.0, log10=0.0,
                                           silog=0.0, a1=1.0, a2=1.0, a3=1.0)
    pred = np.array([1.0, 1.2, 1.5, 1.9])  # ratios: <1.25, <1.25, <1.5625, <1.953125
    m = compute_metrics(gt, pred)
    assert (m["a1"], m["a2"], m["a3"]) == (0.5, 0.75, 1.0)
    d = np.log(pred)
    assert m["silog"] == pytest.approx(100 * np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))
    assert m["silog"] == pytest.approx(100 * np.std(d))
    assert m["abs_rel"] == pytest.approx(np.mean([0, 0.2, 0.5, 0.9]))
    # 1/pred is symmetric in the thresholds
    m_inv = compute_metrics(gt, 1 / pred)
    assert (m_inv["a1"], m_inv["a2"], m_inv["a3"]) == (0.5, 0.75, 1.0)


def test_compute_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        compute_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        compute_metrics(np.array([1.0, 2.0]), np.array([1.0]))


# ----------------------------------------------------------------------------- aggregation, errors


def test_frame_without_valid_pixels_is_skipped():
    gt_ok = np.full((4, 6), 10.0)
    gt_empty = np.zeros((4, 6))
    pred = np.full((4, 6), 5.0)
    proto = get_protocol("metric", crop="none")
    assert evaluate_frame(gt_empty, pred, proto) is None
    mean, per = evaluate([gt_ok, gt_empty, gt_ok], [pred, pred, 2 * pred], proto, progress=False)
    assert per[1] is None
    assert mean["frames"] == 2 and mean["frames_skipped"] == 1
    assert mean["abs_rel"] == pytest.approx(0.25)  # mean of 0.5 and 0.0
    assert mean_metrics(per)["abs_rel"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no frame"):
        mean_metrics([None, None])


def test_errors_name_the_frame():
    gt = np.full((4, 6), 10.0)
    good = np.full((4, 6), 5.0)
    with pytest.raises(ValueError, match="3 ground-truth frames but 2 predictions"):
        evaluate([gt] * 3, [good] * 2, "metric", progress=False)
    with pytest.raises(ValueError, match=r"frame 1: prediction must be 2-D"):
        evaluate([gt, gt], [good, np.ones((4, 6, 3))], "metric", progress=False)
    nan = good.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"frame 2: prediction has 1 NaN"):
        evaluate([gt] * 3, [good, good, nan], "metric", progress=False)
    with pytest.raises(ValueError, match=r"frame 0: prediction has 1 negative"):
        evaluate([gt], [good - 5.5 * (np.arange(24).reshape(4, 6) == 3)], "metric", progress=False)
    with pytest.raises(ValueError, match=r"frame 1: ground truth must be 2-D"):
        evaluate([gt, np.ones((2, 4, 6))], [good, good], "metric", progress=False)


def test_progress_goes_to_stderr(capsys):
    gt = np.full((4, 6), 10.0)
    evaluate([gt] * 5, [gt] * 5, "metric", progress=True, progress_every=2)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert [line.split()[2] for line in lines] == ["2/5", "4/5", "5/5"]
    evaluate([gt], [gt], "metric", progress=False)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- protocols, table


def test_presets():
    assert set(PROTOCOLS) >= {"s2r_official", "s2r_official_nyu", "monodepth2", "metric", "zoedepth_kitti"}
    expected = {
        "s2r_official": ("garg", 1e-3, 80.0, "official", False),
        "s2r_official_nyu": ("none", 1e-3, 8.0, "official", False),
        "monodepth2": ("garg", 1e-3, 80.0, "monodepth2", False),
        "metric": ("garg", 1e-3, 80.0, "none", False),
        "zoedepth_kitti": ("kb_garg", 1e-3, 80.0, "none", True),
    }
    for name, (crop, lo, hi, scaling, flip) in expected.items():
        p = get_protocol(name)
        assert (p.crop, p.min_depth, p.max_depth, p.median_scaling, p.flip_tta) == (crop, lo, hi, scaling, flip)
        d = json.loads(json.dumps(p.to_dict()))
        assert d["name"] == name and d["crop"] == crop and d["median_scaling"] == scaling


def test_get_protocol_overrides_and_validation():
    p = get_protocol("s2r_official", max_depth=50.0, flip_tta=True)
    assert (p.name, p.max_depth, p.flip_tta, p.crop) == ("s2r_official", 50.0, True, "garg")
    assert "max_depth=50.0" in p.description
    assert PROTOCOLS["s2r_official"].max_depth == 80.0
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("eigen_2014")
    with pytest.raises(ValueError, match="field"):
        get_protocol("metric", max_dpth=10)
    with pytest.raises(ValueError, match="crop"):
        Protocol("x", crop="center")
    with pytest.raises(ValueError, match="median_scaling"):
        Protocol("x", median_scaling="mean")
    with pytest.raises(ValueError, match="min_depth"):
        Protocol("x", min_depth=10.0, max_depth=1.0)


def test_format_table(golden):
    mean, _ = evaluate([golden["nyu_gt"]], [golden["nyu_pred"]], "s2r_official_nyu", progress=False)
    table = format_table(mean, "s2r_official_nyu")
    lines = table.splitlines()
    assert lines[0].startswith("protocol s2r_official_nyu: crop none, valid 0.001 < gt < 8 m")
    assert "no clamp after" in lines[0]
    assert "frames: 1 evaluated" in table
    header, values = lines[-2].split(), lines[-1].split()
    assert header == list(METRIC_NAMES)
    assert float(values[0]) == pytest.approx(golden["metrics_nyu_median_scaled"][0], abs=1e-4)
