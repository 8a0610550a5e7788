"""Inference latency and throughput of the full network (eval mode), no tensorflow.

  python -m s2r_jax.benchmarks.inference [--batch_sizes 1,32] [--height 192 --width 640] \
      [--dtypes float32,bfloat16] [--steps 20]

Official widths, random weights (speed does not depend on the values), synthetic
batches already on the device. For each batch size and dtype: the median latency of
`--steps` calls after warm-up (timed with `block_until_ready`), images/s, and the time
the 697-frame KITTI Eigen test split would take at that throughput. Prints a table and
one JSON line per measurement.
"""
from __future__ import annotations

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax.models import S2RDepthNet
from s2r_jax.training.init import official_init

KITTI_TEST_FRAMES = 697


def define_flags():
    flags.DEFINE_string("batch_sizes", "", "Comma-separated batch sizes (default: 1,32 on GPU/TPU, 1,4 on CPU).")
    flags.DEFINE_integer("height", 192, "Input height.")
    flags.DEFINE_integer("width", 640, "Input width.")
    flags.DEFINE_string("dtypes", "float32,bfloat16", "Computation dtypes.")
    flags.DEFINE_integer("steps", 20, "Timed calls (after 2 warm-up calls).")


def time_inference(batch_size: int, height: int, width: int, dtype: str, steps: int) -> dict:
    model = S2RDepthNet(dtype=jnp.dtype(dtype))
    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = official_init(jax.eval_shape(model.init, jax.random.key(0), image), jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch_size, height, width, 3)), jnp.float32)
    forward = jax.jit(lambda v, x: model.apply(v, x)["depth"][-1])
    compiled = forward.lower(variables, x).compile()
    for _ in range(2):
        jax.block_until_ready(compiled(variables, x))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(variables, x))
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    device = jax.devices()[0]
    return {"batch_size": batch_size, "dtype": dtype, "image_size": [height, width], "latency_ms": dt * 1e3,
            "images_per_s": batch_size / dt, "kitti_test_s": KITTI_TEST_FRAMES / (batch_size / dt),
            "device": f"{jax.device_count()} x {device.device_kind}", "jax": jax.__version__}


def main(argv):
    del argv
    f = flags.FLAGS
    on_cpu = jax.devices()[0].platform == "cpu"
    sizes = [int(b) for b in (f.batch_sizes or ("1,4" if on_cpu else "1,32")).split(",")]
    rows = []
    for dtype in f.dtypes.split(","):
        for b in sizes:
            r = time_inference(b, f.height, f.width, dtype, f.steps)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\n{'dtype':<10}{'batch':>6}{'latency ms':>12}{'img/s':>9}{'697 frames s':>14}")
    for r in rows:
        print(f"{r['dtype']:<10}{r['batch_size']:>6}{r['latency_ms']:>12.1f}{r['images_per_s']:>9.2f}"
              f"{r['kitti_test_s']:>14.1f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
