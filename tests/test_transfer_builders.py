"""The zero-shot transfer datasets: each builder reads its dataset's real layout and
encoding (tiny trees written in it), stores the depth in its stated unit, and a bad file
stops the build naming it, leaving nothing that reads as a dataset."""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import transfer_trees
from s2r_jax.data import build, depth_formats, imageio, transfer_sources
from s2r_jax.data.lists import DataFormatError


def _build(name, raw, tmp_path, config=None, image_root=None, **kwargs):
    """Build; return {name: example} in stored order, after checking that every image is
    stored as its file's original bytes (nothing re-encoded). Names are relative to the
    dataset's root: `image_root`, when the archive has a top folder."""
    b = build.build(name, str(raw), str(tmp_path / "tfds"), config, **kwargs)
    assert b.info.disable_shuffling  # else TFDS stores frames in hash order
    split = next(iter(b.info.splits))
    ds = b.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    examples = {ex["name"].decode(): ex for ex in tfds.as_numpy(ds)}
    for key, ex in examples.items():
        assert ex["image"] == ((image_root or raw) / key).read_bytes(), key
    return examples, b


def _assert_nothing_built(tmp_path, name):
    root = tmp_path / "tfds" / name
    complete = [d for d, _, files in os.walk(root) if "dataset_info.json" in files] if root.is_dir() else []
    assert complete == [], f"a dataset was left behind: {complete}"


# ----------------------------------------------------------------------------- round trips


def test_sun_rgbd_undoes_the_bit_rotation(tmp_path):
    lst, expected = transfer_trees.write_sunrgbd(tmp_path / "raw")
    examples, _ = _build("sun_rgbd", tmp_path / "raw", tmp_path, test_list=lst)
    assert list(examples) == list(expected)  # the list's order
    for key, mm in expected.items():
        depth = examples[key]["depth"][..., 0]
        assert depth.dtype == np.uint16
        np.testing.assert_array_equal(depth, mm)
        assert depth[0, 0] == 1 and depth[0, 1] == 8192  # stored 8 and 1: the rotation, by hand


def test_sun_rgbd_packaged_list_is_the_5050_test_images():
    from s2r_jax.data import sources
    lines = [ln for ln in open(sources.packaged_split("sunrgbd", "test.txt")) if ln.strip()]
    assert len(lines) == len(set(lines)) == 5050
    assert all(ln.startswith("SUNRGBD/") and "/image/" in ln for ln in lines)


def test_ibims_depth_as_published_and_masks_combined(tmp_path):
    expected = transfer_trees.write_ibims(tmp_path / "raw")
    examples, _ = _build("ibims", tmp_path / "raw", tmp_path, image_root=tmp_path / "raw" / "ibims1_core_raw")
    assert list(examples) == list(expected)
    for name, (depth, valid) in expected.items():
        np.testing.assert_array_equal(examples[name]["depth"][..., 0], depth)
        np.testing.assert_array_equal(examples[name]["valid"], valid)
        assert 0 < valid.sum() < valid.size


def test_diode_configs_split_indoor_and_outdoor(tmp_path):
    expected = transfer_trees.write_diode(tmp_path / "raw")
    for config, count in (("indoor", 2), ("outdoor", 1)):
        examples, b = _build("diode", tmp_path / "raw", tmp_path, config, image_root=tmp_path / "raw" / "val")
        assert b.info.full_name.startswith(f"diode/{config}") and list(b.info.splits) == ["val"]
        assert len(examples) == count
        for key, ex in examples.items():
            depth, valid = expected[key]
            assert ex["depth"].dtype == np.float32
            np.testing.assert_array_equal(ex["depth"], depth)
            np.testing.assert_array_equal(ex["valid"], valid)


def test_hypersim_planar_depth_from_distance(tmp_path):
    csv_path, expected = transfer_trees.write_hypersim(tmp_path / "raw")
    examples, _ = _build("hypersim", tmp_path / "raw", tmp_path, test_list=csv_path)
    assert list(examples) == list(expected)  # only the public test rows, in the CSV's order
    y, x = np.mgrid[0:768, 0:1024]
    ray = np.sqrt((x - 511.5) ** 2 + (y - 383.5) ** 2 + 886.81 ** 2)  # pixel centres, 60 degree field of view
    for key, distance in expected.items():
        depth = examples[key]["depth"]
        reference = distance.astype(np.float64) * 886.81 / ray
        finite = np.isfinite(reference)
        np.testing.assert_allclose(depth[finite], reference[finite], rtol=1e-6)  # float32 arithmetic
        assert (depth[~finite] == 0).all() and (~finite).sum() == 35  # NaN distance: no ground truth
        assert depth[384, 512] == pytest.approx(float(distance[384, 512]), rel=1e-6)  # on axis, depth = distance


def test_ddad_npy_depth(tmp_path):
    expected = transfer_trees.write_ddad(tmp_path / "raw")
    examples, b = _build("ddad", tmp_path / "raw", tmp_path)
    assert list(b.info.splits) == ["val"] and list(examples) == sorted(expected)
    for key, depth in expected.items():
        np.testing.assert_array_equal(examples[key]["depth"], depth)


def test_diml_outdoor_millimetre_png(tmp_path):
    expected = transfer_trees.write_diml_outdoor(tmp_path / "raw")
    examples, _ = _build("diml_outdoor", tmp_path / "raw", tmp_path)
    assert list(examples) == sorted(expected)
    for key, mm in expected.items():
        np.testing.assert_array_equal(examples[key]["depth"][..., 0], mm)


def test_make3d_laser_grid(tmp_path):
    expected = transfer_trees.write_make3d(tmp_path / "raw")
    examples, _ = _build("make3d", tmp_path / "raw", tmp_path)
    assert list(examples) == sorted(expected)
    for key, grid in expected.items():
        assert examples[key]["depth"].shape == (55, 305)
        np.testing.assert_array_equal(examples[key]["depth"], grid)


def test_cityscapes_depth_from_disparity_and_camera(tmp_path):
    expected = transfer_trees.write_cityscapes(tmp_path / "raw")
    examples, b = _build("cityscapes_depth", tmp_path / "raw", tmp_path)
    assert list(b.info.splits) == ["val"] and list(examples) == sorted(expected)
    for key, (disparity, baseline, fx) in expected.items():
        ex = examples[key]
        assert ex["baseline"] == pytest.approx(baseline) and ex["fx"] == pytest.approx(fx)
        p = disparity.astype(np.float64)
        reference = np.where(p > 1, baseline * fx / np.maximum((p - 1) / 256, 1e-12), 0)
        np.testing.assert_allclose(ex["depth"], reference, rtol=1e-6)
        assert ex["depth"][0, 0] == 0 and ex["depth"][0, 1] == 0  # p = 0 invalid; p = 1 is d = 0: invalid
        assert ex["depth"][0, 2] == pytest.approx(baseline * fx, rel=1e-6)  # p = 257: d = 1 px


@pytest.mark.parametrize("subset", ["test", "foggy"])
def test_driving_stereo_test_and_weather_layouts(tmp_path, subset):
    expected = transfer_trees.write_driving_stereo(tmp_path / "raw", subset)
    if subset != "test":  # the weather sets share the reader; list them without a second build
        frames = transfer_sources.driving_stereo_frames(str(tmp_path / "raw"), subset)
        assert [f.key for f in frames] == sorted(expected)
        return
    examples, _ = _build("driving_stereo", tmp_path / "raw", tmp_path, "test")
    assert list(examples) == sorted(expected)
    for key, depth in expected.items():
        np.testing.assert_array_equal(examples[key]["depth"][..., 0], depth)


# ----------------------------------------------------------------------------- bad inputs


def _corrupt(path):
    path.write_bytes(path.read_bytes()[:40])


def _sun_no_depth(raw):
    os.remove(raw / "SUNRGBD/realsense/lg/2014_10_24-23_11_21-1311000073/depth/0000103_depth.png")


def _ibims_rgb_mask(raw):
    imageio.write_rgb(raw / "ibims1_core_raw/mask_transp/corridor_01.png", np.zeros((12, 16, 3), np.uint8))


def _diode_npy(raw):
    _corrupt(raw / "val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_001_depth.npy")


def _diode_mask_size(raw):
    np.save(raw / "val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_001_depth_mask.npy", np.ones((5, 16)))


def _ddad_nan(raw):
    np.save(raw / "000150_CAMERA_01_0001_depth.npy", np.full((12, 20), np.nan, np.float32))


def _hypersim_shape(raw):
    import h5py
    path = raw / "ai_055_001/images/scene_cam_01_geometry_hdf5/frame.0012.depth_meters.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=np.ones((384, 512), np.float16))


def _make3d_key(raw):
    import scipy.io
    scipy.io.savemat(raw / "Gridlaserdata/depth_sph_corr-op1-p-108t000.mat", {"Position3D": np.ones((55, 305, 4))})


def _make3d_grid(raw):
    import scipy.io
    scipy.io.savemat(raw / "Gridlaserdata/depth_sph_corr-op1-p-108t000.mat", {"Position3DGrid": np.ones((55, 300, 4))})


def _cityscapes_camera(raw):
    (raw / "camera/val/lindau/lindau_000000_000019_camera.json").write_text('{"intrinsic": {"fx": 2262.52}}')


def _driving_stereo_png(raw):
    _corrupt(raw / "test-depth-map/2018-07-16-15-18-53/2018-07-16-15-18-53_2018-07-16-15-37-27-965.png")


BAD = {  # dataset: (writer, config, damage, message, the file the message must name)
    "sun_depth_missing": ("sun_rgbd", transfer_trees.write_sunrgbd, None, _sun_no_depth,
                          "holds 0 PNGs instead of one", "0000103.png"),
    "ibims_mask_not_binary": ("ibims", transfer_trees.write_ibims, None, _ibims_rgb_mask,
                              "expected a single-channel mask PNG", "corridor_01.png"),
    "diode_npy_corrupt": ("diode", transfer_trees.write_diode, "indoor", _diode_npy,
                          "not a readable .npy depth map", "000_001_depth.npy"),
    "diode_mask_size": ("diode", transfer_trees.write_diode, "indoor", _diode_mask_size,
                        "mask is 5x16 but its image", "000_001_depth_mask.npy"),
    "ddad_nan": ("ddad", transfer_trees.write_ddad, None, _ddad_nan, "NaN, infinite or negative",
                 "000150_CAMERA_01_0001_depth.npy"),
    "hypersim_shape": ("hypersim", transfer_trees.write_hypersim, None, _hypersim_shape,
                       "expected HyperSim's 768x1024 distances", "frame.0012.depth_meters.hdf5"),
    "make3d_key": ("make3d", transfer_trees.write_make3d, None, _make3d_key, "expected a Position3DGrid array",
                   "depth_sph_corr-op1-p-108t000.mat"),
    "make3d_grid": ("make3d", transfer_trees.write_make3d, None, _make3d_grid, "expected a 55x305 laser grid",
                    "depth_sph_corr-op1-p-108t000.mat"),
    "cityscapes_camera": ("cityscapes_depth", transfer_trees.write_cityscapes, None, _cityscapes_camera,
                          "extrinsic.baseline", "lindau_000000_000019_camera.json"),
    "driving_stereo_png": ("driving_stereo", transfer_trees.write_driving_stereo, "test", _driving_stereo_png,
                           "not a readable image", "2018-07-16-15-37-27-965.png"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_stop_the_build_naming_them(tmp_path, case):
    name, writer, config, damage, message, named = BAD[case]
    raw = tmp_path / "raw"
    written = writer(raw)
    kwargs = {"test_list": written[0]} if name in ("sun_rgbd", "hypersim") else {}
    damage(raw)
    with pytest.raises((DataFormatError, FileNotFoundError), match=message) as e:
        build.build(name, str(raw), str(tmp_path / "tfds"), config, **kwargs)
    assert named in str(e.value)
    _assert_nothing_built(tmp_path, name)


def test_lists_and_layouts_are_checked_before_reading(tmp_path):
    (tmp_path / "bad.csv").write_text("scene_name,camera_name,frame_id\nai_001_001,cam_00,0\n")
    with pytest.raises(DataFormatError, match=r"bad.csv: not a HyperSim split CSV, missing columns"):
        transfer_sources.read_hypersim_split(str(tmp_path / "bad.csv"))
    (tmp_path / "none.csv").write_text("scene_name,camera_name,frame_id,included_in_public_release,"
                                       "exclude_reason,split_partition_name\nai_001_001,cam_00,0,True,,train\n")
    with pytest.raises(DataFormatError, match="no public-release rows in partition 'test'"):
        transfer_sources.read_hypersim_split(str(tmp_path / "none.csv"))
    lst, _ = transfer_trees.write_sunrgbd(tmp_path / "sun")
    with open(lst, "a") as f:
        f.write("SUNRGBD/kv2/kinect2data/000002/image/0000103.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"0000103.jpg: no such file \(.*test.txt line 3\)"):
        transfer_sources.sunrgbd_frames(str(tmp_path / "sun"), lst)
    with pytest.raises(FileNotFoundError, match="Make3D: expected .*Test134"):
        transfer_sources.make3d_frames(str(tmp_path))
    transfer_trees.write_ddad(tmp_path / "ddad")
    os.remove(tmp_path / "ddad" / "000150_CAMERA_01_0000_depth.npy")
    with pytest.raises(FileNotFoundError, match=r"000150_CAMERA_01_0000_depth.npy: no such file \(depth of "):
        transfer_sources.ddad_frames(str(tmp_path / "ddad"))


def test_depth_readers_by_hand():
    rotated = transfer_trees.sunrgbd_rotate(np.array([[1, 8192, 65535, 1234]], np.uint16))
    np.testing.assert_array_equal(rotated, [[8, 1, 65535, 9872]])
    depth = depth_formats.cityscapes_depth(np.array([[0, 1, 2, 257, 513]], np.uint16), baseline=0.2, fx=2000.0)
    np.testing.assert_allclose(depth, [[0, 0, 0.2 * 2000 * 256, 400.0, 200.0]], rtol=1e-6)


def test_build_cli_accepts_the_transfer_flags(tmp_path):
    import subprocess
    import sys
    lst, _ = transfer_trees.write_sunrgbd(tmp_path / "raw")
    res = subprocess.run([sys.executable, "-m", "s2r_jax.data.build", "make3d", f"--manual_dir={tmp_path / 'raw'}",
                          f"--data_dir={tmp_path / 'tfds'}", f"--test_list={lst}"], capture_output=True, text=True)
    assert res.returncode != 0 and "--test_list does not apply to make3d" in res.stderr
    res = subprocess.run([sys.executable, "-m", "s2r_jax.data.build", "diode", "--config=outdoor",
                          f"--manual_dir={tmp_path / 'raw'}", f"--data_dir={tmp_path / 'tfds'}"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "DIODE val: expected" in res.stderr and "outdoor" in res.stderr
