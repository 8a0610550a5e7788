"""Each PyTorch-semantics layer against torch itself, on shapes where the details matter."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2r_jax.models import layers


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(a), (0, 3, 1, 2))))


def nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def test_batchnorm_train_step_matches_torch_including_unbiased_running_var():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32) * 2 + 1  # n = 18: unbiased != biased
    ref = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 0.5, 2.0, -1.0]))
        ref.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    want = nhwc(ref.train()(nchw(x)))
    bn = layers.BatchNorm()
    variables = bn.init(jax.random.key(0), x, train=False)
    variables = {"params": {"scale": jnp.array([1.0, 0.5, 2.0, -1.0]), "bias": jnp.array([0.1, 0.2, 0.3, 0.4])},
                 "batch_stats": variables["batch_stats"]}
    got, upd = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], ref.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(upd["batch_stats"]["var"], ref.running_var.numpy(), atol=1e-6)
    biased = 0.9 + 0.1 * x.reshape(-1, 4).var(axis=0)
    assert np.max(np.abs(upd["batch_stats"]["var"] - biased)) > 1e-3  # Flax's rule would fail above
    # eval mode uses the running statistics
    ref.eval()
    got_eval = bn.apply({"params": variables["params"], "batch_stats": upd["batch_stats"]}, x, train=False)
    np.testing.assert_allclose(got_eval, nhwc(ref(nchw(x))), atol=1e-5)


def test_instance_norm_matches_torch():
    x = np.random.default_rng(1).standard_normal((2, 5, 7, 3)).astype(np.float32) * 3
    np.testing.assert_allclose(layers.instance_norm(x), nhwc(torch.nn.InstanceNorm2d(3)(nchw(x))), atol=1e-5)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", [(12, 20), (6, 10), (5, 9), (1, 1), (24, 17)])
def test_resize_bilinear_matches_torch(size, align_corners):
    x = np.random.default_rng(2).standard_normal((2, 6, 10, 3)).astype(np.float32)
    want = nhwc(F.interpolate(nchw(x), size=size, mode="bilinear", align_corners=align_corners))
    np.testing.assert_allclose(layers.resize_bilinear(x, size, align_corners), want, atol=1e-5)


def test_align_corners_differs_from_jax_image_resize():
    # Why resize_bilinear exists: jax.image.resize is half-pixel only.
    x = np.random.default_rng(3).standard_normal((1, 6, 10, 1)).astype(np.float32)
    ours = layers.resize_bilinear(x, (12, 20), align_corners=True)
    theirs = jax.image.resize(x, (1, 12, 20, 1), "bilinear")
    assert np.max(np.abs(ours - theirs)) > 1e-2


def test_conv_transpose_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    ref = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
    layer = layers.ConvTranspose(4)
    kernel = ref.weight.detach().numpy().transpose(2, 3, 0, 1)  # (in, out, kh, kw) -> HWIO
    got = layer.apply({"params": {"kernel": kernel, "bias": ref.bias.detach().numpy()}}, x)
    want = nhwc(ref(nchw(x)))
    assert got.shape == (2, 10, 12, 4)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_dilated_strided_conv_matches_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 9, 11, 3)).astype(np.float32)
    ref = torch.nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2, bias=True)
    layer = layers.Conv(4, 3, stride=2, padding=2, dilation=2)
    params = {"kernel": ref.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": ref.bias.detach().numpy()}
    np.testing.assert_allclose(layer.apply({"params": params}, x), nhwc(ref(nchw(x))), atol=1e-5)


def test_reflect_pad_and_pooling_match_torch():
    x = np.random.default_rng(6).standard_normal((1, 6, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(layers.reflect_pad(x, 3), nhwc(torch.nn.ReflectionPad2d(3)(nchw(x))))
    np.testing.assert_allclose(layers.avg_pool2(x), nhwc(torch.nn.AvgPool2d(2, 2)(nchw(x))), atol=1e-6)
    np.testing.assert_allclose(layers.upsample_nearest2(x), nhwc(F.interpolate(nchw(x), scale_factor=2)))
