"""Training-step speed per stage and dtype, on synthetic in-memory batches.

  python -m s2r_jax.benchmarks.train_step [--stages struct_decoder,dsa_depth] \
      [--dtypes float32,bfloat16] [--batch_size 32] [--steps 20] [--breakdown] [--local]

For each stage (its config, configs/<stage>.py; `--local` its ':local' variant): the median step time over `--steps` steps after warm-up (timed with
`block_until_ready`), images/s, peak device memory, XLA's cost-analysis FLOPs per
image, achieved FLOP/s and, on GPUs with a known peak, the fraction of the card's
bf16 peak (MFU). No tensorflow needed: runs on the GPU image as it is. Prints a
table and one JSON line per measurement.

`--breakdown` also times, each as its own jitted function, the loss's forward pass,
forward + backward (`value_and_grad`) and the Adam update: the first level of an
account of where the step's time goes (`s2r_jax.benchmarks.layers` goes down to single
convolutions). The parts need not add up to the step, which XLA compiles as one.
"""
from __future__ import annotations

import json

import jax
import numpy as np
import optax
from absl import app, flags

from s2r_jax import repo
from s2r_jax.benchmarks.common import (apply_cpu_conv_rewrites_flag, define_cpu_conv_rewrites_flag,
                                      median_seconds)
from s2r_jax.models import layers
from s2r_jax.training.depth_stage import (abstract_variables, build_model, create_state, initial_variables,
                                          learning_rate_schedule, loss_fn, make_optimizer, make_train_step)
from s2r_jax.training.sharding import make_mesh, replicated, state_sharding

# Dense bf16 peak FLOP/s by device kind (vendor figures, without sparsity).
BF16_PEAK = {"NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12,
             "NVIDIA A100-SXM4-80GB": 312e12, "NVIDIA A100-SXM4-40GB": 312e12, "TPU v4": 275e12,
             "TPU v5 lite": 197e12, "TPU v5p": 459e12}



def define_flags():
    flags.DEFINE_string("stages", "struct_decoder,dsa_depth", "Comma-separated stages (configs/<stage>.py) to time.")
    flags.DEFINE_bool("local", False, "Time the configs' ':local' variants (tiny widths, 96x160).")
    flags.DEFINE_string("dtypes", "float32,bfloat16", "Computation dtypes to time.")
    flags.DEFINE_integer("batch_size", 0, "Global batch (default: the config's on GPU/TPU, 2 on CPU).")
    flags.DEFINE_integer("steps", 20, "Timed steps (after 2 warm-up steps).")
    define_cpu_conv_rewrites_flag()
    flags.DEFINE_bool("breakdown", False, "Also time the forward pass, forward + backward and the Adam update alone.")


def time_stage(config, dtype: str, batch_size: int, steps: int, breakdown: bool = False) -> dict:
    """Time the step of a stage's config (random weights for every module)."""
    stage = config.stage
    config.model.dtype = dtype
    config.allow_random_frozen = True
    for m in config.init_from:
        config.init_from[m] = ""
    mesh = make_mesh(config.mesh.shape, config.mesh.axes)
    model = build_model(config.model)
    tx = make_optimizer(config, steps_per_epoch=1000)
    abstract = abstract_variables(model, config)
    variables = initial_variables(config, abstract)
    abstract_state = jax.eval_shape(lambda v: create_state(v, config, tx), abstract)
    shardings = state_sharding(abstract_state, mesh, config.param_sharding, config.fsdp_min_size)
    state = jax.jit(lambda v: create_state(v, config, tx), out_shardings=shardings)(variables)
    h, w = config.data.image_size
    rng = np.random.default_rng(0)
    data_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    batch = {"image": rng.uniform(-1, 1, (batch_size, h, w, 3)), "depth": rng.uniform(-1, 1, (batch_size, h, w, 1)),
             "mask": np.ones((batch_size, h, w, 1))}
    batch = {k: jax.device_put(v.astype(np.float32), data_sharding) for k, v in batch.items()}
    parts = {}
    if breakdown:  # before the step donates `state`
        loss = lambda params, state, batch: loss_fn(model, config, params, state, batch)
        forward = jax.jit(loss)
        grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
        parts["forward_ms"] = median_seconds(lambda: forward(state.params, state, batch), steps) * 1e3
        parts["forward_backward_ms"] = median_seconds(lambda: grad(state.params, state, batch), steps) * 1e3
        grads = grad(state.params, state, batch)[1]
        update = jax.jit(lambda g, o, p: optax.apply_updates(p, tx.update(g, o, p)[0]))
        parts["update_ms"] = median_seconds(lambda: update(grads, state.opt_state, state.params), steps) * 1e3
        del grads
    step_fn = make_train_step(model, config, tx, learning_rate_schedule(config, 1000))
    jitted = jax.jit(step_fn, in_shardings=(shardings, data_sharding), out_shardings=(shardings, replicated(mesh)),
                     donate_argnums=(0,))
    compiled = jitted.lower(state, batch).compile()
    counted = compiled
    if layers.cpu_conv_rewrites_enabled():  # count the network's own FLOPs, not the CPU lowering's
        with layers.cpu_conv_rewrites(False):
            fresh = make_train_step(model, config, tx, learning_rate_schedule(config, 1000))  # not traced yet
            counted = jax.jit(fresh).lower(state, batch).compile()
    cost = counted.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan")))
    holder = [state]

    def call():
        holder[0], metrics = compiled(holder[0], batch)
        return holder[0], metrics

    dt = median_seconds(call, steps)
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    peak = BF16_PEAK.get(device.device_kind)
    achieved = flops / dt  # cost analysis is of the whole (global) step
    return {
        "stage": stage, "dtype": dtype, "batch_size": batch_size, "image_size": [h, w],
        "step_ms": dt * 1e3, "images_per_s": batch_size / dt,
        "peak_memory_gib": stats.get("peak_bytes_in_use", float("nan")) / 2 ** 30,
        "gflops_per_image": flops / batch_size / 1e9, "achieved_tflops": achieved / 1e12,
        "mfu_bf16": (achieved / (peak * jax.device_count())) if peak else None,
        "device": f"{jax.device_count()} x {device.device_kind}", "jax": jax.__version__,
        "cpu_conv_rewrites": layers.cpu_conv_rewrites_enabled(), **parts,
    }


def main(argv):
    del argv
    f = flags.FLAGS
    apply_cpu_conv_rewrites_flag()
    on_cpu = jax.devices()[0].platform == "cpu"
    rows = []
    for stage in f.stages.split(","):
        for dtype in f.dtypes.split(","):
            config = repo.load_config(stage, "local" if f.local else None)
            batch = f.batch_size or (2 if on_cpu else config.data.batch_size)
            r = time_stage(config, dtype, batch, f.steps, f.breakdown)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\n{'stage':<16}{'dtype':<10}{'step ms':>10}{'img/s':>9}{'GFLOP/img':>11}{'TFLOP/s':>9}{'MFU':>7}"
          f"{'peak GiB':>10}")
    for r in rows:
        mfu = f"{r['mfu_bf16']:.1%}" if r["mfu_bf16"] is not None else "-"
        print(f"{r['stage']:<16}{r['dtype']:<10}{r['step_ms']:>10.1f}{r['images_per_s']:>9.2f}"
              f"{r['gflops_per_image']:>11.1f}{r['achieved_tflops']:>9.3f}{mfu:>7}{r['peak_memory_gib']:>10.2f}")
        if "forward_ms" in r:
            fwd, fb = r["forward_ms"], r["forward_backward_ms"]
            print(f"  separately: forward {fwd:.1f} ms, backward {fb - fwd:.1f} ms, Adam update {r['update_ms']:.1f} ms"
                  " (the step fuses them)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
