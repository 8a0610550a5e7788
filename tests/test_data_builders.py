"""TFDS builders read the real on-disk formats; bad files stop the build, named."""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_trees
from s2r_jax.data import build, imageio
from s2r_jax.data.lists import DataFormatError


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


@pytest.mark.parametrize("archive_names", [False, True])
def test_virtual_kitti_131_round_trip(tmp_path, archive_names):
    lst = data_trees.write_vkitti1(tmp_path / "raw", n=4, archive_names=archive_names)
    b = build.build("virtual_kitti", str(tmp_path / "raw"), str(tmp_path / "tfds"), "1.3.1",
                    split_files={"train": lst})
    assert b.info.splits["train"].num_examples == 4
    rgb_dir, depth_dir = ("vkitti_1.3.1_rgb", "vkitti_1.3.1_depthgt") if archive_names else ("rgb", "depth")
    for ex in _examples(b, "train"):
        rel = ex["name"].decode().split("/", 1)[1]
        np.testing.assert_array_equal(ex["image"], imageio.read_rgb(tmp_path / "raw" / rgb_dir / rel))
        np.testing.assert_array_equal(ex["depth"][..., 0], imageio.read_png16(tmp_path / "raw" / depth_dir / rel))
        assert ex["depth"].dtype == np.uint16 and (ex["depth"][0] == 65535).all()  # sky survives, lossless


def test_virtual_kitti_131_default_lists_are_the_official_ones():
    from s2r_jax.data.builders import VirtualKitti
    lists = VirtualKitti(config="1.3.1")._split_lists()
    counts = {s: sum(1 for line in open(p) if line.strip()) for s, p in lists.items()}
    assert counts == {"train": 20760, "test": 500}


def test_virtual_kitti_2_finds_every_frame(tmp_path):
    n = data_trees.write_vkitti2(tmp_path / "raw")
    b = build.build("virtual_kitti", str(tmp_path / "raw"), str(tmp_path / "tfds"), "2")
    examples = _examples(b, "train")
    assert len(examples) == n == 8
    names = sorted(ex["name"].decode() for ex in examples)
    assert names[0] == "vkitti_2.0.3_rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg"
    ex = examples[0]
    depth = imageio.read_png16(tmp_path / "raw" / ex["name"].decode().replace("vkitti_2.0.3_rgb", "vkitti_2.0.3_depth")
                               .replace("/rgb/", "/depth/").replace("rgb_", "depth_").replace(".jpg", ".png"))
    np.testing.assert_array_equal(ex["depth"][..., 0], depth)


def test_nyu_test_round_trip_in_list_order(tmp_path):
    """Frames are stored in the list's order (predictions files are matched to it), whatever
    that order is: 12 frames in a shuffled, unsorted list (TFDS's hashed order and a sort by
    name would both break it)."""
    lst = data_trees.write_nyu(tmp_path / "raw", n=12)
    lines = open(lst).read().split("\n")[:12]
    order = [5, 10, 9, 6, 0, 3, 8, 1, 7, 11, 4, 2]
    with open(lst, "w") as f:
        f.write("\n".join(lines[i] for i in order) + "\n")
    b = build.build("nyu_depth_test", str(tmp_path / "raw"), str(tmp_path / "tfds"), test_list=lst)
    examples = _examples(b, "test")
    assert [ex["name"].decode() for ex in examples] == [f"bathroom/rgb_{i:05d}.jpg" for i in order]
    examples = sorted(examples, key=lambda ex: ex["name"])
    np.testing.assert_array_equal(examples[1]["depth"][..., 0],
                                  imageio.read_png16(tmp_path / "raw" / "bathroom" / "sync_depth_00001.png"))
    assert examples[0]["focal"] == pytest.approx(518.8579)


def _assert_nothing_built(data_dir, name):
    root = os.path.join(data_dir, name)
    complete = [d for d, _, files in os.walk(root) if "dataset_info.json" in files] if os.path.isdir(root) else []
    assert complete == [], f"a dataset was left behind: {complete}"


@pytest.mark.parametrize("damage, message", [
    ("missing", "no such file"),
    ("corrupt", "not a readable image"),
    ("depth8", "expected a 16-bit single-channel PNG"),
    ("fields", "expected 2 space-separated fields, got 3"),
    ("size", "depth is 10x40 but its image"),
])
def test_bad_files_stop_the_build_naming_them(tmp_path, damage, message):
    raw = tmp_path / "raw"
    lst = data_trees.write_vkitti1(raw, n=4)
    last = raw / "depth" / "0018" / "clone" / "00003.png"
    if damage == "missing":
        os.remove(last)
    elif damage == "corrupt":
        last.write_bytes(last.read_bytes()[:60])
    elif damage == "depth8":
        imageio.write_rgb(last, np.zeros((24, 40, 3), np.uint8))
    elif damage == "fields":
        with open(lst, "a") as f:
            f.write("rgb/0001/clone/00000.png depth/0001/clone/00000.png extra\n")
    elif damage == "size":
        imageio.write_png16(last, np.zeros((10, 40), np.uint16))
    with pytest.raises((DataFormatError, FileNotFoundError), match=message) as e:
        build.build("virtual_kitti", str(raw), str(tmp_path / "tfds"), "1.3.1", split_files={"train": lst})
    named = "list.txt:5" if damage == "fields" else "00003.png"
    assert named in str(e.value)
    if damage == "missing":
        assert "line 4" in str(e.value)
    _assert_nothing_built(str(tmp_path / "tfds"), "virtual_kitti")


def test_build_cli(tmp_path):
    import subprocess
    import sys
    lst = data_trees.write_vkitti1(tmp_path / "raw", n=2)
    res = subprocess.run([sys.executable, "-m", "s2r_jax.data.build", "virtual_kitti", "--config=1.3.1",
                          f"--manual_dir={tmp_path / 'raw'}", f"--data_dir={tmp_path / 'tfds'}",
                          f"--split_file=train={lst}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "train: 2 examples" in res.stdout
    res = subprocess.run([sys.executable, "-m", "s2r_jax.data.build", "nyu_depth_test",
                          f"--manual_dir={tmp_path / 'nothing'}", f"--data_dir={tmp_path / 'tfds'}"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "no such directory" in res.stderr and "sync_depth_%05d.png" in res.stderr


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def test_kitti_eigen_has_the_official_ground_truth_exactly(tmp_path):
    golden = np.load(os.path.join(FIXTURES, "kitti_golden.npz"))
    frame = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    # improved ground truth, in the annotated-depth archive's train/ subfolder
    improved = (np.arange(375 * 1242).reshape(375, 1242) % 5000).astype(np.uint16)
    gt_dir = tmp_path / "annotated" / "train" / "2011_09_26_drive_0002_sync" / "proj_depth" / "groundtruth" / "image_02"
    os.makedirs(gt_dir)
    imageio.write_png16(gt_dir / "0000000069.png", improved)
    improved_list = tmp_path / "improved.txt"
    improved_list.write_text(f"{frame} 2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png "
                             "721.5377\n")
    b = build.build("kitti_eigen", os.path.join(FIXTURES, "kitti_raw_mini"), str(tmp_path / "tfds"),
                    test_list=os.path.join(FIXTURES, "kitti_mini_test.txt"), improved_list=str(improved_list),
                    improved_root=str(tmp_path / "annotated"))
    (ex,) = _examples(b, "test")
    assert ex["name"].decode() == frame
    np.testing.assert_array_equal(ex["depth_camera_z"], golden["depth_camera_z"])
    np.testing.assert_array_equal(ex["depth_velodyne_x"], golden["depth_velodyne_x"])
    np.testing.assert_array_equal(ex["depth_improved"][..., 0], improved)
    assert ex["has_improved"]
    assert ex["focal_times_baseline"] == pytest.approx(float(golden["focal_times_baseline"]), rel=1e-6)


def test_kitti_eigen_bad_velodyne_is_named(tmp_path):
    import shutil
    root = tmp_path / "kitti"
    shutil.copytree(os.path.join(FIXTURES, "kitti_raw_mini"), root)
    velo = root / "2011_09_26" / "2011_09_26_drive_0002_sync" / "velodyne_points" / "data" / "0000000069.bin"
    os.chmod(velo, 0o644)
    velo.write_bytes(velo.read_bytes()[:-3])
    with pytest.raises(DataFormatError, match="0000000069.bin"):
        build.build("kitti_eigen", str(root), str(tmp_path / "tfds"), test_list=os.path.join(FIXTURES, "kitti_mini_test.txt"))
    _assert_nothing_built(str(tmp_path / "tfds"), "kitti_eigen")
