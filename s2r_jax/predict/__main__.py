r"""Predict depth for your own images with a trained or converted checkpoint (S2R-DepthNet or
ZoeDepth).

  python -m s2r_jax.predict --checkpoint checkpoints/official_kitti \
      --input photo.jpg frames/ 'drives/*/image_02/*.png' --output_dir out/ [--point_cloud]
  python -m s2r_jax.predict --checkpoint checkpoints/zoed_n --input photos/ --output_dir out/

Inputs are files, folders (their png/jpg/jpeg files; `--recursive` for sub-folders)
and glob patterns (quote them so that the shell leaves them to us), in sorted order.
Every image, whatever its size, is resized (Pillow bicubic, as the official test's
`transforms.Resize`) to the model's input size, predicted in batches under `jax.jit`,
and the finest depth map is brought back to the image's own resolution with an
align_corners=True bilinear resize before it is mapped to metres, as the official
test does. A ZoeDepth checkpoint runs the official `model.infer(x)` on each image at its own
size instead (reflect padding, the network at a multiple of 32 near its configured size
keeping the aspect ratio, torch's bicubic back, flip averaging; --nozoedepth_pad_input and
--nozoedepth_flip_aug switch the padding and the flip off). For an input `<stem>.<ext>` it
writes into `--output_dir`:

  <stem>_depth.png    the depth, colourised (near red, far blue)
  <stem>_depth16.png  16-bit PNG, round(metres * 256) clipped to 65535 (the KITTI convention)
  <stem>_depth.npy    float32 (H, W), metres
  <stem>.ply          with --point_cloud: every pixel back-projected, x y z red green blue

Inputs that share a stem (`a/0001.png`, `b/0001.png`) are named after their path
relative to their common folder instead (`a__0001`, `b__0001`), plus the extension
if that still clashes (`x_png`, `x_jpg`). A missing or unreadable image gives a line
`error: <path>: <reason>` on stderr; the other images are still written and the exit
status is 1.

Point clouds use pinhole intrinsics: by default KITTI's left colour camera (fx = fy =
721.5377, cx = 609.5593, cy = 172.854 for 1242x375 images), scaled to each image's own
size. Intrinsics you give with --fx (--fy defaults to --fx; --cx and --cy to the image
centre) are used as given unless --intrinsics_size says which image size they belong to.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

from s2r_jax.cli import parse_pair
from s2r_jax.model_loader import check_model_size
from s2r_jax.predict.intrinsics import intrinsics_from_flags
from s2r_jax.predict.predictor import load_predictor, predict_paths

def define_flags():
    """Only when run as a program: importing `predict` must not claim flag names."""
    flags.DEFINE_string("checkpoint", None, "Checkpoint directory: a training workdir or one written by "
                        "s2r_jax.convert (latest step).")
    flags.DEFINE_multi_string("input", None, "Image files, folders and glob patterns (quoted); several after one "
                              "--input, or --input repeated.")
    flags.DEFINE_string("output_dir", None, "Directory for the outputs (created if needed).")
    flags.DEFINE_bool("recursive", False, "Also take the images in the sub-folders of input folders (and let "
                      "'**' in a pattern match any depth).")
    flags.DEFINE_integer("batch_size", 8, "Images per device batch.")
    flags.DEFINE_float("depth_range_m", None, "Metres for a network output of +1: default the training "
                       "config's data.depth_range_m, else 80 (KITTI); 8 for the official NYUv2 model. "
                       "Not for models that predict metres (ZoeDepth, the metric-bins variant).")
    flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float64"], "Compute dtype (default: the "
                      "checkpoint's, float32); float64 for exactness checks.")
    flags.DEFINE_list("image_size", None, "H,W to run the network at instead of the checkpoint's (multiples "
                      "of 16, at least 96); the official KITTI model's is 192,640. ZoeDepth: the size its "
                      "network resizes to (img_size, multiples of 32; ZoeD-N 384,512, ZoeD-K 384,768).")
    flags.DEFINE_bool("zoedepth_pad_input", True, "ZoeDepth only: reflect-pad the image before the network "
                      "(the official infer's pad_input).")
    flags.DEFINE_bool("zoedepth_flip_aug", True, "ZoeDepth only: average with the mirrored image's prediction "
                      "(the official infer's with_flip_aug).")
    flags.DEFINE_float("colour_max", None, "Colourise depth over [0, colour_max] metres (the same colours in "
                       "every image) instead of each map's own [min, max].")
    flags.DEFINE_bool("point_cloud", False, "Also write <stem>.ply: every pixel back-projected with the "
                      "intrinsics, coloured by the image.")
    flags.DEFINE_bool("ply_ascii", False, "Write ASCII PLY instead of binary little-endian.")
    flags.DEFINE_float("fx", None, "Focal length in pixels (x). Default: KITTI's left colour camera, 721.5377 "
                       "at 1242x375, scaled to each image's size.")
    flags.DEFINE_float("fy", None, "Focal length in pixels (y). Default: --fx (KITTI's with no --fx).")
    flags.DEFINE_float("cx", None, "Principal point x in pixels. Default: the image centre, (W - 1) / 2 "
                       "(KITTI's 609.5593 with no --fx).")
    flags.DEFINE_float("cy", None, "Principal point y in pixels. Default: the image centre, (H - 1) / 2 "
                       "(KITTI's 172.854 with no --fx).")
    flags.DEFINE_list("intrinsics_size", None, "H,W of the images that --fx/--fy/--cx/--cy refer to: each "
                      "image's intrinsics are scaled from it to the image's own size. Default: no scaling "
                      "for intrinsics you give; 375,1242 for KITTI's.")


def main(argv):
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # orbax warns about every read-only restore
    inputs = list(f.input or []) + list(argv[1:])  # `--input a b c`: absl keeps b, c as arguments
    if not f.checkpoint:
        raise app.UsageError("--checkpoint is required")
    if not f.output_dir:
        raise app.UsageError("--output_dir is required")
    if not inputs:
        raise app.UsageError("give at least one --input (a file, folder or glob pattern)")
    if f.batch_size < 1:
        raise app.UsageError(f"--batch_size must be at least 1, got {f.batch_size}")
    image_size = parse_pair("image_size", f.image_size)
    try:
        if image_size is not None:
            check_model_size(image_size)
        intrinsics = intrinsics_from_flags(f.fx, f.fy, f.cx, f.cy, parse_pair("intrinsics_size", f.intrinsics_size))
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        if f.dtype == "float64":
            import jax
            jax.config.update("jax_enable_x64", True)
        zoedepth_infer = {name: f[flag].value for name, flag in (("pad_input", "zoedepth_pad_input"),
                                                                ("with_flip_aug", "zoedepth_flip_aug"))
                          if f[flag].present}
        predictor = load_predictor(f.checkpoint, f.depth_range_m, image_size, dtype=f.dtype, **zoedepth_infer)
    except (ValueError, OSError) as e:  # PredictError, CheckpointError, orbax's errors
        print(f"error: {f.checkpoint}: {e}", file=sys.stderr)
        sys.exit(1)
    try:
        written, errors = predict_paths(predictor, inputs, f.output_dir, batch_size=f.batch_size,
                                        recursive=f.recursive, point_cloud=f.point_cloud, intrinsics=intrinsics,
                                        colour_max=f.colour_max, ply_binary=not f.ply_ascii)
    except OSError as e:  # the output directory cannot be created
        print(f"error: {f.output_dir}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {len(written)} image(s) to {f.output_dir}" + (f"; {len(errors)} error(s)" if errors else ""),
          file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    define_flags()
    app.run(main)
