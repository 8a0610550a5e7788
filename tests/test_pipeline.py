"""The training and evaluation pipelines: the official augmentation's semantics, one global order
on any number of hosts, resuming, sparse ground truth, and feeding a sharded global batch."""
import io
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import data_trees
from configs_util import load_config, override
from s2r_jax.data import augment, batching, build, imageio, pipeline, preprocessing
from s2r_jax.data.specs import dataset_spec

SIZE = (48, 160)
NO_AUG = dict(flip_prob=0.0, rotate_prob=0.0, max_rotation_deg=5.0, colour_prob=0.0, colour_low=0.8, colour_high=1.0)


@pytest.fixture(scope="module")
def vkitti(tmp_path_factory):
    """10 random frames, built as virtual_kitti/1.3.1 'train'."""
    d = tmp_path_factory.mktemp("vk")
    lst = data_trees.write_vkitti1(d / "raw", n=10, h=60, w=200)
    build.build("virtual_kitti", str(d / "raw"), str(d / "tfds"), "1.3.1", split_files={"train": lst})
    return d


def _cfg(d, **kw):
    c = load_config("struct_decoder", "local").data
    c.data_dir, c.image_size, c.batch_size, c.shuffle_buffer = str(d / "tfds"), SIZE, 4, 10
    return override(c, **kw)


def _take(it, n):
    return [next(it) for _ in range(n)]


def _pil_grey(rgb):
    """Pillow's L conversion: (R 19595 + G 38470 + B 7471 + 2^15) >> 16."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def _blend(a, b, alpha):
    """Pillow's Image.blend for 0 <= alpha <= 1: uint8(a + alpha * (b - a)), in float32, truncated."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a + np.float32(alpha) * (b - a)).astype(np.uint8)


def test_colour_jitter_has_torchvision_pil_semantics_on_uint8():
    """brightness = blend(black, img, b); contrast = blend(round(mean L), img, c); saturation =
    blend(L(img), img, s): truncated uint8 results, as torchvision's adjust_* on PIL images."""
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    b, c, s = 0.83, 0.91, 0.87
    bright = _blend(np.zeros_like(rgb), rgb, b)
    mean = int(_pil_grey(bright).mean() + 0.5)
    contrast = _blend(np.full_like(rgb, mean), bright, c)
    want = _blend(np.repeat(_pil_grey(contrast)[..., None], 3, -1), contrast, s)
    got = np.asarray(augment.adjust_colour(Image.fromarray(rgb), (b, c, s)))
    np.testing.assert_array_equal(got, want)
    assert np.abs(got.astype(int) - np.round(rgb * b * c * s)).max() > 0  # not a plain float scaling


def test_draws_follow_the_official_probabilities_and_ranges():
    aug = load_config("struct_decoder").data.augment
    draws = [augment.draw(0, i, aug) for i in range(4000)]
    for name, hits in (("flip", [d.flip for d in draws]), ("rotate", [d.rotate_deg != 0 for d in draws]),
                       ("colour", [d.colour is not None for d in draws])):
        assert abs(np.mean(hits) - 0.5) < 0.04, name   # 5 sigma of a fair coin over 4000 draws
    angles = np.array([d.rotate_deg for d in draws if d.rotate_deg])
    assert angles.min() >= -5.0 and angles.max() <= 4.99       # randrange(-500, 500) / 100
    np.testing.assert_allclose(angles * 100, np.round(angles * 100), atol=1e-9)  # 0.01 degree steps
    assert angles.min() < -4.9 and angles.max() > 4.9
    factors = np.array([d.colour for d in draws if d.colour is not None])
    assert factors.min() >= 0.8 and factors.max() <= 1.0 and factors.std(axis=0).min() > 0.05
    assert draws[:50] == [augment.draw(0, i, aug) for i in range(50)]  # a pure function of (seed, index)
    assert draws[:50] != [augment.draw(1, i, aug) for i in range(50)]


def _official_sequence(image_png: bytes, depth_png: bytes, size, d: augment.Draws):
    """transform.RandomImgAugment's train phase, written out step by step from the official code."""
    h, w = size
    img = Image.open(io.BytesIO(image_png)).convert("RGB").resize((w, h), Image.BICUBIC)
    depth = Image.open(io.BytesIO(depth_png)).resize((w, h), Image.BICUBIC)
    arr = np.array(depth, dtype=np.float32)
    arr[arr > 8000.0] = 8000.0
    arr /= 8000.0
    arr[arr < 0.0] = 0.0
    depth = Image.fromarray(arr, "F")
    if d.flip:
        img, depth = img.transpose(Image.FLIP_LEFT_RIGHT), depth.transpose(Image.FLIP_LEFT_RIGHT)
    if d.rotate_deg:
        img, depth = img.rotate(d.rotate_deg, Image.BICUBIC), depth.rotate(d.rotate_deg, Image.BICUBIC)
    depth = np.array(depth, dtype=np.float32) * 2.0 - 1.0
    if d.colour is not None:
        img = augment.adjust_colour(img, d.colour)
    return (np.asarray(img, np.float32) / 255 - 0.5) / 0.5, depth


def test_pipeline_examples_are_the_official_augmentation_of_their_frames(vkitti):
    """Each pipeline example equals the official sequence applied to its frame with its draws."""
    cfg = _cfg(vkitti, shuffle_buffer=1, batch_size=5)  # no shuffling: stream index i is frame i
    builder = pipeline.builder(cfg)
    raw = list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False, decoders={
        "image": tfds.decode.SkipDecoding(), "depth": tfds.decode.SkipDecoding()})))
    batch = next(pipeline.train_iterator(cfg))
    kinds = set()
    for i in range(5):
        d = augment.draw(cfg.shuffle_seed, i, cfg.augment)
        kinds |= {("flip", d.flip), ("rotate", bool(d.rotate_deg)), ("colour", d.colour is not None)}
        image, depth = _official_sequence(raw[i]["image"], raw[i]["depth"], SIZE, d)
        np.testing.assert_array_equal(batch["image"][i], image)
        np.testing.assert_array_equal(batch["depth"][i, ..., 0], depth)
    assert len(kinds) >= 5  # the frames exercise flips, rotations and colour both ways


def test_resume_at_step_equals_uninterrupted(vkitti):
    # 10 examples, batch 4: step 3 starts inside epoch 1 (elements 12..15)
    full = _take(pipeline.train_iterator(_cfg(vkitti)), 7)
    resumed = _take(pipeline.train_iterator(_cfg(vkitti), start_step=3), 4)
    for a, b in zip(full[3:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_pipelines_run_without_the_autotune_model_thread(vkitti, tmp_path):
    """With tf.data autotuning, deleting an iterator that had run for minutes blocked for up
    to 60 s per pipeline (see pipeline.pipeline_options): every pipeline must turn it off."""
    from s2r_jax.data.style_images import style_dataset
    for i in range(4):
        Image.fromarray(np.full((40, 60, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    datasets = {"train": pipeline.train_dataset(_cfg(vkitti)),
                "eval": pipeline.eval_dataset(_cfg(vkitti), image_size=SIZE, batch_size=3),
                "style": style_dataset(str(tmp_path), (32, 48), 4)}
    for name, ds in datasets.items():
        assert ds.options().autotune.enabled is False, name
        assert ds.options().deterministic is True, name
        assert next(iter(tfds.as_numpy(ds))) is not None, name  # and they still run


def test_seeded_and_deterministic(vkitti):
    a = _take(pipeline.train_iterator(_cfg(vkitti)), 3)
    b = _take(pipeline.train_iterator(_cfg(vkitti)), 3)
    c = _take(pipeline.train_iterator(_cfg(vkitti, shuffle_seed=1)), 3)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


def test_hosts_read_their_rows_of_one_global_order(vkitti):
    """Any split of a global batch's rows between hosts gives exactly the rows of the one-host
    batch, for every step, also after resuming: the data does not depend on the topology."""
    cfg = _cfg(vkitti)
    whole = _take(pipeline.train_iterator(cfg, start_step=1), 4)
    for rows in ((0, 1), (2, 3), (0, 2), (3,)):
        part = _take(pipeline.train_iterator(cfg, start_step=1, rows=rows), 4)
        for w, p in zip(whole, part):
            for k in w:
                np.testing.assert_array_equal(w[k][list(rows)], p[k])
    with pytest.raises(ValueError, match="not distinct rows of a global batch of 4"):
        pipeline.train_dataset(cfg, rows=(0, 4))


def test_host_rows_and_global_batch_on_8_devices(vkitti):
    cfg = _cfg(vkitti, batch_size=8, num_examples=0)
    local = next(pipeline.train_iterator(cfg))
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    assert batching.host_rows(mesh, 16) == tuple(range(16))  # one process holds every row
    batch = batching.global_batch(local, mesh, 8)
    assert batch["image"].shape == (8, *SIZE, 3) and len(batch["image"].sharding.device_set) == 8
    assert batch["image"].addressable_shards[3].data.shape == (1, *SIZE, 3)
    np.testing.assert_array_equal(batching.local_rows(batch["depth"]), local["depth"])
    prefetched = list(batching.prefetch_to_mesh(iter([local, local, local]), mesh, 8, size=2))
    assert len(prefetched) == 3
    np.testing.assert_array_equal(np.asarray(prefetched[2]["image"]), local["image"])
    with pytest.raises(ValueError, match="6 is not divisible by the 8 devices"):
        batching.check_divisible(6, mesh, "config.data.batch_size")


def test_split_smaller_than_batch_is_an_error(vkitti):
    with pytest.raises(ValueError, match="fewer than the global batch of 16"):
        pipeline.train_dataset(_cfg(vkitti, batch_size=16))


def test_eval_images_are_the_official_test_preprocessing(vkitti):
    cfg = _cfg(vkitti)
    ds = pipeline.eval_dataset(cfg, image_size=SIZE, batch_size=3)
    batches = list(tfds.as_numpy(ds))
    first = batches[0]
    name = first["name"][0].decode().split("/", 1)[1]
    rgb = imageio.read_rgb(vkitti / "raw" / "rgb" / name)
    np.testing.assert_array_equal(first["image"][0], preprocessing.model_input(rgb, SIZE))
    want = imageio.read_png16(vkitti / "raw" / "depth" / name) * np.float32(0.01)
    np.testing.assert_array_equal(first["gt"][0], want)  # original resolution, metres
    assert first["gt"].shape == (3, 60, 200) and (first["gt_shape"] == [60, 200]).all()
    # 10 frames padded to 4 global batches of 3; frames carry their split index
    assert [int(b["real"].sum()) for b in batches] == [3, 3, 3, 1]
    assert np.concatenate([b["index"][b["real"]] for b in batches]).tolist() == list(range(10))
    # a host's rows of each batch
    rows = list(tfds.as_numpy(pipeline.eval_dataset(cfg, image_size=SIZE, batch_size=3, rows=(1,))))
    assert [int(b["index"][0]) for b in rows] == [1, 4, 7, -1]
    with pytest.raises(ValueError, match="no ground truth 'improved'"):
        pipeline.eval_dataset(cfg, ground_truth="improved", image_size=SIZE, batch_size=1)
    # float64 images for exactness checks: the same preprocessing in float64
    f64 = next(iter(tfds.as_numpy(pipeline.eval_dataset(cfg, image_size=SIZE, batch_size=1, dtype="float64"))))
    np.testing.assert_array_equal(f64["image"][0], preprocessing.model_input(rgb, SIZE, np.float64))


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def kitti_mini(tmp_path_factory):
    d = tmp_path_factory.mktemp("kitti")
    build.build("kitti_eigen", os.path.join(FIXTURES, "kitti_raw_mini"), str(d / "tfds"),
                test_list=os.path.join(FIXTURES, "kitti_mini_test.txt"),
                train_list=os.path.join(FIXTURES, "kitti_mini_test.txt"))
    return d


def test_zoedepth_protocol_images_are_kb_cropped_before_the_resize(kitti_mini):
    """image_crop='kb' feeds the model the KB-cropped frame (ZoeDepth's KITTI protocol); the
    ground truth stays whole."""
    cfg = load_config("eval_kitti").data
    cfg.data_dir = str(kitti_mini / "tfds")
    rgb = imageio.read_rgb(os.path.join(FIXTURES, "kitti_raw_mini", open(os.path.join(
        FIXTURES, "kitti_mini_test.txt")).read().split()[0]))
    for crop, want in (("kb", preprocessing.kb_crop(rgb)), ("none", rgb)):
        batch = next(iter(tfds.as_numpy(pipeline.eval_dataset(cfg, image_size=(96, 320), batch_size=1,
                                                              image_crop=crop))))
        np.testing.assert_array_equal(batch["image"][0], preprocessing.model_input(want, (96, 320)))
        assert batch["gt"].shape[1:] == (375, 1242)
    assert preprocessing.kb_crop(rgb).shape == (352, 1216, 3)


def test_sparse_kitti_ground_truth_is_never_interpolated(kitti_mini):
    fixtures = FIXTURES
    cfg = load_config("finetune_kitti", "local").data
    cfg.data_dir, cfg.batch_size, cfg.image_size, cfg.num_examples = str(kitti_mini / "tfds"), 1, (96, 320), 0
    assert dataset_spec("kitti_eigen").ground_truth().sparse
    gt = np.load(os.path.join(fixtures, "kitti_golden.npz"))["depth_camera_z"]
    allowed = np.unique(np.minimum(gt[gt > 0], 80.0) / 80.0 * 2 - 1)
    for b in _take(pipeline.train_iterator(cfg), 3):
        depth, mask = b["depth"][0, ..., 0], b["mask"][0, ..., 0]
        assert 0 < mask.mean() < 0.5  # sparse
        valid = depth[mask > 0]
        # every valid value is one of the original measurements (nearest resize/rotate), none blended
        assert np.all(np.isin(valid, allowed.astype(np.float32)))
        assert np.all(depth[mask == 0] == -1.0)  # holes are depth 0 m -> -1
