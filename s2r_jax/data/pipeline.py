"""tf.data pipelines: training (augmented, sharded by host, resumable) and evaluation.

Training order is a pure function of (seed, step): epoch e is the host's shard
shuffled with a seed derived from (seed, e), and each example's augmentation draws
from a stateless RNG keyed by its position in the stream. Resuming at step N
therefore starts at epoch floor(N·b/n), skips within that epoch only (encoded
records, nothing decoded), and yields exactly the batches an uninterrupted run
would have yielded from step N on.

Augmentations follow the official `RandomImgAugment`: bicubic resize of image and
depth (depth resized in its raw unit, then clipped to max_depth, as the official
code does); horizontal flip; rotation with one angle for image and depth; brightness,
contrast and saturation factors. Differences, from what tf.image offers: rotation
interpolates bilinearly (the official uses bicubic), and colour changes act on float
pixels rather than PIL's rounded uint8 ones.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import builders  # noqa: F401  (registers the builders)
from s2r_jax.data.config import DEPTH_FEATURES
from s2r_jax.data.tf_setup import tf

_SEED_MIX = 1_000_003  # keeps (seed, epoch, host) combinations distinct


def _builder(cfg):
    kwargs = {"data_dir": cfg.data_dir or None}
    if cfg.tfds_config:
        kwargs["config"] = cfg.tfds_config
    return tfds.builder(cfg.dataset, **kwargs)


def host_split(cfg, process_index: int, process_count: int) -> str:
    """This host's part of the (possibly truncated) split, as a TFDS split string."""
    split = f"{cfg.split}[:{cfg.num_examples}]" if cfg.num_examples else cfg.split
    if process_count == 1:
        return split
    return tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]


def num_examples(cfg) -> int:
    """Examples in the (possibly truncated) split, over all hosts."""
    return _builder(cfg).info.splits[host_split(cfg, 0, 1)].num_examples


def _depth_spec(cfg):
    if cfg.dataset not in DEPTH_FEATURES:
        raise ValueError(f"no depth convention for dataset {cfg.dataset!r}; known: {sorted(DEPTH_FEATURES)}")
    return DEPTH_FEATURES[cfg.dataset]


def _decoders(cfg):
    """Images stay encoded through the shuffle buffer (decoded after it, in parallel)."""
    feature, *_ = _depth_spec(cfg)
    dec = {"image": tfds.decode.SkipDecoding()}
    if cfg.dataset != "kitti_eigen":  # its depth is a float tensor, not an image
        dec[feature] = tfds.decode.SkipDecoding()
    return dec


def _decode(cfg, example):
    feature, unit, sparse, _ = _depth_spec(cfg)
    image = tf.io.decode_image(example["image"], channels=3, expand_animations=False)
    depth = example[feature]
    if depth.dtype == tf.string:
        depth = tf.io.decode_png(depth, dtype=tf.uint16)
    depth = tf.cast(tf.reshape(depth, tf.concat([tf.shape(depth)[:2], [1]], 0)), tf.float32)
    return tf.cast(image, tf.float32), depth, unit, sparse


def _resize(x, size, sparse):
    if sparse:  # never interpolate sparse ground truth across its holes
        return tf.image.resize(x, size, method="nearest")
    return tf.image.resize(x, size, method="bicubic", antialias=True)


def _rotate(x, angle, interpolation):
    """Rotate about the centre by `angle` radians (counter-clockwise on screen), fill 0."""
    h = tf.cast(tf.shape(x)[0], tf.float32)
    w = tf.cast(tf.shape(x)[1], tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    c, s = tf.cos(angle), tf.sin(angle)
    # output (x, y) samples input at centre + R(-angle) (x - centre), y pointing down
    transform = tf.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform[None], output_shape=tf.shape(x)[:2], fill_value=0.0,
        interpolation=interpolation, fill_mode="CONSTANT")
    return out[0]


def _grey(img):
    return tf.reduce_sum(img * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _color(img, factors):
    """torchvision's adjust_brightness, adjust_contrast, adjust_saturation, in order, on [0, 255]."""
    b, c, s = factors[0], factors[1], factors[2]
    img = tf.clip_by_value(img * b, 0.0, 255.0)
    mean = tf.reduce_mean(_grey(img))
    img = tf.clip_by_value((img - mean) * c + mean, 0.0, 255.0)
    grey = _grey(img)
    return tf.clip_by_value((img - grey) * s + grey, 0.0, 255.0)


def _augment_fn(cfg, seed: int, train: bool):
    aug = cfg.augment
    size = tuple(cfg.image_size)
    max_depth = float(cfg.max_depth)

    def fn(index, example):
        image, depth, unit, sparse = _decode(cfg, example)
        image = tf.clip_by_value(_resize(image, size, False), 0.0, 255.0)
        depth = tf.clip_by_value(_resize(depth, size, sparse) * unit, 0.0, max_depth)  # metres
        valid = tf.cast(depth > 0, tf.float32) if sparse else tf.ones_like(depth)
        if train:
            key = tf.stack([tf.constant(seed, tf.int64), index])
            u = tf.random.stateless_uniform([7], seed=key)
            if aug.flip_prob > 0:
                flip = u[0] < aug.flip_prob
                image, depth, valid = (tf.cond(flip, lambda t=t: tf.reverse(t, [1]), lambda t=t: t)
                                       for t in (image, depth, valid))
            if aug.rotate_prob > 0:
                angle = (u[2] * 2 - 1) * (aug.max_rotation_deg * math.pi / 180)
                angle = tf.where(u[1] < aug.rotate_prob, angle, 0.0)
                image = _rotate(image, angle, "BILINEAR")
                depth = _rotate(depth, angle, "NEAREST" if sparse else "BILINEAR")
                valid = _rotate(valid, angle, "NEAREST")
            if aug.color_prob > 0:
                factors = aug.color_low + u[4:7] * (aug.color_high - aug.color_low)
                image = tf.cond(u[3] < aug.color_prob, lambda: _color(image, factors), lambda: image)
        out = {"image": image / 127.5 - 1.0, "depth": depth / max_depth * 2.0 - 1.0, "mask": valid}
        return {k: tf.ensure_shape(v, size + (v.shape[-1],)) for k, v in out.items()}

    return fn


def train_dataset(cfg, *, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None) -> tf.data.Dataset:
    """This host's batches of {'image', 'depth', 'mask'} ((b, H, W, C) float32), from `start_step` on.

    Hosts default to `jax.process_index()` of `jax.process_count()`.

    image and depth in [-1, 1] (depth = d / max_depth * 2 - 1); mask 1 where the
    ground truth is valid (all pixels for dense datasets; after rotation, the
    rotated-in corners are 0). b = global batch / process_count.
    """
    if process_index is None or process_count is None:
        import jax
        process_index, process_count = jax.process_index(), jax.process_count()
    if cfg.batch_size % process_count:
        raise ValueError(f"global batch {cfg.batch_size} is not divisible by {process_count} processes")
    local_batch = cfg.batch_size // process_count
    builder = _builder(cfg)
    split = host_split(cfg, process_index, process_count)
    n = builder.info.splits[split].num_examples
    if n < local_batch:
        raise ValueError(f"{cfg.dataset} split {split!r} has {n} examples on this host, fewer than its batch "
                         f"of {local_batch}")
    raw = builder.as_dataset(split=split, shuffle_files=False, decoders=_decoders(cfg),
                             read_config=tfds.ReadConfig(shuffle_seed=cfg.seed, add_tfds_id=False))
    base = (cfg.seed * _SEED_MIX + process_index) * _SEED_MIX
    ds = resumable_stream(raw, n, start_step * local_batch, base, cfg.shuffle_buffer)
    ds = ds.map(_augment_fn(cfg, base, train=True), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return finish(ds, local_batch, cfg.prefetch)


def resumable_stream(raw: tf.data.Dataset, n: int, start: int, seed: int, shuffle_buffer: int) -> tf.data.Dataset:
    """(index, element) pairs from element `start` of an endless stream of epochs of `raw`
    (n elements), epoch e shuffled with seed `seed + e`. Starting late replays no earlier
    epoch and skips, undecoded, only within the first one."""
    first_epoch, offset = divmod(start, n)
    buffer = max(1, min(shuffle_buffer, n))

    def epoch(e):
        return raw.shuffle(buffer, seed=seed + e, reshuffle_each_iteration=False)

    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(offset)
    return ds.enumerate(start=start)


def finish(ds: tf.data.Dataset, local_batch: int, prefetch: int) -> tf.data.Dataset:
    """Batch, make deterministic, prefetch."""
    ds = ds.batch(local_batch, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(prefetch)


def train_iterator(cfg, **kwargs) -> Iterator[dict]:
    """`train_dataset` as NumPy batches."""
    return iter(tfds.as_numpy(train_dataset(cfg, **kwargs)))


EVAL_GT = {"virtual_kitti": {"depth": ("depth", 0.01)},
           "kitti_eigen": {"camera_z": ("depth_camera_z", 1.0), "velodyne_x": ("depth_velodyne_x", 1.0),
                           "improved": ("depth_improved", 1.0 / 256.0)},
           "nyu_depth_test": {"depth": ("depth", 0.001)}}


def eval_dataset(cfg, gt: str | None = None, batch_size: int = 1) -> tf.data.Dataset:
    """Batches for evaluation, in the split's order, without augmentation.

    'image': resized to cfg.image_size, in [-1, 1]; 'gt': the ground truth at its
    original resolution in metres (0 = invalid), zero-padded to the largest in the
    batch, with 'gt_shape' the (H, W) of each; 'name'. `gt` picks the ground truth
    where a dataset has several (kitti_eigen: camera_z, velodyne_x, improved).
    """
    choices = EVAL_GT.get(cfg.dataset)
    if choices is None:
        raise ValueError(f"no evaluation ground truth for {cfg.dataset!r}")
    gt = gt or next(iter(choices))
    if gt not in choices:
        raise ValueError(f"{cfg.dataset} has no ground truth {gt!r}; choose one of {sorted(choices)}")
    feature, unit = choices[gt]
    size = tuple(cfg.image_size)
    builder = _builder(cfg)
    split = f"{cfg.split}[:{cfg.num_examples}]" if cfg.num_examples else cfg.split
    ds = builder.as_dataset(split=split, shuffle_files=False)

    def fn(ex):
        image = tf.clip_by_value(tf.image.resize(tf.cast(ex["image"], tf.float32), size, "bicubic", antialias=True),
                                 0.0, 255.0)
        depth = tf.cast(ex[feature], tf.float32)
        depth = tf.reshape(depth, tf.shape(depth)[:2]) * unit
        return {"image": image / 127.5 - 1.0, "gt": depth, "gt_shape": tf.shape(depth)[:2], "name": ex["name"]}

    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.padded_batch(batch_size).prefetch(2)
