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
