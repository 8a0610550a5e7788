"""Per-layer profile of the network's convolutions: where inference (and training) time goes.

  python -m s2r_jax.benchmarks.layers [--height 192 --width 640] [--steps 5] [--top 20] \
      [--torch] [--kernel_grad]

Traces the full eval-mode S2RDepthNet (official widths, batch 1) *without* the CPU
convolution rewrites (models/layers.py), so every convolution appears as the official
network states it, and times each distinct convolution on its own (median of
`--steps` calls after warm-up, `block_until_ready`):
- `plain`: that convolution as traced;
- `lowered`: as the library computes it by default on this backend (on the CPU, with
  `layers.CPU_CONV_REWRITES`: different for convolutions without padding of their own
  and for transposed convolutions);
- `--torch`: `torch.nn.functional.conv2d` / `conv_transpose2d` on the same shapes
  (channels_last, all cores), i.e. PyTorch's oneDNN layer by layer;
- `--kernel_grad`: the kernel gradient (what training adds per layer), as lowered.
Also times the whole forward both ways, so the share of time outside convolutions shows.
Prints one JSON line per layer and a table sorted by time. No tensorflow needed.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax.benchmarks import inference
from s2r_jax.benchmarks.common import median_seconds
from s2r_jax.models import S2RDepthNet, layers


def define_flags():
    flags.DEFINE_integer("height", 192, "Input height.")
    flags.DEFINE_integer("width", 640, "Input width.")
    flags.DEFINE_integer("steps", 5, "Timed calls per layer (after 2 warm-up calls).")
    flags.DEFINE_integer("top", 20, "Rows shown in the table (all are in the JSON lines).")
    flags.DEFINE_bool("torch", False, "Also time each layer with PyTorch (needs torch).")
    flags.DEFINE_bool("kernel_grad", False, "Also time each layer's kernel gradient.")


def median_ms(fn, steps: int) -> float:
    return median_seconds(fn, steps) * 1e3


def network_convolutions(height: int, width: int) -> "OrderedDict[tuple, dict]":
    """Distinct convolutions of the forward pass as the official network states them,
    keyed by shape and parameters, with their count and the first module using them."""
    model = S2RDepthNet()
    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), image)
    with layers.cpu_conv_rewrites(False):
        jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x)["depth"][-1])(variables, image)
    convs: OrderedDict[tuple, dict] = OrderedDict()

    def walk(jp):
        for eqn in jp.eqns:
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns"):
                    walk(inner)
            if eqn.primitive.name != "conv_general_dilated":
                continue
            p = eqn.params
            lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            key = (lhs, rhs, tuple(p["window_strides"]), tuple(map(tuple, p["padding"])),
                   tuple(p["lhs_dilation"]), tuple(p["rhs_dilation"]))
            if key not in convs:
                out = eqn.outvars[0].aval.shape
                if tuple(p["lhs_dilation"]) != (1, 1):  # transposed: count products with real inputs only
                    macs = int(np.prod(lhs)) * int(np.prod(rhs[:2])) * int(rhs[3])
                else:
                    macs = int(np.prod(out)) * int(np.prod(rhs[:3]))
                name = str(eqn.source_info.name_stack).removeprefix("S2RDepthNet/").split("/")
                module = "/".join(n for n in name if not n.endswith("_convolve"))  # drop method frames
                convs[key] = {"module": module, "count": 0, "gflop": 2 * macs / 1e9}
            convs[key]["count"] += 1

    walk(jaxpr.jaxpr)
    return convs


def _jax_conv(key, lowered: bool):
    lhs, rhs, strides, padding, lhs_dil, rhs_dil = key
    plain_unpadded = all(p == (0, 0) for p in padding) and lhs_dil == (1, 1) and len(set(strides)) == 1 \
        and len(set(rhs_dil)) == 1
    if lowered and layers.cpu_conv_rewrites_enabled():  # what layers.Conv / ConvTranspose compute by default
        if plain_unpadded:
            return lambda x, w: layers.conv2d(x, w, strides[0], 0, rhs_dil[0])
        if lhs_dil != (1, 1):  # a ConvTranspose: stride, padding and output_padding from its dilated form
            k, (lo, hi) = rhs[0], padding[0]
            return lambda x, w: layers.conv_transpose_subpixel(x, w, lhs_dil[0], k - 1 - lo, hi - lo)
    return lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, lhs_dil, rhs_dil,
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _torch_conv_ms(key, steps: int) -> float:
    import torch
    import torch.nn.functional as F

    lhs, rhs, strides, padding, lhs_dil, rhs_dil = key
    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.randn(lhs[0], lhs[3], lhs[1], lhs[2]).contiguous(memory_format=torch.channels_last)
    k = rhs[0]
    if lhs_dil != (1, 1):  # a transposed convolution (ConvTranspose): weight (in, out, kh, kw)
        lo, hi = padding[0]
        w = torch.randn(rhs[2], rhs[3], k, k)
        call = lambda: F.conv_transpose2d(x, w, stride=lhs_dil[0], padding=k - 1 - lo, output_padding=hi - lo)
    else:
        w = torch.randn(rhs[3], rhs[2], k, k).contiguous(memory_format=torch.channels_last)
        call = lambda: F.conv2d(x, w, stride=strides[0], padding=padding[0][0], dilation=rhs_dil[0])
    with torch.no_grad():
        return median_ms(call, steps)


def time_forward(height: int, width: int, steps: int, rewrites: bool) -> float:
    """The whole eval forward at batch 1, as `benchmarks.inference` times it, in ms."""
    with layers.cpu_conv_rewrites(rewrites):  # time_inference jits a fresh function, traced in here
        return inference.time_inference(1, height, width, "float32", steps)["latency_ms"]


def _stride_dilation(row: dict) -> str:
    return f"T{row['lhs_dilation']}" if row["lhs_dilation"] > 1 else f"{row['stride']}/{row['dilation']}"


def main(argv):
    del argv
    f = flags.FLAGS
    rng = np.random.default_rng(0)
    rows = []
    for key, info in network_convolutions(f.height, f.width).items():
        x = jnp.asarray(rng.standard_normal(key[0]), jnp.float32)
        w = jnp.asarray(rng.standard_normal(key[1]) * 0.05, jnp.float32)
        row = {"module": info["module"], "count": info["count"], "input": list(key[0]), "kernel": list(key[1]),
               "stride": key[2][0], "padding": [list(p) for p in key[3]], "lhs_dilation": key[4][0],
               "dilation": key[5][0], "gflop": info["gflop"]}
        row["plain_ms"] = median_ms(lambda c=jax.jit(_jax_conv(key, False)): c(x, w), f.steps)
        row["lowered_ms"] = median_ms(lambda c=jax.jit(_jax_conv(key, True)): c(x, w), f.steps)
        if f.torch:
            row["torch_ms"] = _torch_conv_ms(key, f.steps)
        if f.kernel_grad:
            conv = _jax_conv(key, True)
            dy = jnp.ones(jax.eval_shape(conv, x, w).shape, jnp.float32)
            grad = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
            row["kernel_grad_ms"] = median_ms(lambda: grad(x, w, dy), f.steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    whole = {"forward_plain_ms": time_forward(f.height, f.width, f.steps, False),
             "forward_lowered_ms": time_forward(f.height, f.width, f.steps, True)}
    for k in ("plain_ms", "lowered_ms", "torch_ms", "kernel_grad_ms"):
        if k in rows[0]:
            whole[f"conv_sum_{k}"] = sum(r[k] * r["count"] for r in rows)
    whole.update(device=f"{jax.device_count()} x {jax.devices()[0].device_kind}", jax=jax.__version__,
                 image_size=[f.height, f.width])
    print(json.dumps(whole), flush=True)

    extra = [k for k in ("torch_ms", "kernel_grad_ms") if k in rows[0]]
    print(f"\n{'module':<44}{'n':>3}{'input':>18}{'kernel':>16}{'s/d':>5}{'GFLOP':>7}{'plain':>8}{'lowered':>9}"
          + "".join(f"{k[:-3]:>12}" for k in extra))
    for r in sorted(rows, key=lambda r: -r["plain_ms"] * r["count"])[:f.top]:
        print(f"{r['module'][-44:]:<44}{r['count']:>3}{'x'.join(map(str, r['input'][1:])):>18}"
              f"{'x'.join(map(str, r['kernel'])):>16}{_stride_dilation(r):>5}{r['gflop']:>7.1f}"
              f"{r['plain_ms']:>8.1f}{r['lowered_ms']:>9.1f}" + "".join(f"{r[k]:>12.1f}" for k in extra))
    print("\n" + "  ".join(f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}" for k, v in whole.items()))


if __name__ == "__main__":
    define_flags()
    app.run(main)
