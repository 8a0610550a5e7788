"""The losses beyond the golden values: the masked L1 for sparse ground truth."""
import numpy as np

from s2r_jax import losses


def _preds(rng, h=32, w=48):
    return [rng.uniform(-1, 1, (2, h // s, w // s, 1)).astype(np.float32) for s in (8, 4, 2, 1)]


def test_masked_l1_ignores_ground_truth_in_holes():
    rng = np.random.default_rng(0)
    preds = _preds(rng)
    gt = rng.uniform(-1, 1, (2, 32, 48, 1)).astype(np.float32)
    mask = (rng.uniform(size=gt.shape) > 0.3).astype(np.float32)
    mask[:, 8:24, 8:40] = 1  # a dense block, so the coarse scales keep some valid pixels
    base = float(losses.depth_l1_multiscale(preds, gt, mask))
    scrambled = np.where(mask > 0, gt, rng.uniform(-50, 50, gt.shape)).astype(np.float32)
    assert abs(float(losses.depth_l1_multiscale(preds, scrambled, mask)) - base) < 1e-6
    # ...while without a mask the same change matters, so the check above is not vacuous
    assert abs(float(losses.depth_l1_multiscale(preds, scrambled)) - float(losses.depth_l1_multiscale(preds, gt))) > 1


def test_full_mask_equals_unmasked_loss():
    rng = np.random.default_rng(1)
    preds = _preds(rng)
    gt = rng.uniform(-1, 1, (2, 32, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(losses.depth_l1_multiscale(preds, gt, np.ones_like(gt)),
                               losses.depth_l1_multiscale(preds, gt), rtol=1e-6)


def test_structure_weighted_loss_matches_the_official_at_every_beta():
    """The official struct_weighted_loss(eval_structure_map, loss_gt, 0, beta) at beta = 0 .. 10:
    at the default 0.001 the weight moves the loss by only ~4e-4, so the larger betas are what
    show the gradient weighting is right. Tolerance 1e-6 relative (float32 means of 2x96x160)."""
    import golden
    ref = np.load(golden.FIXTURES / "golden_struct_weighted_beta.npz")
    structure = golden.nhwc(golden.GOLDEN["eval_structure_map"])
    gt = golden.nhwc(golden.GOLDEN["loss_gt"])
    got = [float(losses.struct_weighted_loss(structure, gt, beta=float(b))) for b in ref["beta"]]
    np.testing.assert_allclose(got, ref["loss"], rtol=1e-6, atol=0)
    assert len(set(np.round(got, 4))) == len(got)  # each beta gives a different loss
