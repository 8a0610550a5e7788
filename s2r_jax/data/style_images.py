"""The style domain of structure-encoder pretraining: any folder of images.

Paintings, photos, renderings: every PNG/JPEG under the folder, sorted, in one global
order as the training pipeline's (each epoch shuffled with a seed; every host walks the
same order and decodes only its rows of each global batch); each image resized so it
covers the crop, randomly cropped and flipped with draws keyed by its index in the
stream. Resumable at a step, and independent of the number of hosts.
"""
from __future__ import annotations

import os

from s2r_jax.data.pipeline import _SEED_MIX, _check_rows, finish, keep_rows, resumable_stream
from s2r_jax.data.tf_setup import tf

EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def list_images(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"style images: {folder} is not a directory")
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names if f.endswith(EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"style images: no .png or .jpg files under {folder}")
    return files


def style_dataset(folder: str, image_size, batch_size: int, *, seed: int = 0, start_step: int = 0,
                  rows=None, shuffle_buffer: int = 1024, prefetch: int = 2) -> tf.data.Dataset:
    """This host's batches of (b, H, W, 3) float32 in [-1, 1]: its `rows` of each global batch of
    `batch_size` (default all)."""
    rows = _check_rows(rows, batch_size)
    files = list_images(folder)
    if len(files) < batch_size:
        raise ValueError(f"style images: {len(files)} files under {folder}, fewer than the global batch "
                         f"of {batch_size}")
    h, w = image_size
    base = seed * _SEED_MIX + 7

    def load(index, path):
        data = tf.io.read_file(path)
        image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.maximum(h / shape[0], w / shape[1])  # cover the crop, keep the aspect ratio
        size = tf.cast(tf.math.ceil(shape * scale), tf.int32)
        image = tf.clip_by_value(tf.image.resize(image, size, "bicubic", antialias=True), 0.0, 255.0)
        key = tf.stack([tf.constant(base, tf.int64), index])
        image = tf.image.stateless_random_crop(image, (h, w, 3), seed=key)
        image = tf.image.stateless_random_flip_left_right(image, seed=key + 1)
        return image / 127.5 - 1.0

    raw = tf.data.Dataset.from_tensor_slices(files)
    ds = keep_rows(resumable_stream(raw, len(files), start_step * batch_size, base, shuffle_buffer), rows, batch_size)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return finish(ds, len(rows), prefetch)
