"""Acceptance: our networks, loaded with the official layout's weights through the
importer, reproduce every array the official PyTorch code computed.

Tolerance: max abs error <= 1e-4 (float32, CPU), as the parity requirement states.
"""
import functools

import jax
import numpy as np
import pytest

import golden
from s2r_jax import losses, weights
from s2r_jax.models import MODULES, S2RDepthNet, to_metres

TOL = 1e-4
TRAINED = ("struct_decoder", "dsa", "depth_net")  # the encoder has no BatchNorm


@functools.lru_cache(maxsize=None)
def official_variables():
    return weights.merge_variables(*(weights.import_state_dict(n, golden.state_dict(n)) for n in MODULES))


@functools.lru_cache(maxsize=None)
def outputs(mode):
    model = S2RDepthNet()
    image = golden.nhwc(golden.GOLDEN["input"])
    if mode == "eval":
        out = jax.jit(model.apply)(official_variables(), image)
        return jax.tree.map(np.asarray, out), None
    apply = jax.jit(functools.partial(model.apply, train=TRAINED, mutable=["batch_stats"]))
    out, updates = apply(official_variables(), image)
    return jax.tree.map(np.asarray, out), jax.tree.map(np.asarray, updates)


def ours(key):
    """Our value for one golden key, NCHW like the official arrays."""
    mode, _, name = key.partition("_")
    G = golden.GOLDEN
    if mode == "loss":
        preds = [golden.nhwc(G[f"eval_depth_{i}"]) for i in range(4)]
        gt = golden.nhwc(G["loss_gt"])
        if name == "depth_l1_multiscale":
            return np.asarray(losses.depth_l1_multiscale(preds, gt))
        if name == "struct_weighted":
            return np.asarray(losses.struct_weighted_loss(golden.nhwc(G["eval_structure_map"]), gt, beta=0.001))
    out, updates = outputs(mode)
    if name == "depth_net_bn_running_mean_after":
        return updates["batch_stats"]["depth_net"]["bn1"]["mean"]
    if name == "depth_metres":
        value = to_metres(out["depth"][-1], G["input"].shape[2:])
    elif name in out:
        value = out[name]
    else:  # depth_0 .. depth_3, coarse to fine
        value = out["depth"][int(name[len("depth_"):])]
    return np.transpose(np.asarray(value), (0, 3, 1, 2))


INPUTS = {"input", "loss_gt"}
COMPARED = sorted(set(golden.GOLDEN) - INPUTS)


def test_every_golden_entry_is_compared():
    # 'input' and 'loss_gt' are inputs; every other array is an output we check.
    assert len(COMPARED) == len(golden.GOLDEN) - 2 == 18


@pytest.mark.parametrize("key", COMPARED)
def test_matches_official(key):
    want = golden.GOLDEN[key]
    got = ours(key)
    assert got.shape == want.shape, key
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= TOL, f"{key}: max abs error {err:.3g} > {TOL}"
