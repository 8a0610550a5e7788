"""`python -m s2r_jax.convert`: real .pth files in, a real orbax checkpoint out, and back (--to_official)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import golden
from s2r_jax import checkpoint, convert, weights
from s2r_jax.models import S2RDepthNet

NETWORKS = ("struct_encoder", "struct_decoder", "dsa", "depth_net")
# narrow as configs' :local widths, but with the trunk's channels growing at layers 3..6 as the official
# ones do, so that every layer the official layout has (e.g. each level's downsample) is built
NARROW = dict(encoder_dim=4, depth_ngf=4, dsa_channels=(4, 4, 8, 12, 16, 24, 24, 24))


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


@pytest.fixture(scope="module")
def converted(pth_files, tmp_path_factory):
    """The four golden .pth files converted by the CLI: (checkpoint dir, its stdout)."""
    out = tmp_path_factory.mktemp("converted") / "ckpt"
    res = _run_cli(*(f"--{n}={p}" for n, p in pth_files.items()), f"--output={out}")
    assert res.returncode == 0, res.stderr
    return out, res.stdout


def test_help_documents_every_flag():
    res = _run_cli("--help")  # absl's --help exits 1 by design; what matters is what it prints
    assert "Convert the official S2R-DepthNet" in res.stdout
    for flag in ("--struct_encoder", "--struct_decoder", "--dsa", "--depth_net", "--drn_imagenet", "--output",
                 "--overwrite", "--to_official", "--step", "--[no]module_prefix"):
        assert flag in res.stdout, flag


def test_cli_converts_and_checkpoint_reproduces_official_outputs(converted):
    out, stdout = converted
    assert "87,438,070 parameters" in stdout
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


# ----------------------------------------------------------------------------- --to_official


def _load_pth(path):
    return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


def test_to_official_round_trip_is_bit_identical(pth_files, converted, tmp_path):
    """official .pth -> checkpoint -> --to_official: the same keys (num_batches_tracked and the
    released files' `module.` prefix included) and the same bits, in the official layout."""
    out = tmp_path / "pth"
    res = _run_cli(f"--to_official={converted[0]}", f"--output={out}")
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out)) == sorted(f"{n}.pth" for n in NETWORKS)  # no temporary file left
    for n in NETWORKS:
        assert f"wrote {out / n}.pth" in res.stdout
        original, exported = _load_pth(pth_files[n]), _load_pth(out / f"{n}.pth")
        assert set(exported) == set(original), n
        for k, a in original.items():
            assert exported[k].dtype == a.dtype and np.array_equal(exported[k], a), k
        # what load_state_dict(strict=True) checks, against the official layout: keys and shapes
        layout = golden.LAYOUT[n]
        plain = weights.strip_prefix(exported)
        assert set(plain) == set(layout), n
        assert all(tuple(plain[k].shape) == tuple(layout[k]["shape"]) for k in layout), n
        assert all(plain[k].dtype == (np.int64 if k.endswith("num_batches_tracked") else np.float32) for k in plain)


@pytest.fixture(scope="module")
def narrow():
    """Shapes and random variables of a narrow S2RDepthNet (random, so a swapped leaf shows)."""
    model = S2RDepthNet(**NARROW)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 96, 96, 3))))
    rng = np.random.default_rng(0)
    return shapes, jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)


def test_narrow_model_exports_and_imports_back(narrow, monkeypatch):
    shapes, variables = narrow
    p, b = variables["params"], variables["batch_stats"]
    sds = {n: weights.export_state_dict(n, variables) for n in NETWORKS}
    for n in NETWORKS:  # the official keys whatever the widths
        assert set(sds[n]) == set(golden.LAYOUT[n]), n
    # the inverse transforms, leaf by leaf against the variables
    np.testing.assert_array_equal(sds["dsa"]["E.base.3.0.conv1.weight"],
                                  p["dsa"]["trunk"]["layer3_0"]["conv1"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(sds["depth_net"]["deconv3.model.4.weight"],
                                  p["depth_net"]["deconv3"]["deconv"]["kernel"].transpose(2, 3, 0, 1))
    assert sds["depth_net"]["conv1.1.weight"].shape == (4, 1, 7, 7)
    bn = {"weight": p["struct_decoder"]["up1"]["bn1"]["scale"], "bias": p["struct_decoder"]["up1"]["bn1"]["bias"],
          "running_mean": b["struct_decoder"]["up1"]["bn1"]["mean"],
          "running_var": b["struct_decoder"]["up1"]["bn1"]["var"]}
    for leaf, want in bn.items():
        np.testing.assert_array_equal(sds["struct_decoder"][f"up1.bn1.{leaf}"], want)
    nbt = sds["struct_decoder"]["up1.bn1.num_batches_tracked"]
    assert nbt.dtype == np.int64 and nbt.shape == () and nbt == 0
    prelu = [k for k, s in golden.LAYOUT["depth_net"].items() if s["kind"] == "PReLU"]
    assert len(prelu) == 18 and all(np.array_equal(sds["depth_net"][k], p["depth_net"]["prelu"]) for k in prelu)
    # and importing the export against the narrow shapes gives the variables back, exactly
    monkeypatch.setattr(weights, "_flax_shapes", lambda sub: {c: shapes[c].get(sub, {}) for c in shapes})
    for n in NETWORKS:
        back = weights.import_state_dict(n, sds[n])
        for col in back:
            jax.tree.map(np.testing.assert_array_equal, back[col][n], variables[col][n])
        assert set(back) == {c for c in variables if n in variables[c]}


def test_export_names_missing_and_unexpected_leaves(narrow):
    _, variables = narrow
    v = jax.tree.map(lambda a: a, variables)  # a copy to edit
    del v["batch_stats"]["depth_net"]["bn1"]["var"]
    del v["params"]["depth_net"]["prelu"]
    v["params"]["depth_net"]["conv2"]["prelu_a"] = np.ones(1, np.float32)  # a per-block slope: not official
    with pytest.raises(weights.WeightExportError) as e:
        weights.export_state_dict("depth_net", v)
    msg = str(e.value)
    assert "depth_net" in msg and "missing keys (2)" in msg
    assert "batch_stats/depth_net/bn1/var" in msg and "params/depth_net/prelu" in msg
    assert "unexpected keys (1)" in msg and "params/depth_net/conv2/prelu_a" in msg and "ONE PReLU" in msg
    with pytest.raises(weights.WeightExportError, match="no 'dsa' module"):
        weights.export_state_dict("dsa", {"params": {"depth_net": {}}})


def test_a_trunk_without_the_official_downsamples_is_refused():
    """configs' :local trunk (4, 4, 8, 8, 16, 16, ...) builds no downsample where its width stays."""
    model = S2RDepthNet(encoder_dim=4, depth_ngf=4, dsa_channels=(4, 4, 8, 8, 16, 16, 16, 16))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 96, 96, 3))))
    v = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)
    with pytest.raises(weights.WeightExportError, match="params/dsa/trunk/layer6_0/downsample_conv/kernel") as e:
        weights.export_state_dict("dsa", v)
    assert "layer5_0" not in str(e.value) and "downsample at layers 3 to 6" in str(e.value)


def test_to_official_subset_overwrite_and_errors(narrow, tmp_path):
    _, variables = narrow
    sub = {c: {"struct_decoder": variables[c]["struct_decoder"]} for c in variables}
    # written as a sharded run writes it: arrays split over 8 devices where their last axis allows
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.tree.map(lambda a: jax.device_put(a, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(*[None] * (a.ndim - 1), "data" if a.shape[-1] % 8 == 0 else None))), sub)
    assert any(len(a.sharding.device_set) == 8 and not a.is_fully_replicated for a in jax.tree.leaves(sharded))
    ckpt, out = tmp_path / "ckpt", tmp_path / "pth"
    convert.write_checkpoint(sharded, {"written_by": "test"}, str(ckpt))
    paths = convert.to_official(str(ckpt), str(out))
    assert paths == {"struct_decoder": str(out / "struct_decoder.pth")}
    sd = _load_pth(out / "struct_decoder.pth")
    assert set(sd) == {"module." + k for k in golden.LAYOUT["struct_decoder"]}  # as the released file
    want = weights.export_state_dict("struct_decoder", sub)
    assert all(np.array_equal(sd["module." + k], a) for k, a in want.items())
    before = (out / "struct_decoder.pth").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert.to_official(str(ckpt), str(out))
    assert (out / "struct_decoder.pth").read_bytes() == before
    convert.to_official(str(ckpt), str(out), overwrite=True, step=0, module_prefix=False)
    assert set(_load_pth(out / "struct_decoder.pth")) == set(golden.LAYOUT["struct_decoder"])
    assert sorted(os.listdir(out)) == ["struct_decoder.pth"]

    with pytest.raises(checkpoint.CheckpointError, match="no step 3"):
        convert.to_official(str(ckpt), str(tmp_path / "x"), step=3)
    zoe = tmp_path / "zoe"
    convert.write_checkpoint(sub, {"family": "zoedepth", "kind": "n"}, str(zoe))
    with pytest.raises(checkpoint.CheckpointError, match="ZoeDepth checkpoint"):
        convert.to_official(str(zoe), str(tmp_path / "x"))
    other = tmp_path / "other"
    convert.write_checkpoint({"params": {"metric_head": {"w": np.zeros(2, np.float32)}}}, {}, str(other))
    with pytest.raises(checkpoint.CheckpointError, match=f"{other} .*holds none of the networks"):
        convert.to_official(str(other), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_to_official_cli_names_a_missing_checkpoint(tmp_path):
    res = _run_cli(f"--to_official={tmp_path / 'nowhere'}", f"--output={tmp_path / 'pth'}")
    assert res.returncode == 1
    assert f"{tmp_path / 'nowhere'} does not exist" in res.stderr
    assert not (tmp_path / "pth").exists()
