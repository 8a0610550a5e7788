"""`python -m s2r_jax.convert`: real .pth files in, a real orbax checkpoint out."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

import golden
from s2r_jax import checkpoint, convert
from s2r_jax.models import S2RDepthNet

NETWORKS = ("struct_encoder", "struct_decoder", "dsa", "depth_net")


def _save_pth(path, sd, prefix=""):
    torch.save({prefix + k: torch.from_numpy(v) for k, v in sd.items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def pth_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pth")
    # the released decoder/DSA/DepthNet checkpoints carry DataParallel's prefix
    return {n: _save_pth(d / f"{n}.pth", golden.state_dict(n), "" if n == "struct_encoder" else "module.")
            for n in NETWORKS}


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "s2r_jax.convert", *args], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_help_documents_every_flag():
    res = _run_cli("--help")  # absl's --help exits 1 by design; what matters is what it prints
    assert "Convert the official S2R-DepthNet" in res.stdout
    for flag in ("--struct_encoder", "--struct_decoder", "--dsa", "--depth_net", "--drn_imagenet", "--output",
                 "--overwrite"):
        assert flag in res.stdout, flag


def test_cli_converts_and_checkpoint_reproduces_official_outputs(pth_files, tmp_path):
    out = tmp_path / "ckpt"
    res = _run_cli(*(f"--{n}={p}" for n, p in pth_files.items()), f"--output={out}")
    assert res.returncode == 0, res.stderr
    assert "87,438,070 parameters" in res.stdout
    variables, meta = checkpoint.load_variables(out)
    assert meta["modules"] == sorted(NETWORKS)
    image = golden.nhwc(golden.GOLDEN["input"])
    depth = jax.jit(S2RDepthNet().apply)(variables, image)["depth"][-1]
    want = golden.nhwc(golden.GOLDEN["eval_depth_3"])
    assert float(np.max(np.abs(np.asarray(depth) - want))) <= 1e-4


def test_subset_and_drn_imagenet(tmp_path):
    drn = _save_pth(tmp_path / "drn.pth", golden.state_dict("drn_d_22_imagenet"))
    enc = _save_pth(tmp_path / "enc.pth", golden.state_dict("struct_encoder"))
    convert.convert({"struct_encoder": enc, "drn_d_22_imagenet": drn}, str(tmp_path / "out"))
    variables, _ = checkpoint.load_variables(tmp_path / "out")
    assert set(variables["params"]) == {"struct_encoder", "dsa"}
    assert set(variables["params"]["dsa"]) == {"trunk"}


def test_bad_files_write_nothing_and_name_every_problem(pth_files, tmp_path):
    sd = golden.state_dict("depth_net")
    del sd["output1.model.1.weight"]
    broken = _save_pth(tmp_path / "broken.pth", sd)
    wrong = _save_pth(tmp_path / "wrong.pth", golden.state_dict("struct_decoder"))
    out = tmp_path / "never"
    res = _run_cli(f"--struct_encoder={pth_files['struct_encoder']}", f"--depth_net={broken}", f"--dsa={wrong}",
                   f"--output={out}")
    assert res.returncode == 1
    assert "broken.pth" in res.stderr and "output1.model.1.weight" in res.stderr
    assert "wrong.pth" in res.stderr and "nothing was written" in res.stderr
    assert not out.exists()


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        convert.convert({"depth_net": str(bad)}, str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert.convert({"depth_net": str(tmp_path / "missing.pth")}, str(tmp_path / "out"))


def test_refuses_to_overwrite_without_flag(pth_files, tmp_path):
    out = tmp_path / "ckpt"
    convert.convert({"struct_encoder": pth_files["struct_encoder"]}, str(out))
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert.convert({"struct_encoder": pth_files["struct_encoder"]}, str(out))
    convert.convert({"struct_decoder": pth_files["struct_decoder"]}, str(out), overwrite=True)
    variables, _ = checkpoint.load_variables(out)
    assert set(variables["params"]) == {"struct_decoder"}
    # --overwrite never deletes a directory that holds more than a checkpoint
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds more than a checkpoint"):
        convert.convert({"struct_decoder": pth_files["struct_decoder"]}, str(out), overwrite=True)
    assert (out / "notes.txt").exists()


def test_restore_onto_a_mesh(pth_files, tmp_path):
    out = tmp_path / "ckpt"
    expected = convert.convert({"struct_decoder": pth_files["struct_decoder"]}, str(out))
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    variables, _ = checkpoint.load_variables(out, sharding=replicated)
    leaf = variables["params"]["struct_decoder"]["up1"]["conv1"]["kernel"]
    assert leaf.sharding == replicated
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), variables, expected)


def test_overwrite_keeps_the_old_checkpoint_until_the_new_one_is_complete(pth_files, tmp_path, monkeypatch):
    """An interrupted --overwrite must leave the previous checkpoint restorable and no partial one."""
    out = tmp_path / "ckpt"
    convert.convert({"struct_encoder": pth_files["struct_encoder"]}, str(out))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint.Checkpointer, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert.convert({"struct_decoder": pth_files["struct_decoder"]}, str(out), overwrite=True)
    monkeypatch.undo()
    variables, _ = checkpoint.load_variables(out)
    assert set(variables["params"]) == {"struct_encoder"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind
