"""Inference latency and throughput of the full network (eval mode), no tensorflow.

  python -m s2r_jax.benchmarks.inference [--batch_sizes 1,32] [--height 192 --width 640] \
      [--dtypes float32,bfloat16] [--steps 20] [--torch]

Official widths, random weights (speed does not depend on the values), synthetic
batches already on the device. For each batch size and dtype: the median latency of
`--steps` calls after warm-up (timed with `block_until_ready`), images/s, and the time
the 697-frame KITTI Eigen test split would take at that throughput. Prints a table and
one JSON line per measurement.

`--torch` also times the PyTorch twin of the same network (benchmarks/torch_port.py,
float32, eager, no_grad) in the same way on the same machine, in NCHW and in
channels_last, as the reference figure for XLA:CPU against PyTorch's oneDNN.
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax.benchmarks.common import (apply_cpu_conv_rewrites_flag, define_cpu_conv_rewrites_flag,
                                      median_seconds)
from s2r_jax.models import S2RDepthNet, layers
from s2r_jax.training.init import official_init

KITTI_TEST_FRAMES = 697


def define_flags():
    flags.DEFINE_string("batch_sizes", "", "Comma-separated batch sizes (default: 1,32 on GPU/TPU, 1,4 on CPU).")
    flags.DEFINE_integer("height", 192, "Input height.")
    flags.DEFINE_integer("width", 640, "Input width.")
    flags.DEFINE_string("dtypes", "float32,bfloat16", "Computation dtypes.")
    flags.DEFINE_integer("steps", 20, "Timed calls (after 2 warm-up calls).")
    define_cpu_conv_rewrites_flag()
    flags.DEFINE_bool("torch", False, "Also time the PyTorch twin (needs torch; CPU comparison).")


def _row(framework: str, batch_size: int, height: int, width: int, dtype: str, dt: float, device: str) -> dict:
    return {"framework": framework, "batch_size": batch_size, "dtype": dtype, "image_size": [height, width],
            "latency_ms": dt * 1e3, "images_per_s": batch_size / dt,
            "kitti_test_s": KITTI_TEST_FRAMES / (batch_size / dt), "device": device}


def time_inference(batch_size: int, height: int, width: int, dtype: str, steps: int) -> dict:
    model = S2RDepthNet(dtype=jnp.dtype(dtype))
    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = official_init(jax.eval_shape(model.init, jax.random.key(0), image), jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch_size, height, width, 3)), jnp.float32)
    forward = jax.jit(lambda v, x: model.apply(v, x)["depth"][-1])
    compiled = forward.lower(variables, x).compile()
    dt = median_seconds(lambda: compiled(variables, x), steps)
    device = jax.devices()[0]
    return dict(_row("jax", batch_size, height, width, dtype, dt, f"{jax.device_count()} x {device.device_kind}"),
                jax=jax.__version__, cpu_conv_rewrites=layers.cpu_conv_rewrites_enabled())


def time_torch(batch_size: int, height: int, width: int, steps: int, channels_last: bool) -> dict:
    import os

    import torch

    from s2r_jax.benchmarks.torch_port import TorchS2RDepthNet

    torch.set_num_threads(os.cpu_count() or 1)  # as XLA:CPU, which uses every core
    net = TorchS2RDepthNet().eval()
    x = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (batch_size, 3, height, width)), dtype=torch.float32)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        dt = median_seconds(lambda: net(x), steps)
    name = "torch channels_last" if channels_last else "torch"
    return dict(_row(name, batch_size, height, width, "float32", dt, f"cpu x {torch.get_num_threads()} threads"),
                torch=torch.__version__)


def main(argv):
    del argv
    f = flags.FLAGS
    apply_cpu_conv_rewrites_flag()
    on_cpu = jax.devices()[0].platform == "cpu"
    sizes = [int(b) for b in (f.batch_sizes or ("1,4" if on_cpu else "1,32")).split(",")]
    rows = []
    for dtype in f.dtypes.split(","):
        for b in sizes:
            rows.append(time_inference(b, f.height, f.width, dtype, f.steps))
            print(json.dumps(rows[-1]), flush=True)
    if f.torch:
        for channels_last in (False, True):
            for b in sizes:
                rows.append(time_torch(b, f.height, f.width, f.steps, channels_last))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'framework':<21}{'dtype':<10}{'batch':>6}{'latency ms':>12}{'img/s':>9}{'697 frames s':>14}")
    for r in rows:
        print(f"{r['framework']:<21}{r['dtype']:<10}{r['batch_size']:>6}{r['latency_ms']:>12.1f}"
              f"{r['images_per_s']:>9.2f}{r['kitti_test_s']:>14.1f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
