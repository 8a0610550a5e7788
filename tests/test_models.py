"""Model behaviour beyond parity: input checks, bf16, variants, sharded BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2r_jax.models import DepthNet, S2RDepthNet, to_metres

TINY = dict(encoder_dim=4, depth_ngf=4, dsa_channels=(4, 4, 8, 8, 8, 16, 16, 16))


@pytest.fixture(scope="module")
def tiny():
    """A tiny S2RDepthNet and its variables (initialising compiles slowly on CPU: share it)."""
    model = S2RDepthNet(**TINY)
    return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 96, 128, 3)))


@pytest.mark.parametrize("shape, fragment", [
    ((1, 100, 160, 3), "100x160"),   # not a multiple of 16
    ((1, 80, 160, 3), "80x160"),     # a multiple of 16 but below 96
    ((1, 96, 168, 3), "96x168"),
    ((1, 96, 160, 4), "3 channel"),
    ((96, 160, 3), "4 dimensions"),
])
def test_bad_input_raises_value_error_naming_size(shape, fragment):
    model = S2RDepthNet(**TINY)
    with pytest.raises(ValueError, match=fragment) as e:
        model.init(jax.random.key(0), jnp.zeros(shape))
    if "x" in fragment:
        assert "multiple of 16 and at least 96" in str(e.value)


def test_depthnet_input_check():
    with pytest.raises(ValueError, match="1 channel"):
        DepthNet(ngf=4).init(jax.random.key(0), jnp.zeros((1, 96, 96, 3)))


def test_output_shapes_and_ranges(tiny):
    model, variables = tiny
    x = jax.random.uniform(jax.random.key(1), (2, 96, 128, 3), minval=-1, maxval=1)
    out = jax.jit(model.apply)(variables, x)
    assert out["struct_code"].shape == (2, 24, 32, 16)
    assert out["attention_map"].shape == (2, 96, 128, 1)
    assert [d.shape[1:3] for d in out["depth"]] == [(12, 16), (24, 32), (48, 64), (96, 128)]
    for k in ("structure_map", "attention_map"):
        assert 0 <= float(out[k].min()) and float(out[k].max()) <= 1
    metres = to_metres(out["depth"][-1], (375, 1242))
    assert metres.shape == (2, 375, 1242, 1) and 0 <= float(metres.min()) and float(metres.max()) <= 80
    stage1 = jax.jit(lambda v, x: model.apply(v, x, use_attention=False))(variables, x)
    assert "attention_map" not in stage1


def test_bf16_computes_in_bf16_with_float32_parameters(tiny):
    f32, variables = tiny
    x = jax.random.uniform(jax.random.key(1), (1, 96, 128, 3), minval=-1, maxval=1)
    bf16 = S2RDepthNet(**TINY, dtype=jnp.bfloat16)
    assert {a.dtype for a in jax.tree.leaves(jax.eval_shape(bf16.init, jax.random.key(0), x))} == {jnp.dtype("float32")}
    a, b = jax.jit(f32.apply)(variables, x), jax.jit(bf16.apply)(variables, x)
    assert b["struct_code"].dtype == jnp.bfloat16
    err = float(jnp.max(jnp.abs(a["depth"][-1] - b["depth"][-1].astype(jnp.float32))))
    relative = err / float(jnp.max(jnp.abs(a["depth"][-1])))
    # bf16 keeps 8 significant bits (2^-8 = 0.4 % per rounding); through the network's ~40
    # layers that accumulates to 0.84 % of the output's range here. Computing in float32 by
    # mistake gives ~1e-7 (below the lower bound); a wrong op in bf16 (a BatchNorm variance,
    # a softmax) gives tens of percent (above the upper one).
    assert 2**-10 < relative < 3e-2, relative


def test_unshared_prelu_variant_has_one_slope_per_activation():
    x = jnp.zeros((1, 96, 96, 1))
    shared = jax.eval_shape(DepthNet(ngf=4).init, jax.random.key(0), x)["params"]
    own = jax.eval_shape(DepthNet(ngf=4, shared_prelu=False).init, jax.random.key(0), x)["params"]
    n = lambda p: sum(a.size for a in jax.tree.leaves(p))
    assert n(own) - n(shared) == 21 - 1
    assert "prelu" in shared and "prelu" not in own


def test_batchnorm_statistics_are_synchronised_across_a_sharded_batch(tiny):
    """Under jit, train-mode BatchNorm on a batch sharded over 8 devices normalises
    with the global batch's statistics: the result equals the unsharded computation."""
    model = DepthNet(ngf=4)
    x = jax.random.uniform(jax.random.key(2), (8, 96, 128, 1))
    variables = {c: tiny[1][c]["depth_net"] for c in ("params", "batch_stats")}
    apply = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    want_out, want_stats = apply(variables, x)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    got_out, got_stats = apply(variables, xs)
    assert len(xs.sharding.device_set) == 8
    for a, b in zip(jax.tree.leaves((got_out, got_stats)), jax.tree.leaves((want_out, want_stats)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    # per-device statistics would differ: the first BatchNorm's batch mean of one shard
    # is not the global one, so the check above is not vacuous
    first = want_stats["batch_stats"]["bn1"]["mean"]
    one_shard = model.apply(variables, x[:1], train=True, mutable=["batch_stats"])[1]["batch_stats"]["bn1"]["mean"]
    assert float(jnp.max(jnp.abs(first - one_shard))) > 1e-5


def test_summary_counts_and_flops_without_allocating():
    from s2r_jax import summary
    s = summary.summarize(96, 160)
    assert s["params"] == {"struct_encoder": 5_385_856, "struct_decoder": 2_234_049, "dsa": 25_259_761,
                           "depth_net": 54_558_404}
    assert s["outputs"]["depth"][-1] == [1, 96, 160, 1]
    # XLA's cost analysis of the forward pass (809.48 GFLOP at 192x640, 8.2x this: borders
    # make it more than the 8x of the pixels); it moves only with the network or XLA's counting
    assert s["gflops_per_image"] == pytest.approx(98.448253, rel=1e-6)
