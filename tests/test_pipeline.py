"""The training and evaluation pipelines, and feeding a sharded global batch."""
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_trees
from s2r_jax.data import batching, build, imageio, pipeline
from s2r_jax.data.config import data_config

SIZE = (48, 160)


@pytest.fixture(scope="module")
def vkitti(tmp_path_factory):
    """10 random frames, built as virtual_kitti/1.3.1 'train'."""
    d = tmp_path_factory.mktemp("vk")
    lst = data_trees.write_vkitti1(d / "raw", n=10, h=60, w=200)
    build.build("virtual_kitti", str(d / "raw"), str(d / "tfds"), "1.3.1", split_files={"train": lst})
    return d


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    """Frames whose red channel encodes their depth: R = d / 80 m * 255 (exactly, for
    d in multiples of 16 m), so any geometric transform applied identically to both
    keeps image R (in [-1, 1]) equal to depth (in [-1, 1])."""
    d = tmp_path_factory.mktemp("coupled")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        levels = rng.integers(0, 6, (6, 10)).repeat(10, 0).repeat(20, 1)  # blocky: 60x200
        rgb = np.stack([levels * 51, rng.integers(0, 256, levels.shape), np.full(levels.shape, 7)], -1)
        rel = f"0001/clone/{i:05d}.png"
        os.makedirs(d / "raw" / "rgb" / "0001" / "clone", exist_ok=True)
        os.makedirs(d / "raw" / "depth" / "0001" / "clone", exist_ok=True)
        imageio.write_rgb(d / "raw" / "rgb" / rel, rgb.astype(np.uint8))
        imageio.write_png16(d / "raw" / "depth" / rel, (levels * 1600).astype(np.uint16))
        lines.append(f"rgb/{rel} depth/{rel}")
    (d / "list.txt").write_text("\n".join(lines) + "\n")
    build.build("virtual_kitti", str(d / "raw"), str(d / "tfds"), "1.3.1", split_files={"train": str(d / "list.txt")})
    return d


def _cfg(d, **kw):
    return data_config(**{"data_dir": str(d / "tfds"), "image_size": SIZE, "batch_size": 4, "shuffle_buffer": 10, **kw})


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_batches_shapes_and_ranges(vkitti):
    b = next(pipeline.train_iterator(_cfg(vkitti)))
    assert b["image"].shape == (4, *SIZE, 3) and b["depth"].shape == (4, *SIZE, 1) and b["mask"].shape == (4, *SIZE, 1)
    for k in ("image", "depth"):
        assert b[k].dtype == np.float32 and b[k].min() >= -1 and b[k].max() <= 1


def test_resume_at_step_equals_uninterrupted(vkitti):
    # 10 examples, batch 4: step 3 starts inside epoch 1 (elements 12..15)
    full = _take(pipeline.train_iterator(_cfg(vkitti)), 7)
    resumed = _take(pipeline.train_iterator(_cfg(vkitti), start_step=3), 4)
    for a, b in zip(full[3:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_seeded_and_deterministic(vkitti):
    a = _take(pipeline.train_iterator(_cfg(vkitti)), 3)
    b = _take(pipeline.train_iterator(_cfg(vkitti)), 3)
    c = _take(pipeline.train_iterator(_cfg(vkitti, seed=1)), 3)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


def test_geometric_augmentations_move_image_and_depth_together(coupled):
    plain = _cfg(coupled, augment=dict(flip_prob=0.0, rotate_prob=0.0, max_rotation_deg=5.0, color_prob=0.0,
                                       color_low=0.8, color_high=1.0))
    moved = _cfg(coupled, augment=dict(flip_prob=1.0, rotate_prob=1.0, max_rotation_deg=5.0, color_prob=0.0,
                                       color_low=0.8, color_high=1.0))
    p = next(pipeline.train_iterator(plain))
    m = next(pipeline.train_iterator(moved))
    np.testing.assert_allclose(p["image"][..., 0:1], p["depth"], atol=1e-5)
    np.testing.assert_allclose(m["image"][..., 0:1], m["depth"], atol=1e-5)  # same flip and angle for both
    assert np.mean(np.abs(m["depth"] - p["depth"])) > 0.05                   # and they did move
    assert m["mask"].min() == 0 and p["mask"].min() == 1                     # rotated-in corners flagged


def test_color_jitter_changes_only_the_image(coupled):
    aug = dict(flip_prob=0.0, rotate_prob=0.0, max_rotation_deg=5.0, color_prob=1.0, color_low=0.8, color_high=1.0)
    plain = next(pipeline.train_iterator(_cfg(coupled, augment={**aug, "color_prob": 0.0})))
    jit = next(pipeline.train_iterator(_cfg(coupled, augment=aug)))
    np.testing.assert_array_equal(jit["depth"], plain["depth"])
    assert np.mean(np.abs(jit["image"] - plain["image"])) > 1e-3
    # brightness/contrast/saturation factors <= 1 never brighten the mean
    assert jit["image"].mean() <= plain["image"].mean() + 1e-6


def test_hosts_get_disjoint_shards_covering_the_split(vkitti):
    cfg = _cfg(vkitti)
    builder = tfds.builder("virtual_kitti", config="1.3.1", data_dir=cfg.data_dir)
    names = [{ex["name"] for ex in tfds.as_numpy(builder.as_dataset(split=pipeline.host_split(cfg, i, 2)))}
             for i in range(2)]
    assert names[0].isdisjoint(names[1]) and len(names[0] | names[1]) == 10
    two_hosts = [next(pipeline.train_iterator(cfg, process_index=i, process_count=2)) for i in range(2)]
    assert two_hosts[0]["image"].shape[0] == 2 and not np.array_equal(two_hosts[0]["image"], two_hosts[1]["image"])


def test_global_batch_on_8_devices(vkitti):
    cfg = _cfg(vkitti, batch_size=8)
    local = next(pipeline.train_iterator(cfg))
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    batch = batching.global_batch(local, mesh)
    assert batch["image"].shape == (8, *SIZE, 3)
    assert len(batch["image"].sharding.device_set) == 8
    assert batch["image"].addressable_shards[3].data.shape == (1, *SIZE, 3)
    np.testing.assert_array_equal(np.asarray(batch["depth"]), local["depth"])
    prefetched = list(batching.prefetch_to_mesh(iter([local, local, local]), mesh, size=2))
    assert len(prefetched) == 3
    np.testing.assert_array_equal(np.asarray(prefetched[2]["image"]), local["image"])


def test_split_smaller_than_batch_is_an_error(vkitti):
    with pytest.raises(ValueError, match="fewer than its batch of 16"):
        pipeline.train_dataset(_cfg(vkitti, batch_size=16))


def test_eval_keeps_original_resolution_ground_truth(vkitti):
    cfg = _cfg(vkitti)
    batch = next(iter(tfds.as_numpy(pipeline.eval_dataset(cfg, batch_size=3))))
    assert batch["image"].shape == (3, *SIZE, 3)
    assert batch["gt"].shape == (3, 60, 200) and (batch["gt_shape"] == [60, 200]).all()
    name = batch["name"][0].decode().split("/", 1)[1]
    want = imageio.read_png16(vkitti / "raw" / "depth" / name) * 0.01
    np.testing.assert_allclose(batch["gt"][0], want, rtol=1e-6)
    with pytest.raises(ValueError, match="no ground truth 'improved'"):
        pipeline.eval_dataset(cfg, gt="improved")


def test_sparse_kitti_ground_truth_is_never_interpolated(tmp_path):
    fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
    build.build("kitti_eigen", os.path.join(fixtures, "kitti_raw_mini"), str(tmp_path / "tfds"),
                test_list=os.path.join(fixtures, "kitti_mini_test.txt"),
                train_list=os.path.join(fixtures, "kitti_mini_test.txt"))
    cfg = data_config(dataset="kitti_eigen", tfds_config="", data_dir=str(tmp_path / "tfds"), batch_size=1,
                      image_size=(96, 320), shuffle_buffer=4)
    gt = np.load(os.path.join(fixtures, "kitti_golden.npz"))["depth_camera_z"]
    allowed = np.unique(np.minimum(gt[gt > 0], 80.0) / 80.0 * 2 - 1)
    for b in _take(pipeline.train_iterator(cfg, process_index=0, process_count=1), 3):
        depth, mask = b["depth"][0, ..., 0], b["mask"][0, ..., 0]
        assert 0 < mask.mean() < 0.5  # sparse
        valid = depth[mask > 0]
        # every valid value is one of the original measurements (nearest resize/rotate), none blended
        assert np.all(np.isin(valid, allowed.astype(np.float32)))
        assert np.all(depth[mask == 0] == -1.0)  # holes are depth 0 m -> -1
