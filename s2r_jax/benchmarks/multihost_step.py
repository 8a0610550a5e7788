r"""What the collectives cost: the training step on 1 x 8, 2 x 4 and 4 x 2 CPU processes x devices.

  python -m s2r_jax.benchmarks.multihost_step [--topologies 1x8,2x4,4x2] [--steps 30] \
      [--config configs/struct_decoder.py:local] [--data_dir DIR]

Each topology runs train.py on a local cluster (`s2r_jax.local_cluster`: processes joined by
jax.distributed over 127.0.0.1, gloo collectives) for `--steps` steps of the config (its
`:local` variant by default: tiny widths, 96x160, global batch 8) on procedural frames, and
reports the step time from host 0's progress lines, after the first log interval (which
holds the compilation). A benchmark, never a timed test; docs/benchmarks.md has the figures.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import tempfile

from absl import app, flags

_RATE = re.compile(r"^step (\d+)/\d+ .*?([\d.]+) steps/s", re.M)


def define_flags():
    flags.DEFINE_string("topologies", "1x8,2x4,4x2", "processes x devices per process, comma-separated.")
    flags.DEFINE_integer("steps", 30, "Training steps per topology (logged every 5).")
    flags.DEFINE_string("config", "configs/struct_decoder.py:local", "The training config.")
    flags.DEFINE_string("data_dir", "", "A built virtual_kitti/1.3.1 'train' split (default: 32 procedural frames).")


def _data_dir(workdir: str) -> str:
    from s2r_jax.data import build, procedural
    raw = os.path.join(workdir, "raw")
    procedural.write_dataset(raw, 32, "synthetic", seed=0, height=96, width=160, workers=0, verbose=False)
    build.build("virtual_kitti", raw, os.path.join(workdir, "tfds"), "1.3.1",
                split_files={"train": os.path.join(raw, "train.txt")})
    return os.path.join(workdir, "tfds")


def time_topology(processes: int, devices: int, config: str, data_dir: str, steps: int, workdir: str) -> dict:
    from s2r_jax.local_cluster import Cluster
    args = ["--config", config, "--workdir", os.path.join(workdir, f"run_{processes}x{devices}"),
            f"--config.data.data_dir={data_dir}", "--config.allow_random_frozen=True",
            f"--config.num_train_steps={steps}", "--config.log.every_steps=5", "--config.log.image_every_steps=0",
            f"--config.checkpoint.every_steps={steps + 1}"]
    with Cluster("train.py", args, processes, devices, os.path.join(workdir, f"logs_{processes}x{devices}"),
                 x64=False) as cluster:
        codes = cluster.wait(3600)
        out = cluster.output(0)
    if codes != [0] * processes:
        raise RuntimeError(f"{processes}x{devices} failed: {codes}\n{out[-2000:]}")
    rates = [float(r) for s, r in _RATE.findall(out) if int(s) > 5]  # after the compiling interval
    step_ms = 1e3 / statistics.median(rates)
    return {"processes": processes, "devices_per_process": devices, "step_ms": step_ms, "intervals": len(rates)}


def main(argv):
    del argv
    f = flags.FLAGS
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = f.data_dir or _data_dir(tmp)
        rows = []
        for topology in f.topologies.split(","):
            p, d = (int(x) for x in topology.split("x"))
            rows.append(time_topology(p, d, f.config, data_dir, f.steps, tmp))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'processes x devices':<22}{'step ms':>10}")
    for r in rows:
        print(f"{r['processes']} x {r['devices_per_process']:<18}{r['step_ms']:>10.1f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
