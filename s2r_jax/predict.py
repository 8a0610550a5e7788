r"""Predict depth for your own images with a trained or converted checkpoint.

  python -m s2r_jax.predict --checkpoint checkpoints/official_kitti \
      --input photo.jpg frames/ 'drives/*/image_02/*.png' --output_dir out/ [--point_cloud]

Inputs are files, folders (their png/jpg/jpeg files; `--recursive` for sub-folders)
and glob patterns (quote them so that the shell leaves them to us), in sorted order.
Every image, whatever its size, is resized (Pillow bicubic, as the official test's
`transforms.Resize`) to the model's input size, predicted in batches under `jax.jit`,
and the finest depth map is brought back to the image's own resolution with an
align_corners=True bilinear resize before it is mapped to metres, as the official
test does. For an input `<stem>.<ext>` it writes into `--output_dir`:

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

import collections
import concurrent.futures
import dataclasses
import glob
import os
import sys
import time
from typing import Iterable, Sequence, TextIO

import numpy as np
from absl import app, flags, logging
from PIL import Image

from s2r_jax.model_loader import CheckpointModelError, LoadedModel, check_model_size, load_model

PredictError = CheckpointModelError  # an argument or checkpoint prediction cannot work with

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# KITTI's left colour camera (P_rect_02 of the 2011_09_26 drives) and the image size it refers to.
KITTI_INTRINSICS = (721.5377, 721.5377, 609.5593, 172.854)  # fx, fy, cx, cy
KITTI_IMAGE_SIZE = (375, 1242)  # H, W


class Predictor:
    """A restored model (`model_loader.LoadedModel`) with what prediction adds: Pillow
    preprocessing and the jitted map back to each image's size in metres."""

    def __init__(self, loaded: LoadedModel):
        import jax

        from s2r_jax.models import to_metres

        self.loaded = loaded
        self.spec, self.meta = loaded.spec, loaded.meta
        self.image_size, self.use_attention = loaded.image_size, loaded.use_attention
        self.max_depth = float(loaded.spec.max_depth)
        self._metres = jax.jit(to_metres, static_argnames=("size", "max_depth"))

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> float32 (H, W, 3) in [-1, 1] at the model's size (Pillow bicubic)."""
        h, w = self.image_size
        if rgb.shape[:2] != (h, w):
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))
        return rgb.astype(np.float32) / 127.5 - 1.0

    def predict_raw(self, images: np.ndarray):
        """(N, H, W, 3) in [-1, 1] -> the finest depth output (N, H, W, 1) in [-1, 1], on device."""
        return self.loaded.finest(images)

    def metres(self, raw, size: Sequence[int]) -> np.ndarray:
        """One raw map (H, W, 1) or (1, H, W, 1) -> float32 metres (h, w) at `size` = (h, w)."""
        raw = raw.reshape((1,) + tuple(raw.shape[-3:]))
        out = self._metres(raw, size=tuple(int(s) for s in size), max_depth=self.max_depth)
        return np.asarray(out, dtype=np.float32)[0, :, :, 0]


def load_predictor(checkpoint: str | os.PathLike, max_depth: float | None = None,
                   image_size: Sequence[int] | None = None, step: int | None = None) -> Predictor:
    """A `Predictor` for the latest (or given) step of a checkpoint directory (see
    `model_loader.load_model` for `max_depth` and `image_size`)."""
    return Predictor(load_model(checkpoint, step=step, max_depth=max_depth, image_size=image_size))


# ----------------------------------------------------------------------------- inputs


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _folder_images(folder: str, recursive: bool) -> list[str]:
    if recursive:
        found = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
    else:
        found = [os.path.join(folder, f) for f in os.listdir(folder)]
    return [p for p in found if _is_image(p) and os.path.isfile(p)]


def expand_inputs(inputs: Iterable[str], recursive: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Files, folders and glob patterns -> (sorted image paths, [(input, reason)] errors).

    A named file is taken whatever its extension (an unreadable one fails later, naming
    it); folders and globs contribute their png/jpg/jpeg files (case-insensitive), a
    folder only its own files unless `recursive` (a glob's `**` then matches folders
    at any depth). A path that does not exist, a glob that matches nothing and a
    folder without images are errors. The same file named twice is predicted once.
    """
    paths, errors = [], []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isfile(item):
            paths.append(item)
        elif os.path.isdir(item):
            found = _folder_images(item, recursive)
            if not found:
                hint = "" if recursive else " (--recursive also searches its sub-folders)"
                errors.append((item, f"no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} images in this folder{hint}"))
            paths += found
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            found = []
            for m in matches:
                found += _folder_images(m, recursive) if os.path.isdir(m) else ([m] if _is_image(m) else [])
            if not found:
                errors.append((item, "no image matches this pattern" if matches else "nothing matches this pattern"))
            paths += found
        else:
            errors.append((item, "no such file or directory"))
    unique = {}
    for p in paths:
        unique.setdefault(os.path.realpath(p), p)
    return sorted(unique.values()), errors


def output_names(paths: Sequence[str]) -> list[str]:
    """A distinct output stem per input (compared case-insensitively).

    An image's stem is its file name without the extension; inputs that share one
    are all named by their folder relative to the group's common folder, joined with
    '__' (`a/x.png`, `b/c/x.png` -> `a__x`, `b__c__x`; `x.png`, `s/x.png` -> `x`,
    `s__x`); where that still clashes (one folder, `x.png` and `x.jpg`) the lower-case
    extension is appended (`x_png`, `x_jpg`); a clash left after that gets `_2`, `_3`...
    """
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = list(stems)
    groups = collections.defaultdict(list)
    for i, s in enumerate(stems):
        groups[s.casefold()].append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        dirs = [os.path.dirname(os.path.abspath(paths[i])) for i in idx]
        root = os.path.commonpath(dirs)
        for i, d in zip(idx, dirs):
            rel = os.path.relpath(d, root)
            names[i] = "__".join(([] if rel == os.curdir else rel.split(os.sep)) + [stems[i]])
        same = collections.defaultdict(list)
        for i in idx:
            same[names[i].casefold()].append(i)
        for js in same.values():
            if len(js) > 1:
                for j in js:
                    names[j] += "_" + os.path.splitext(paths[j])[1].lstrip(".").lower()
    seen = set()
    for i, name in enumerate(names):
        base, k = name, 2
        while name.casefold() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.casefold())
        names[i] = name
    return names


# ----------------------------------------------------------------------------- outputs


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics for back-projection: given ones, or KITTI's scaled to each image.

    `size` (H, W) is the image size the values belong to: each image's intrinsics are
    scaled from it to the image's own size (fx by w / W, cx as (cx + 0.5) * w / W - 0.5,
    pixel centres at integer coordinates; likewise fy, cy with h / H). `size=None`
    uses the values as they are for every image. `fy` defaults to `fx`; `cx`, `cy` to
    the image centre ((w - 1) / 2, (h - 1) / 2).
    """

    fx: float = KITTI_INTRINSICS[0]
    fy: float | None = KITTI_INTRINSICS[1]
    cx: float | None = KITTI_INTRINSICS[2]
    cy: float | None = KITTI_INTRINSICS[3]
    size: tuple | None = KITTI_IMAGE_SIZE

    def for_image(self, h: int, w: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) for an h x w image."""
        ref_h, ref_w = self.size if self.size is not None else (h, w)
        fy = self.fx if self.fy is None else self.fy
        cx = (ref_w - 1) / 2 if self.cx is None else self.cx
        cy = (ref_h - 1) / 2 if self.cy is None else self.cy
        sx, sy = w / ref_w, h / ref_h
        return self.fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def back_project(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(H, W) z-depth -> (H * W, 3) float32 camera points, row-major: pixel (v, u) ->
    ((u - cx) z / fx, (v - cy) z / fy, z); x right, y down, z forward."""
    h, w = depth.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    z = depth.astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    return points.reshape(-1, 3).astype(np.float32)


def write_ply(path: str, points: np.ndarray, colours: np.ndarray, binary: bool = True) -> None:
    """PLY with one vertex element (float x y z, uchar red green blue): binary
    little-endian, or ASCII."""
    n = len(points)
    header = ("ply\nformat {} 1.0\ncomment written by s2r_jax.predict\nelement vertex {}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n").format(
        "binary_little_endian" if binary else "ascii", n)
    colours = np.asarray(colours, np.uint8).reshape(n, 3)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        if binary:
            rows = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                      ("red", "u1"), ("green", "u1"), ("blue", "u1")])
            rows["x"], rows["y"], rows["z"] = points[:, 0], points[:, 1], points[:, 2]
            rows["red"], rows["green"], rows["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
            f.write(rows.tobytes())
        else:
            lines = (f"{x!r} {y!r} {z!r} {r} {g} {b}\n" for (x, y, z), (r, g, b)
                     in zip(points.tolist(), colours.tolist()))
            f.write("".join(lines).encode("ascii"))


def depth_to_png16(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 round(metres * 256), clipped to [0, 65535] (KITTI's depth PNGs)."""
    return np.clip(np.round(depth.astype(np.float64) * 256.0), 0, 65535).astype(np.uint16)


def colourise_depth(depth: np.ndarray, colour_max: float | None = None) -> np.ndarray:
    """Near red, far blue: over [min, max] of the map, or [0, colour_max] metres if given."""
    from s2r_jax.training.panels import colourise

    lo, hi = (float(depth.min()), float(depth.max())) if colour_max is None else (0.0, float(colour_max))
    return colourise(-depth, -hi, -lo)


def write_outputs(output_dir: str, name: str, rgb: np.ndarray, depth: np.ndarray,
                  point_cloud: bool = False, intrinsics: Intrinsics | None = None,
                  colour_max: float | None = None, ply_binary: bool = True) -> dict[str, str]:
    """Write one image's outputs; {kind: path}."""
    from s2r_jax.data.imageio import write_png16, write_rgb

    out = {"colour": os.path.join(output_dir, f"{name}_depth.png"),
           "depth16": os.path.join(output_dir, f"{name}_depth16.png"),
           "npy": os.path.join(output_dir, f"{name}_depth.npy")}
    write_rgb(out["colour"], colourise_depth(depth, colour_max))
    write_png16(out["depth16"], depth_to_png16(depth))
    np.save(out["npy"], depth.astype(np.float32))
    if point_cloud:
        out["ply"] = os.path.join(output_dir, f"{name}.ply")
        fx, fy, cx, cy = (intrinsics or Intrinsics()).for_image(*depth.shape)
        write_ply(out["ply"], back_project(depth, fx, fy, cx, cy), rgb.reshape(-1, 3), ply_binary)
    return out


# ----------------------------------------------------------------------------- the loop


class _Progress:
    """`predict: done/total images` on stderr: rewritten in place on a terminal, else a
    line at most every few seconds and at the end."""

    def __init__(self, total: int, stream: TextIO | None, every_s: float = 5.0):
        self.total, self.stream, self.every_s = total, stream, every_s
        self.tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        self.last, self.shown, self.state = -float("inf"), False, None

    def update(self, done: int, errors: int) -> None:
        if self.stream is None or self.total == 0 or self.state == (done, errors):
            return
        now = time.monotonic()
        if not self.tty and done < self.total and (done == 0 or now - self.last < self.every_s):
            return
        self.last, self.state = now, (done, errors)
        text = f"predict: {done}/{self.total} images" + (f" ({errors} failed)" if errors else "")
        if self.tty:
            width = 30
            fill = int(width * done / max(self.total, 1))
            self.stream.write(f"\r{text} [{'#' * fill}{'.' * (width - fill)}]")
            self.shown = done < self.total
            if not self.shown:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, line: str) -> None:
        if self.stream is None:
            return
        if self.tty and self.shown:
            self.stream.write("\r\033[K")
            self.shown = False
        self.stream.write(line + "\n")
        self.stream.flush()


def _read(path: str, predictor: Predictor):
    from s2r_jax.data.imageio import read_rgb

    rgb = read_rgb(path)
    return rgb, predictor.preprocess(rgb)


def _reason(e: BaseException) -> str:
    text = str(e)
    return text if text else type(e).__name__


def predict_paths(predictor: Predictor, paths: Iterable[str], output_dir: str, *, batch_size: int = 8,
                  recursive: bool = False, point_cloud: bool = False, intrinsics: Intrinsics | None = None,
                  colour_max: float | None = None, ply_binary: bool = True, log: TextIO | None = sys.stderr,
                  num_threads: int = 4) -> tuple[list[dict], list[tuple[str, str]]]:
    """Predict every image that `paths` (files, folders, globs) names; write its outputs.

    Returns `(written, errors)`: per written image `{"input": path, "name": stem, kind:
    output path...}` in input order, and `(path, reason)` for each input that could not
    be expanded, read or written. Each error is also printed to `log` as
    `error: <path>: <reason>`, with a progress line; `log=None` prints nothing.
    Images are read and written by `num_threads` threads while the device predicts.
    """
    if batch_size < 1:
        raise PredictError(f"batch_size must be at least 1, got {batch_size}")
    images, errors = expand_inputs(paths, recursive)
    progress = _Progress(len(images), log)
    for path, reason in errors:
        progress.message(f"error: {path}: {reason}")
    names = output_names(images)
    clashes = collections.Counter(os.path.splitext(os.path.basename(p))[0].casefold() for p in images)
    for path, name in zip(images, names):
        if clashes[os.path.splitext(os.path.basename(path))[0].casefold()] > 1:
            logging.info("%s shares its name with another input: written as %s", path, name)
    if images:
        os.makedirs(output_dir, exist_ok=True)
    h, w = predictor.image_size
    written, done, failed_images = [], 0, 0

    def fail(path, reason):
        nonlocal failed_images
        failed_images += 1
        errors.append((path, reason))
        progress.message(f"error: {path}: {reason}")

    batches = [list(range(i, min(i + batch_size, len(images)))) for i in range(0, len(images), batch_size)]
    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        def submit_reads(batch):
            return [pool.submit(_read, images[i], predictor) for i in batch]

        reads = submit_reads(batches[0]) if batches else []
        pending_writes: list = []
        for b, batch in enumerate(batches):
            loaded, failed = [], 0
            for i, fut in zip(batch, reads):
                try:
                    loaded.append((i, *fut.result()))
                except Exception as e:  # noqa: BLE001 - any unreadable file is reported, not fatal
                    fail(images[i], _reason(e))
                    failed += 1
            reads = submit_reads(batches[b + 1]) if b + 1 < len(batches) else []
            if loaded:
                x = np.zeros((batch_size, h, w, 3), np.float32)  # a fixed shape: one compilation
                for k, (_, _, pre) in enumerate(loaded):
                    x[k] = pre
                raw = predictor.predict_raw(x)
                depths = [predictor.metres(raw[k], rgb.shape[:2]) for k, (_, rgb, _) in enumerate(loaded)]
            else:
                depths = []
            done_writes = _finish(pending_writes, fail)
            written += done_writes
            done += len(done_writes)
            pending_writes = [(images[i], names[i], pool.submit(
                write_outputs, output_dir, names[i], rgb, depth, point_cloud, intrinsics, colour_max, ply_binary))
                for (i, rgb, _), depth in zip(loaded, depths)]
            done += failed
            progress.update(done, failed_images)
        done_writes = _finish(pending_writes, fail)
        written += done_writes
        done += len(done_writes)
    progress.update(len(images), failed_images)
    order = {p: k for k, p in enumerate(images)}
    written.sort(key=lambda r: order[r["input"]])
    return written, errors


def _finish(pending, fail) -> list[dict]:
    out = []
    for path, name, fut in pending:
        try:
            out.append({"input": path, "name": name, **fut.result()})
        except Exception as e:  # noqa: BLE001
            fail(path, f"cannot write its outputs ({_reason(e)})")
    return out


# ----------------------------------------------------------------------------- the program


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
    flags.DEFINE_float("max_depth", None, "Metres for a network output of +1: default the training config's "
                       "data.max_depth, else 80 (KITTI); 8 for the official NYUv2 model.")
    flags.DEFINE_list("image_size", None, "H,W to run the network at instead of the checkpoint's (multiples "
                      "of 16, at least 96); the official KITTI model's is 192,640.")
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


def parse_pair(name: str, values) -> tuple[int, int] | None:
    """A list flag's 'H,W' -> (H, W), None if not given; a UsageError naming --`name` otherwise."""
    if not values:
        return None
    try:
        pair = tuple(int(v) for v in values)
    except ValueError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise app.UsageError(f"--{name} takes H,W (two positive integers), got {','.join(values)}")
    return pair


def intrinsics_from_flags(fx=None, fy=None, cx=None, cy=None, size=None) -> Intrinsics:
    """KITTI's (scaled from 1242x375) when none is given; else the given ones, `fy` = `fx`
    and the image centre filling the gaps, scaled only if `size` is given."""
    if fx is None and fy is None and cx is None and cy is None:
        return Intrinsics(size=tuple(size) if size else KITTI_IMAGE_SIZE)
    if fx is None:
        raise PredictError("--fy, --cx or --cy need --fx as well")
    return Intrinsics(fx, fy, cx, cy, tuple(size) if size else None)


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
    except PredictError as e:
        raise app.UsageError(str(e)) from e
    try:
        predictor = load_predictor(f.checkpoint, f.max_depth, image_size)
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
