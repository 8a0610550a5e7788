"""What the benchmark scripts share: one timing method and the CPU-lowering switch."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
from absl import flags

from s2r_jax.models import layers


def median_seconds(call: Callable, steps: int, warmup: int = 2) -> float:
    """Median wall time of `steps` calls after `warmup` calls, each waited for with
    `block_until_ready` (a no-op on non-JAX results, e.g. torch tensors)."""
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def define_cpu_conv_rewrites_flag() -> None:
    flags.DEFINE_enum("cpu_conv_rewrites", "auto", ["auto", "on", "off"],
                      "models.layers.CPU_CONV_REWRITES (auto: on when the backend is the CPU); 'off' times "
                      "the direct lowering, for before/after figures.")


def apply_cpu_conv_rewrites_flag() -> None:
    layers.CPU_CONV_REWRITES = {"auto": None, "on": True, "off": False}[flags.FLAGS.cpu_conv_rewrites]
