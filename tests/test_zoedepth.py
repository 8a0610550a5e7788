"""ZoeDepth's behaviour beyond the goldens: routing, the official quirks' options, the input
preparation, torch's bicubic, bf16 and FSDP. Small models of the official layout (TINY)
unless the official weights are needed."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import zoedepth_golden as zg
from s2r_jax.models import MetricBinsHead, build_zoedepth
from s2r_jax.models.layers import resize_bicubic
from s2r_jax.models.zoedepth import midas_input_size
from s2r_jax.training.sharding import param_spec, state_sharding

IMAGES = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)


def _nk_variables(kitti_logit_shift: float):
    """The official NK weights with the router's KITTI logit shifted."""
    variables = jax.tree.map(lambda a: a, zg.official_variables("nk", heads_only=True))
    bias = variables["params"]["router"]["classifier2"]["bias"]
    variables["params"]["router"]["classifier2"]["bias"] = bias + jnp.array([0.0, kitti_logit_shift])
    return variables


def test_routing_batch_vote_by_default_and_per_image_option():
    # KITTI logit + 0.93: image 0 alone votes KITTI, image 1 NYU, the batch-summed vote NYU (2.259 vs 2.251)
    split = _nk_variables(0.93)
    batch, per_image = zg.golden_heads("nk", split), zg.golden_heads("nk", split, route="image")
    logits = batch["domain_logits"]
    assert list(np.argmax(logits, -1)) == [1, 0] and np.argmax(logits.sum(0)) == 0
    assert list(batch["domain"]) == [0, 0] and list(per_image["domain"]) == [1, 0]
    all_kitti = zg.golden_heads("nk", _nk_variables(5.0))  # the batch vote for KITTI
    assert list(all_kitti["domain"]) == [1, 1]
    # per image: image 0 gets the KITTI head's output, image 1 the NYU head's
    np.testing.assert_allclose(per_image["metric_depth"][0], all_kitti["metric_depth"][0], atol=1e-6)
    np.testing.assert_allclose(per_image["metric_depth"][1], batch["metric_depth"][1], atol=1e-6)
    assert np.abs(per_image["metric_depth"][0] - batch["metric_depth"][0]).max() > 0.01  # the other head


def _head_depth(bin_type="softplus", **options):
    """A metric head alone, on random features: the quirks live here."""
    rng = np.random.default_rng(3)
    features = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    args = (features(2, 2, 2, 16), features(2, 2, 2, 16), [features(2, s, s, 16) for s in (4, 8, 16, 32)],
            features(2, 64, 64, 9))
    head = MetricBinsHead(n_bins=16, bin_type=bin_type, max_depth=80.0, seed_hidden=32, attractor_hidden=16,
                          **options)
    params = zg.random_variables(jax.eval_shape(head.init, jax.random.key(0), *args)["params"])
    return np.asarray(jax.jit(head.apply)({"params": params}, *args)["metric_depth"])


def test_attractor_strength_quirk_and_option():
    """Officially the configured alpha/gamma are ignored (300/2 used); the option uses them."""
    official = _head_depth()  # configured alpha 1000, gamma 2 (every released config)
    np.testing.assert_array_equal(official, _head_depth(attractor_alpha=5.0, attractor_gamma=3.0))
    np.testing.assert_allclose(_head_depth(attractor_official_strength=False, attractor_alpha=300.0), official,
                               rtol=1e-6)
    assert np.abs(_head_depth(attractor_official_strength=False) - official).max() > 1e-3
    # the model hands its fields to its heads
    bound = build_zoedepth("n", **zg.TINY, attractor_official_strength=False).bind(zg.tiny_variables("n"))
    assert bound.head.attractor_official_strength is False and bound.head.attractor_alpha == 1000.0


def test_normed_attractor_points_quirk_and_option():
    official = _head_depth("normed")
    normalized = _head_depth("normed", attractor_normalize_points=True)
    assert official.max() <= 80.0 and normalized.max() <= 80.0
    assert np.abs(normalized - official).max() > 1e-2
    bound = build_zoedepth("k", **zg.TINY, attractor_normalize_points=True).bind(zg.tiny_variables("k"))
    assert bound.head.attractor_normalize_points is True


def test_nk_attractor_count_quirk_and_option():
    def counts(**overrides):
        shapes = zg.flax_shapes("nk", **dict(zg.TINY, **overrides))["head_kitti"]
        return [shapes[f"attractor{i}"]["mlp"]["conv2"]["kernel"].shape[-1] for i in range(4)]

    assert counts() == [16, 16, 16, 16]  # official: every layer built with the default 16
    assert counts(official_attractor_counts=False) == [16, 8, 4, 1]


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="route"):
        build_zoedepth("nk", **zg.TINY, route="vote").init(jax.random.key(0), IMAGES)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_zoedepth("n", **zg.TINY, resize_input=False).apply(zg.tiny_variables("n"), IMAGES[:, :60])


@pytest.mark.parametrize("size, img_size, keep, expected", [
    ((480, 640), (384, 512), True, (384, 512)),     # NYU at ZoeD-N's size
    ((375, 1242), (384, 768), True, (384, 1280)),   # KITTI at ZoeD-K's: fit the height (scale nearer 1)
    ((375, 1242), (384, 768), False, (384, 768)),
    ((108, 142), (96, 128), True, (96, 128)),       # the infer golden's padded input: fit the width
])
def test_midas_input_size(size, img_size, keep, expected):
    assert midas_input_size(*size, img_size, keep) == expected


@pytest.mark.parametrize("src, dst", [((6, 8), (13, 21)), ((24, 32), (37, 45)), ((24, 32), (9, 7))])
def test_bicubic_is_torch_bicubic(src, dst):
    x = np.random.default_rng(1).standard_normal((2, 3, *src)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x), size=dst, mode="bicubic", align_corners=False)
    got = resize_bicubic(jnp.asarray(zg.nhwc(x)), dst)
    np.testing.assert_allclose(zg.nchw(got), want.numpy(), atol=1e-6)  # a few float32 ulps of values <= 4


# ZoeD-NK at TINY sizes but BEiT width 256: its MLP kernels reach the FSDP size threshold.
SMALL_NK = dict(zg.TINY, embed_dim=256, num_heads=4)
SMALL_NK_IMAGES = np.random.default_rng(2).uniform(size=(8, 64, 64, 3)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def small_nk_float32():
    """The replicated float32 forward of SMALL_NK on 8 images: the reference of the bf16 and FSDP tests."""
    out = jax.jit(build_zoedepth("nk", **SMALL_NK).apply)(zg.tiny_variables("nk", embed_dim=256, num_heads=4),
                                                          SMALL_NK_IMAGES)
    return jax.tree.map(np.asarray, out)


def test_bf16_runs_and_is_close():
    variables = zg.tiny_variables("nk", embed_dim=256, num_heads=4)
    out16 = jax.jit(build_zoedepth("nk", **SMALL_NK, dtype=jnp.bfloat16).apply)(variables, SMALL_NK_IMAGES)
    out32 = small_nk_float32()
    assert out16["feature_r1"].dtype == jnp.bfloat16 and out16["metric_depth"].dtype == jnp.float32
    assert variables["params"]["midas"]["beit"]["block0"]["fc1"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(out16["domain"], out32["domain"])
    rel = np.abs(np.asarray(out16["metric_depth"]) - out32["metric_depth"]) / out32["metric_depth"]
    assert rel.max() < 5e-3, rel.max()  # bf16 keeps 8 bits of mantissa; the bins run in float32


def test_fsdp_sharded_forward_equals_replicated():
    """ZoeD-NK (batch routing across the sharded batch) with its large arrays split over 8
    devices by the training sharding rules equals the replicated forward (tolerance 1e-5)."""
    model = build_zoedepth("nk", **SMALL_NK)
    variables = zg.tiny_variables("nk", embed_dim=256, num_heads=4)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    fsdp = state_sharding(variables, mesh, "fsdp")
    sharded = [s for s in jax.tree.leaves(fsdp) if s.spec != jax.sharding.PartitionSpec()]
    assert len(sharded) >= 4  # fc1 and fc2 of both blocks
    batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    out = jax.jit(model.apply, in_shardings=(fsdp, batch))(jax.device_put(variables, fsdp),
                                                           jax.device_put(SMALL_NK_IMAGES, batch))
    want = small_nk_float32()
    for key in ("metric_depth", "domain_logits", "feature_r1"):
        np.testing.assert_allclose(np.asarray(out[key]), want[key], atol=1e-5, err_msg=key)
    assert param_spec((256, 1024), mesh, "fsdp") == jax.sharding.PartitionSpec(None, "data")
