r"""Evaluate depth predictions under a published protocol.

  python eval.py --config configs/eval_kitti.py --config.checkpoint=DIR --workdir out/
  python eval.py --config configs/eval_kitti.py --config.protocol=monodepth2 --config.gt=velodyne_x ...
  python eval.py --config configs/eval_kitti.py --config.predictions=preds.npz --config.gt_file=gt.npz

Prints the protocol and the mean metrics; with --workdir writes metrics.json and per_image.csv.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from s2r_jax.evaluation import runner
from s2r_jax.logs import quiet_library_logs

config_flags.DEFINE_config_file("config", None, "A configs/eval_*.py file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where to write metrics.json and per_image.csv (optional).")
flags.mark_flags_as_required(["config"])


def main(argv):
    del argv
    quiet_library_logs()
    try:
        runner.run(flags.FLAGS.config, flags.FLAGS.workdir)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
