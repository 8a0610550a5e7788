r"""ZoeDepth inference: our jitted model against the official PyTorch model, same machine.

  python -m s2r_jax.benchmarks.zoedepth_inference [--kind n] [--height 384 --width 512] \
      [--batch_size 1] [--steps 5] [--dtypes float32] \
      [--official_zoedepth /path/to/ZoeDepth --official_midas /path/to/MiDaS]

The released model's size (ZoeD-N: 384x512, the network's input size, so the official
preparation's resize is the identity) with random weights (speed does not depend on the
values), the batch already on the device. For ours: the time to trace and lower, to
compile, and the median latency of `--steps` calls after 2 warm-up calls
(`block_until_ready`).

With `--official_zoedepth` and `--official_midas` (checkouts of isl-org/ZoeDepth and
isl-org/MiDaS; needs timm 0.6.x and torchvision importable), the official model is built
from the official config file (`config_zoedepth.json`, ...; torch.hub pointed at the local
MiDaS, nothing downloaded), loaded with the same weights through
`zoedepth_weights.export_zoedepth`, and timed the same way (eager, `no_grad`, all cores);
the largest difference between its metric depth and ours is printed as a full-size parity
check. The official code is imported only here, from the given paths.
"""
from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from s2r_jax.benchmarks.common import median_seconds
from s2r_jax.models import build_zoedepth
from s2r_jax.zoedepth_weights import export_zoedepth, flax_shapes

_OFFICIAL_CONFIG = {"n": "zoedepth/config_zoedepth.json", "k": "zoedepth/config_zoedepth_kitti.json",
                    "nk": "zoedepth_nk/config_zoedepth_nk.json"}


def define_flags():
    flags.DEFINE_enum("kind", "n", ["n", "k", "nk"], "ZoeDepth model.")
    flags.DEFINE_integer("height", 384, "Input height (ZoeD-N/NK's network size: 384x512; ZoeD-K's: 384x768).")
    flags.DEFINE_integer("width", 512, "Input width.")
    flags.DEFINE_integer("batch_size", 1, "Images per call.")
    flags.DEFINE_integer("steps", 5, "Timed calls (after 2 warm-up calls).")
    flags.DEFINE_string("dtypes", "float32", "Our computation dtypes, comma-separated (float32, bfloat16).")
    flags.DEFINE_string("official_zoedepth", None, "A checkout of isl-org/ZoeDepth: also time the official model.")
    flags.DEFINE_string("official_midas", None, "A checkout of isl-org/MiDaS (torch.hub source for the official "
                        "model).")


def random_params(kind: str, seed: int = 0, **overrides) -> dict:
    """Random float32 parameters of the model's shapes: kernels ~ N(0, 1/fan_in), norm scales 1."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if name == "scale":
            return np.ones(leaf.shape, np.float32)
        std = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if name == "kernel" else 0.02
        return (std * rng.standard_normal(leaf.shape, dtype=np.float32)).astype(np.float32)

    return {"params": jax.tree_util.tree_map_with_path(draw, flax_shapes(kind, **overrides))}


def time_ours(kind: str, variables: dict, images: np.ndarray, dtype: str, steps: int) -> tuple[dict, np.ndarray]:
    model = build_zoedepth(kind, img_size=images.shape[1:3], dtype=jnp.dtype(dtype))
    forward = jax.jit(lambda v, x: model.apply(v, x)["metric_depth"])
    x = jax.device_put(images)
    t0 = time.perf_counter()
    lowered = forward.lower(variables, x)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    latency = median_seconds(lambda: compiled(variables, x), steps)
    depth = np.asarray(compiled(variables, x))[..., 0]
    device = jax.devices()[0]
    return {"framework": "s2r_jax", "dtype": dtype, "latency_ms": latency * 1e3, "lower_s": t1 - t0,
            "compile_s": t2 - t1, "device": f"{jax.device_count()} x {device.device_kind}",
            "jax": jax.__version__}, depth


def official_model(kind: str, zoedepth_dir: str, midas_dir: str, img_size):
    """The official model of `kind` built from its config file, torch.hub served from `midas_dir`."""
    import torch

    sys.path.insert(0, os.path.abspath(zoedepth_dir))
    hub_load = torch.hub.load

    def local_hub_load(repo, model, *args, **kwargs):  # MidasCore.build asks for "intel-isl/MiDaS"
        kwargs.pop("force_reload", None)
        return hub_load(os.path.abspath(midas_dir), model, *args, source="local", **kwargs)

    torch.hub.load = local_hub_load
    with open(os.path.join(zoedepth_dir, "zoedepth", "models", _OFFICIAL_CONFIG[kind])) as f:
        config = json.load(f)["model"]
    config.update(img_size=list(img_size), use_pretrained_midas=False, train_midas=False, force_keep_ar=True)
    if kind == "k":  # as the official evaluation builds ZoeD-K (docs/zoedepth.md)
        base = json.load(open(os.path.join(zoedepth_dir, "zoedepth", "models", _OFFICIAL_CONFIG["n"])))["model"]
        config = dict(base, **config, max_depth=80.0, min_depth=1e-3)
    if kind == "nk":
        from zoedepth.models.zoedepth_nk.zoedepth_nk_v1 import ZoeDepthNK
        from zoedepth.utils.easydict import EasyDict
        config["bin_conf"] = [EasyDict(c) for c in config["bin_conf"]]
        return ZoeDepthNK.build(**config)
    from zoedepth.models.zoedepth.zoedepth_v1 import ZoeDepth
    return ZoeDepth.build(**config)


def time_official(kind: str, variables: dict, images: np.ndarray, steps: int, zoedepth_dir: str,
                  midas_dir: str) -> tuple[dict, np.ndarray]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # as XLA:CPU, which uses every core
    model = official_model(kind, zoedepth_dir, midas_dir, images.shape[1:3]).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in export_zoedepth(variables, kind).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    rebuilt = ("relative_position_index", "k_idx", "K_minus_1", ".head.", ".fc_norm.", "refinenet4.resConfUnit1.")
    not_loaded = [k for k in missing if not any(r in k for r in rebuilt)]
    if not_loaded or unexpected:
        raise RuntimeError(f"official model did not take the weights: missing {not_loaded}, unexpected {unexpected}")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        latency = median_seconds(lambda: model(x)["metric_depth"], steps)
        depth = model(x)["metric_depth"][:, 0].numpy()
    return {"framework": "official (PyTorch)", "dtype": "float32", "latency_ms": latency * 1e3,
            "device": f"cpu x {torch.get_num_threads()} threads", "torch": torch.__version__}, depth


def main(argv):
    del argv
    f = flags.FLAGS
    if bool(f.official_zoedepth) != bool(f.official_midas):
        raise app.UsageError("give both --official_zoedepth and --official_midas, or neither")
    print(f"ZoeD-{f.kind.upper()} at {f.height}x{f.width}, batch {f.batch_size}: drawing random weights", flush=True)
    variables = random_params(f.kind, img_size=(f.height, f.width))
    images = np.random.default_rng(1).uniform(size=(f.batch_size, f.height, f.width, 3)).astype(np.float32)
    rows, depths = [], {}
    for dtype in f.dtypes.split(","):
        row, depths[dtype] = time_ours(f.kind, variables, images, dtype, f.steps)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    if "float32" in depths and "bfloat16" in depths:
        rel = np.abs(depths["bfloat16"] - depths["float32"]) / np.abs(depths["float32"])
        print(f"bfloat16 vs float32 metric depth: max relative difference {rel.max():.2e}", flush=True)
    if f.official_zoedepth:
        row, official = time_official(f.kind, variables, images, f.steps, f.official_zoedepth, f.official_midas)
        row["max_abs_diff_to_ours_float32_m"] = float(np.max(np.abs(official - depths["float32"]))) \
            if "float32" in depths else None
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'framework':<22}{'dtype':<10}{'latency ms':>12}{'lower s':>9}{'compile s':>11}")
    for r in rows:
        lower = f"{r['lower_s']:.1f}" if "lower_s" in r else "-"
        comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
        print(f"{r['framework']:<22}{r['dtype']:<10}{r['latency_ms']:>12.1f}{lower:>9}{comp:>11}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
