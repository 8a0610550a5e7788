r"""Train a stage of S2R-DepthNet.

  python train.py --config configs/ste_pretrain.py --workdir runs/ste --config.style_images=DIR
  python train.py --config configs/struct_decoder.py --workdir runs/stage1 --config.init_from.struct_encoder=runs/ste
  python train.py --config configs/dsa_depth.py --workdir runs/stage2 \
      --config.init_from.struct_decoder=runs/stage1
  python train.py --config configs/dsa_depth.py:local --workdir /tmp/quick   # small variant

Any field can be overridden with --config.FIELD=VALUE. Re-running with the same
workdir resumes from its latest checkpoint.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from s2r_jax.logs import quiet_library_logs
from s2r_jax.training import loop

config_flags.DEFINE_config_file("config", None, "A configs/*.py file (optionally 'file.py:local').", lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints and TensorBoard logs go here; an existing one is resumed.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    quiet_library_logs()
    config = flags.FLAGS.config
    try:
        if config.stage == "ste_pretrain":
            from s2r_jax.training.ste_pretrain import pretrain
            pretrain(config, flags.FLAGS.workdir)
        else:
            loop.train(config, flags.FLAGS.workdir)
    except (ValueError, FileNotFoundError, loop.TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
