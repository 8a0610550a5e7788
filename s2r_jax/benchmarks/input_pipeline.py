"""Training input pipeline throughput, and KITTI ground-truth export speed.

  python -m s2r_jax.benchmarks.input_pipeline [--num_frames 256 --batch_size 32 --steps 40] [--autotune]

Writes procedural frames at Virtual KITTI's resolution (375x1242) in its layout,
builds them with the real `virtual_kitti` builder, then times the full training
pipeline (decode, resize to 192x640, every augmentation on, batching) as the
trainer consumes it. `--autotune` turns tf.data's autotuning back on (the pipeline runs
without it, see `pipeline.pipeline_options`), to measure what that costs. Prints one JSON
line and a short table. A benchmark, never a timed test; needs tensorflow (the pipeline is
tf.data).
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time

from absl import app, flags



def pipeline_images_per_second(workdir: str, num_frames: int, batch_size: int, steps: int,
                               autotune: bool = False) -> dict:
    import tensorflow_datasets as tfds

    from s2r_jax import repo
    from s2r_jax.data import build, pipeline, procedural

    raw, data_dir = os.path.join(workdir, "raw"), os.path.join(workdir, "tfds")
    if not os.path.exists(os.path.join(raw, "train.txt")):
        procedural.write_dataset(raw, num_frames, "real", seed=0, height=375, width=1242, workers=0)
    build.build("virtual_kitti", raw, data_dir, "1.3.1", split_files={"train": os.path.join(raw, "train.txt")})
    cfg = repo.load_config("struct_decoder").data  # the official training data settings
    cfg.data_dir, cfg.batch_size = data_dir, batch_size
    ds = pipeline.train_dataset(cfg)
    if autotune:
        options = pipeline.tf.data.Options()
        options.autotune.enabled = True  # overrides the pipeline's setting (the last one set wins)
        ds = ds.with_options(options)
    it = iter(tfds.as_numpy(ds))
    for _ in range(3):
        next(it)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    dt = time.perf_counter() - t0
    return {"images_per_s": steps * batch_size / dt, "batch_size": batch_size, "steps": steps, "autotune": autotune,
            "image_size": list(cfg.image_size), "source_size": [375, 1242]}


def define_flags():
    """Only when run as a program: importing this module must not claim flag names."""
    flags.DEFINE_integer("num_frames", 256, "Procedural frames to generate (at 375x1242).")
    flags.DEFINE_integer("batch_size", 32, "Batch size of the pipeline.")
    flags.DEFINE_integer("steps", 40, "Timed batches (after 3 warm-up batches).")
    flags.DEFINE_string("workdir", "", "Where to write the frames and the TFDS dataset (default: a temp dir).")
    flags.DEFINE_bool("autotune", False, "Turn tf.data autotuning on (the training pipeline runs without it).")


def main(argv):
    del argv
    f = flags.FLAGS
    from s2r_jax.benchmarks.gt_export import time_velodyne_depth

    with tempfile.TemporaryDirectory() as tmp:
        result = pipeline_images_per_second(f.workdir or tmp, f.num_frames, f.batch_size, f.steps, f.autotune)
    gt = time_velodyne_depth()
    result.update(gt_ms_per_frame=gt["ours_ms"], gt_frames_per_s=1000.0 / gt["ours_ms"],
                  gt_official_style_ms=gt["official_style_ms"], machine=f"{platform.machine()}, {os.cpu_count()} cpus")
    print(f"training pipeline at 192x640, batch {result['batch_size']}, autotune {'on' if f.autotune else 'off'}: "
          f"{result['images_per_s']:.1f} images/s")
    print(f"KITTI velodyne ground truth (60k points): {gt['ours_ms']:.1f} ms/frame "
          f"({result['gt_frames_per_s']:.0f} frames/s; official-style loop {gt['official_style_ms']:.1f} ms)")
    print(json.dumps(result))


if __name__ == "__main__":
    define_flags()
    app.run(main)
