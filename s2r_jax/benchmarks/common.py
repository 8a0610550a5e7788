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


def interleaved_median_seconds(calls: dict[str, Callable], steps: int, warmup: int = 2) -> dict[str, float]:
    """`median_seconds` of several calls measured in turns (each step times every call
    once), so that a change in the machine's load during the run affects them alike."""
    for call in calls.values():
        for _ in range(warmup):
            jax.block_until_ready(call())
    times = {name: [] for name in calls}
    for _ in range(steps):
        for name, call in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def define_cpu_conv_rewrites_flag() -> None:
    flags.DEFINE_enum("cpu_conv_rewrites", "auto", ["auto", "on", "off"],
                      "models.layers.CPU_CONV_REWRITES (auto: on when the backend is the CPU); 'off' times "
                      "the direct lowering, for before/after figures.")


def apply_cpu_conv_rewrites_flag() -> None:
    layers.CPU_CONV_REWRITES = {"auto": None, "on": True, "off": False}[flags.FLAGS.cpu_conv_rewrites]
