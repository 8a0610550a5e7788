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


@pytest.mark.parametrize("rewrites", [False, True])
@pytest.mark.parametrize("k,stride,padding,output_padding", [(3, 2, 1, 1), (4, 2, 1, 0), (5, 2, 2, 1), (3, 3, 0, 0),
                                                             (3, 2, 0, 1), (3, 2, 1, 0)])
def test_conv_transpose_matches_torch(rewrites, k, stride, padding, output_padding):
    """Both lowerings (input-dilated, and per output phase on the CPU) against torch;
    (3, 2, 1, 0) gives an odd output size, where the CPU path falls back to the first."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    ref = torch.nn.ConvTranspose2d(3, 4, k, stride=stride, padding=padding, output_padding=output_padding)
    layer = layers.ConvTranspose(4, k, stride=stride, padding=padding, output_padding=output_padding)
    kernel = ref.weight.detach().numpy().transpose(2, 3, 0, 1)  # (in, out, kh, kw) -> HWIO
    with layers.cpu_conv_rewrites(rewrites):  # a fresh function: jit caches traces per function
        variables = {"params": {"kernel": kernel, "bias": ref.bias.detach().numpy()}}
        got = jax.jit(lambda v, x: layer.apply(v, x))(variables, x)
    want = nhwc(ref(nchw(x)))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_conv_transpose_subpixel_gradients_match_direct_lowering():
    """Training uses the rewrite's gradients (kernel and input): they must be the direct one's."""
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.standard_normal((2, 6, 7, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 5, 4)), jnp.float32)
    t = jnp.asarray(rng.standard_normal((2, 12, 14, 4)), jnp.float32)

    def loss(x, w):
        y = layers.ConvTranspose(4, use_bias=False).apply({"params": {"kernel": w}}, x)
        return jnp.sum((y - t) ** 2)

    with layers.cpu_conv_rewrites(False):
        direct = jax.grad(loss, argnums=(0, 1))(x, w)
    with layers.cpu_conv_rewrites(True):
        subpixel = jax.grad(loss, argnums=(0, 1))(x, w)
    for a, b in zip(direct, subpixel):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_conv_transpose_subpixel_refuses_odd_output():
    with pytest.raises(ValueError, match="divisible by 2, got 9x11"):
        layers.conv_transpose_subpixel(jnp.zeros((1, 5, 6, 3)), jnp.zeros((3, 3, 3, 4)), 2, 1, 0)


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


@pytest.mark.parametrize("padding_mode,padding,stride,dilation,kernel_size",
                         [("reflect", 3, 1, 1, 7), ("reflect", 1, 2, 1, 4), ("reflect", 5, 1, 5, 3),
                          ("zeros", 0, 1, 1, 1), ("zeros", 0, 2, 1, 1), ("zeros", 0, 1, 2, 3)])
def test_cpu_unpadded_conv_rewrite_is_exact_and_matches_torch(padding_mode, padding, stride, dilation, kernel_size):
    """The CPU path (zero-pad by `stride`, crop one output per side; 1x1 as a matrix product)
    must give the plain unpadded convolution's numbers and gradients, and torch's
    Conv2d(padding_mode=...) output."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 13, 17, 3)).astype(np.float32)
    ref = torch.nn.Conv2d(3, 5, kernel_size, stride=stride, padding=padding, dilation=dilation,
                          padding_mode=padding_mode)
    layer = layers.Conv(5, kernel_size, stride, padding, dilation, padding_mode=padding_mode)
    params = {"kernel": ref.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": ref.bias.detach().numpy()}
    outs, programs = {}, {}
    for on in (True, False):
        with layers.cpu_conv_rewrites(on):  # a fresh function each time: jit caches traces per function
            forward = lambda p, x: layer.apply({"params": p}, x)
            programs[on] = str(jax.make_jaxpr(forward)(params, x))
            outs[on] = np.asarray(jax.jit(forward)(params, x))
    assert programs[True] != programs[False]  # both lowerings were really run
    want = nhwc(ref(nchw(x)))
    assert outs[True].shape == outs[False].shape == want.shape
    # The same products and sums; a 1x1 convolution becomes a matrix product, which may
    # order its sums differently, so allow a few float32 ulps, nothing more.
    np.testing.assert_allclose(outs[True], outs[False], rtol=0, atol=2e-6)
    np.testing.assert_allclose(outs[True], want, atol=1e-5)
    # Training differentiates the CPU form through its own backward pass: same gradients.
    target = rng.standard_normal(want.shape).astype(np.float32)
    grads = {}
    for on in (True, False):
        with layers.cpu_conv_rewrites(on):
            loss = lambda p, x: jnp.sum((layer.apply({"params": p}, x) - target) ** 2)
            grads[on] = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree.leaves(grads[True]), jax.tree.leaves(grads[False])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_unknown_padding_mode_is_refused():
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' or 'reflect', got 'circular'"):
        layers.Conv(2, 3, padding=1, padding_mode="circular").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
