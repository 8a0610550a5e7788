"""Print the network: parameters per module (against the official counts), output
shapes and XLA's FLOP count for one image, without allocating the weights.

  python -m s2r_jax.summary [--height 192 --width 640 --dtype bfloat16]
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax.models import MODULES, S2RDepthNet, layers
from s2r_jax.weights import OFFICIAL_PARAMS



def summarize(height: int, width: int, dtype=jnp.float32) -> dict:
    """Shapes and counts from abstract evaluation only (nothing is computed)."""
    model = S2RDepthNet(dtype=dtype)
    image = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), image)
    with layers.cpu_conv_rewrites(False):  # the network's own FLOPs, not the CPU lowering's
        lowered = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, image)
    out = jax.eval_shape(model.apply, variables, image)
    cost = lowered.cost_analysis() or {}
    if isinstance(cost, list):  # older jax returns one dict per computation
        cost = cost[0]
    count = lambda t: int(sum(np.prod(a.shape) for a in jax.tree.leaves(t)))
    return {
        "input": [1, height, width, 3],
        "params": {m: count(variables["params"][m]) for m in MODULES},
        "outputs": {k: list(v.shape) if hasattr(v, "shape") else [list(d.shape) for d in v] for k, v in out.items()},
        "gflops_per_image": float(cost.get("flops", float("nan"))) / 1e9,
    }


def define_flags():
    """Only when run as a program: importing this module must not claim flag names."""
    flags.DEFINE_integer("height", 192, "Input height (multiple of 16, >= 96).")
    flags.DEFINE_integer("width", 640, "Input width (multiple of 16, >= 96).")
    flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Computation dtype.")


def main(argv):
    del argv
    f = flags.FLAGS
    s = summarize(f.height, f.width, jnp.dtype(f.dtype))
    print(f"S2R-DepthNet at {f.height}x{f.width} ({f.dtype} compute, float32 parameters)\n")
    print(f"{'module':<16}{'parameters':>14}{'official':>14}")
    for m, n in s["params"].items():
        print(f"{m:<16}{n:>14,}{OFFICIAL_PARAMS[m]:>14,}  {'ok' if n == OFFICIAL_PARAMS[m] else 'DIFFERS'}")
    print(f"{'total':<16}{sum(s['params'].values()):>14,}{sum(OFFICIAL_PARAMS.values()):>14,}\n")
    for k, shape in s["outputs"].items():
        print(f"{k:<26}{shape}")
    print(f"\nXLA cost analysis: {s['gflops_per_image']:.1f} GFLOP per image (forward)")
    print(json.dumps(s))


if __name__ == "__main__":
    define_flags()
    app.run(main)
