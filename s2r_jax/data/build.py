r"""Build a TFDS dataset from the files as downloaded (no `tfds` CLI, no apache-beam).

  python -m s2r_jax.data.build virtual_kitti --config 1.3.1 \
      --manual_dir /data/vkitti --data_dir ~/tensorflow_datasets
  python -m s2r_jax.data.build kitti_eigen --manual_dir /data/kitti_raw --data_dir DIR
  python -m s2r_jax.data.build nyu_depth_test --manual_dir /data/nyu_test --data_dir DIR
  python -m s2r_jax.data.build diode --config outdoor --manual_dir /data/diode --data_dir DIR

(every dataset, with its expected layout: builders/<name>/README.md, docs/data.md,
docs/zero_shot.md)

Every file is decoded once while building; a missing or malformed one stops the
build with an error naming it (and its list line), and TFDS's write-then-rename
leaves no partial dataset that could later read as complete.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import textwrap

from absl import app, flags, logging


def build(name: str, manual_dir: str, data_dir: str | None = None, config: str | None = None,
          overwrite: bool = False, **builder_kwargs):
    """Build dataset `name` and return its builder (ready for `as_dataset`)."""
    import tensorflow_datasets as tfds

    from s2r_jax.data.builders import BUILDERS

    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(BUILDERS)}")
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"--manual_dir {manual_dir}: no such directory. {name} expects:\n"
                                + textwrap.dedent(BUILDERS[name].MANUAL_DOWNLOAD_INSTRUCTIONS))
    kwargs = {k: v for k, v in builder_kwargs.items() if v}
    builder = BUILDERS[name](data_dir=data_dir, config=config, **kwargs)
    mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
    if overwrite:
        mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
    tfds.disable_progress_bar()
    with contextlib.redirect_stdout(_WithoutTfdsNotices(sys.stdout)):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir,
                                                                                  download_mode=mode))
    return builder


class _WithoutTfdsNotices(io.TextIOBase):
    """stdout minus TFDS's "Downloading and preparing dataset Unknown size..." notices (nothing
    is downloaded: the files are read from --manual_dir), which go to the log instead."""

    NOTICES = ("Downloading and preparing dataset", "Dataset ", "Generating splits", "Shuffling")

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        for line in text.splitlines(keepends=True):
            if line.lstrip("\x1b[0123456789;m").startswith(self.NOTICES):
                logging.info("tfds: %s", line.strip())
            else:
                self.stream.write(line)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _parse_split_files(items):
    out = {}
    for item in items:
        split, sep, path = item.partition("=")
        if not sep or not split or not path:
            raise app.UsageError(f"--split_file expects SPLIT=LIST, got {item!r}")
        out[split] = path
    return out


def define_flags():
    """Only when run as a program: importing this module must not claim flag names."""
    flags.DEFINE_string("config", None, "Builder config (virtual_kitti: 1.3.1 or 2; diode: indoor or outdoor; "
                        "driving_stereo: test, sunny, cloudy, foggy or rainy).")
    flags.DEFINE_string("manual_dir", None, "Where the downloaded files were unpacked.")
    flags.DEFINE_string("data_dir", None, "TFDS data directory to write to (default: TFDS's own).")
    flags.DEFINE_multi_string("split_file", [], "virtual_kitti: SPLIT=LIST builds SPLIT from LIST (official "
                              "format) instead of the packaged lists; repeatable.")
    flags.DEFINE_string("train_list", None, "kitti_eigen: a train split list in the official KITTI format.")
    flags.DEFINE_string("test_list", None, "kitti_eigen / nyu_depth_test / sun_rgbd: replace the packaged test "
                        "list; hypersim: a split CSV in the official format (its test rows).")
    flags.DEFINE_string("improved_root", None, "kitti_eigen: where data_depth_annotated was unpacked "
                        "(default <manual_dir>/data_depth_annotated).")
    flags.DEFINE_bool("overwrite", False, "Rebuild even if the dataset exists.")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m s2r_jax.data.build NAME --manual_dir DIR [--data_dir DIR]")
    f = flags.FLAGS
    if not f.manual_dir:
        raise app.UsageError("--manual_dir is required")
    extra = {"split_files": _parse_split_files(f.split_file), "train_list": f.train_list,
             "test_list": f.test_list, "improved_root": f.improved_root}
    accepted = {"virtual_kitti": {"split_files"}, "kitti_eigen": {"train_list", "test_list", "improved_root"},
                "nyu_depth_test": {"test_list"}, "sun_rgbd": {"test_list"},
                "hypersim": {"test_list"}}.get(argv[1], set())
    for key, value in extra.items():
        if value and key not in accepted:
            raise app.UsageError(f"--{key.rstrip('s') if key == 'split_files' else key} does not apply to {argv[1]}")
    try:
        builder = build(argv[1], f.manual_dir, f.data_dir, f.config, f.overwrite,
                        **{k: v for k, v in extra.items() if k in accepted})
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"built {builder.info.full_name} in {builder.data_dir}")
    for split, info in builder.info.splits.items():
        print(f"  {split}: {info.num_examples} examples")


if __name__ == "__main__":
    define_flags()
    app.run(main)
