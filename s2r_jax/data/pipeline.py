"""tf.data pipelines: training (the official augmentation, resumable, one global order on any
number of hosts) and evaluation (the official test preprocessing).

One global order. The training stream is a pure function of (shuffle_seed, step): epoch e
is the (possibly truncated) split in its stored order, shuffled with a seed made from
(shuffle_seed, e); example i of the stream is row i % B of the global batch of step
i // B (B = the global batch size). Every host walks this same stream of still-encoded
records and decodes only its own rows, the rows of the global batch its devices hold
(`batching.host_rows`). So the global batch of a step does not depend on how many hosts
or devices there are; a run resumed on another topology continues exactly as it would
have; and resuming at step N skips encoded records only.

Each example is decoded and augmented by `augment.augment` (Pillow, the official
semantics), with draws keyed by its index in the stream. Evaluation images go through
`preprocessing.model_input`, the official test's preprocessing, shared with prediction.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from s2r_jax.data import augment, builders, preprocessing  # noqa: F401  (builders registers the datasets)
from s2r_jax.data.specs import GroundTruth, dataset_spec
from s2r_jax.data.tf_setup import tf

_SEED_MIX = 1_000_003  # keeps (seed, epoch) combinations distinct


def builder(cfg):
    """The TFDS builder of `cfg` (a `config.data` or `config.eval.data` group)."""
    kwargs = {"data_dir": cfg.data_dir or None}
    if cfg.tfds_config:
        kwargs["config"] = cfg.tfds_config
    return tfds.builder(cfg.dataset, **kwargs)


def split_name(cfg) -> str:
    """The (possibly truncated) split as a TFDS split string."""
    return f"{cfg.split}[:{cfg.num_examples}]" if cfg.num_examples else cfg.split


def num_examples(cfg) -> int:
    """Examples in the (possibly truncated) split."""
    b = builder(cfg)
    if not b.is_prepared():
        raise FileNotFoundError(f"dataset {cfg.dataset!r} (config {cfg.tfds_config!r}) is not built in "
                                f"{b.data_dir}; build it with python -m s2r_jax.data.build {cfg.dataset} ...")
    return b.info.splits[split_name(cfg)].num_examples


def steps_per_epoch(cfg) -> int:
    """Global steps in one pass over the split (the official loader also ran the last partial batch)."""
    return max(1, num_examples(cfg) // cfg.batch_size)


def resumable_stream(raw: tf.data.Dataset, n: int, start: int, seed: int, shuffle_buffer: int) -> tf.data.Dataset:
    """(index, element) pairs from element `start` of an endless stream of epochs of `raw`
    (n elements), epoch e shuffled with seed `seed * _SEED_MIX + e`. Starting late replays no
    earlier epoch and skips, undecoded, only within the first one."""
    first_epoch, offset = divmod(start, n)
    buffer = max(1, min(shuffle_buffer, n))

    def epoch(e):
        return raw.shuffle(buffer, seed=seed * _SEED_MIX + e, reshuffle_each_iteration=False)

    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(offset)
    return ds.enumerate(start=start)


def keep_rows(ds: tf.data.Dataset, rows: Sequence[int] | None, global_batch: int) -> tf.data.Dataset:
    """Of an (index, element) stream, only the elements that are `rows` of their global batch."""
    if rows is None or len(rows) == global_batch:
        return ds
    table = tf.constant(np.isin(np.arange(global_batch), np.asarray(rows)))
    return ds.filter(lambda index, *_: table[index % global_batch])


def pipeline_options() -> tf.data.Options:
    """Deterministic order, and no autotuning model thread.

    Why no autotuning: with it, deleting a training iterator that has run for minutes
    blocked the main thread for up to 60 s per pipeline (tensorflow-cpu 2.21: the iterator's
    destructor waits for the autotune model thread, which sits out its optimisation period
    of up to 60 s instead of waking on cancellation; seen with gdb in `RootDataset::Iterator::
    ~Iterator` -> `~LogicalThreadWrapper`, the model thread in `Model::OptimizeLoop`). Every
    stage ended with that idle wait (two pipelines in pretraining: ~2 min). Without the model,
    `num_parallel_calls=AUTOTUNE` maps run at tf.data's default parallelism (min(16, cores)).
    """
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def finish(ds: tf.data.Dataset, local_batch: int, prefetch: int) -> tf.data.Dataset:
    """Batch, make deterministic, prefetch."""
    ds = ds.batch(local_batch, drop_remainder=True)
    return ds.with_options(pipeline_options()).prefetch(prefetch)


def _check_rows(rows, global_batch: int) -> tuple[int, ...]:
    rows = tuple(range(global_batch)) if rows is None else tuple(int(r) for r in rows)
    if not rows or any(not 0 <= r < global_batch for r in rows) or len(set(rows)) != len(rows):
        raise ValueError(f"host rows {rows} are not distinct rows of a global batch of {global_batch}")
    return rows


def train_dataset(cfg, *, start_step: int = 0, rows: Sequence[int] | None = None) -> tf.data.Dataset:
    """This host's batches of {'image', 'depth', 'mask'} ((b, H, W, C) float32), from `start_step` on.

    `rows`: the rows of each global batch (of `cfg.batch_size`) this host feeds, in order
    (default: all of them, one host). image and depth in [-1, 1] (depth = d / depth_range_m
    * 2 - 1); mask 1 where the ground truth is valid.
    """
    rows = _check_rows(rows, cfg.batch_size)
    spec = dataset_spec(cfg.dataset)
    gt = spec.ground_truth()
    n = num_examples(cfg)
    if n < cfg.batch_size:
        raise ValueError(f"{cfg.dataset} split {split_name(cfg)!r} has {n} examples, fewer than the global batch "
                         f"of {cfg.batch_size}")
    decoders = {"image": tfds.decode.SkipDecoding()}
    if gt.png16:
        decoders[gt.feature] = tfds.decode.SkipDecoding()  # Pillow decodes it as the official code does
    raw = builder(cfg).as_dataset(split=split_name(cfg), shuffle_files=False, decoders=decoders,
                                  read_config=tfds.ReadConfig(add_tfds_id=False))
    raw = raw.map(lambda ex: (ex["image"], ex[gt.feature]))
    ds = keep_rows(resumable_stream(raw, n, start_step * cfg.batch_size, cfg.shuffle_seed, cfg.shuffle_buffer),
                   rows, cfg.batch_size)
    size = tuple(int(s) for s in cfg.image_size)
    seed, aug, range_m = int(cfg.shuffle_seed), cfg.augment, float(cfg.depth_range_m)

    def one(index, image, depth):
        draws = augment.draw(seed, int(index), aug)
        return augment.augment(image, depth if gt.png16 else np.asarray(depth), gt, size, range_m, draws)

    def fn(index, element):
        image, depth, mask = tf.numpy_function(one, [index, *element], [tf.float32] * 3, stateful=False)
        return {"image": tf.ensure_shape(image, size + (3,)), "depth": tf.ensure_shape(depth, size + (1,)),
                "mask": tf.ensure_shape(mask, size + (1,))}

    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return finish(ds, len(rows), cfg.prefetch)


def train_iterator(cfg, **kwargs) -> Iterator[dict]:
    """`train_dataset` as NumPy batches."""
    return iter(tfds.as_numpy(train_dataset(cfg, **kwargs)))


def eval_dataset(cfg, *, ground_truth="", image_size: Sequence[int], batch_size: int,
                 rows: Sequence[int] | None = None, image_crop: str = "none", dtype: str = "float32",
                 valid_feature: str | None = None, preprocess=None) -> tf.data.Dataset:
    """This host's evaluation batches, in the split's stored order, without augmentation.

    The split is padded to whole global batches of `batch_size` frames; a host gets its
    `rows` of each (default: all). Per frame: 'image' (the official test preprocessing,
    `preprocessing.model_input`, at `image_size`, in `dtype` — float64 for exactness checks),
    'gt' at the original resolution in metres (0 = invalid; padded with zeros to the largest
    in the batch), 'gt_shape', 'name', 'index' (the frame's position in the split) and 'real'
    (False for padding). `image_crop` is the part of the image the model is shown
    (`preprocessing.image_window`: e.g. 'kb', the KB crop of ZoeDepth's KITTI protocol); the
    ground truth stays whole. `ground_truth`: a name from the dataset's spec ('' = its
    default) or a `specs.GroundTruth`; `valid_feature`: a stored mask of valid pixels, applied
    by zeroing the ground truth outside it. `preprocess(uint8 RGB, numpy dtype) -> (H, W, 3)`
    replaces the official test preprocessing for models evaluated another way (ZoeDepth:
    `model_loader.zoedepth_evaluation_input`); it gets the image's `image_crop` window.
    """
    rows = _check_rows(rows, batch_size)
    gt = ground_truth if isinstance(ground_truth, GroundTruth) else dataset_spec(cfg.dataset).ground_truth(
        ground_truth)
    size = tuple(int(s) for s in image_size)
    np_dtype = np.dtype(dtype)
    tf_dtype = tf.as_dtype(np_dtype)
    n = num_examples(cfg)
    ds = builder(cfg).as_dataset(split=split_name(cfg), shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})

    def image_fn(data):
        if preprocess is None:
            return preprocessing.model_input(preprocessing.decode_rgb(data), size, np_dtype, image_crop)
        rgb = preprocessing.decode_rgb(data)
        top, bottom, left, right = preprocessing.image_window(rgb.shape, image_crop)
        return preprocess(rgb[top:bottom, left:right], np_dtype)

    def fn(index, ex):
        image = tf.ensure_shape(tf.numpy_function(image_fn, [ex["image"]], tf_dtype, stateful=False), size + (3,))
        depth = tf.cast(ex[gt.feature], tf.float32)
        depth = tf.reshape(depth, tf.shape(depth)[:2]) * gt.unit_m
        if valid_feature:
            depth = tf.where(tf.reshape(tf.cast(ex[valid_feature], tf.bool), tf.shape(depth)), depth, 0.0)
        return {"image": image, "gt": depth, "gt_shape": tf.shape(depth)[:2], "name": ex["name"], "index": index,
                "real": True}

    ds = ds.enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padding = (-n) % batch_size
    if padding:
        blank = {"image": tf.zeros(size + (3,), tf_dtype), "gt": tf.zeros((1, 1), tf.float32),
                 "gt_shape": tf.constant([1, 1], tf.int32), "name": tf.constant(""), "index": tf.constant(-1, tf.int64),
                 "real": False}
        ds = ds.concatenate(tf.data.Dataset.from_tensors(blank).repeat(padding))
    ds = keep_rows(ds.enumerate(), rows, batch_size).map(lambda i, ex: ex)
    return ds.padded_batch(len(rows)).with_options(pipeline_options()).prefetch(2)
