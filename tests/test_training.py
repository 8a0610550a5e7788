"""Training on CPU with tiny widths and procedural data: sharded steps, resume, faults, the loop's
logging, evaluation during training, and the configs themselves."""
import glob
import os
import re
import signal

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs_util import ROOT, load_config, override
from s2r_jax import checkpoint, config_schema, losses, repo
from s2r_jax.data import batching, pipeline
from s2r_jax.training import depth_stage, loop
from s2r_jax.training.sharding import split_arrays, state_sharding

trainer = repo.load_program("train")


def _flat_equal(a, b, atol=0.0):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def data_dir(procedural_vkitti):
    return procedural_vkitti


def stage_config(name, data_dir, **overrides):
    c = load_config(name, "local")
    c.data.data_dir = data_dir
    c.allow_random_frozen = True
    c.log.image_every_steps = 0
    c.num_train_steps = 10
    c.checkpoint.every_steps = 5
    return override(c, **overrides)


def _state_and_step(config, mesh):
    model = depth_stage.build_model(config.model)
    tx = depth_stage.make_optimizer(config, steps_per_epoch=2)
    abstract = depth_stage.abstract_variables(model, config)
    variables = depth_stage.initial_variables(config, abstract)
    make_state = lambda v: depth_stage.create_state(v, config, tx)
    shardings = state_sharding(jax.eval_shape(make_state, abstract), mesh, config.param_sharding,
                               config.fsdp_min_size)
    state = jax.jit(make_state, out_shardings=shardings)(variables)
    step = jax.jit(depth_stage.make_train_step(model, config, tx, depth_stage.learning_rate_schedule(config, 2)),
                   in_shardings=(shardings, batching.batch_sharding(mesh)), out_shardings=(shardings, None))
    return state, step


def _mesh(n):
    return jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _first_batch(config):
    return next(pipeline.train_iterator(config.data))


# Under fsdp, arrays of at least this many elements are split (config.fsdp_min_size): the
# configs' 2**18 would split none of the `:local` network's (the largest kernel has 73,728)
TEST_FSDP_MIN_SIZE = 1024


def _assert_split_as_asked(state, param_sharding):
    """Under fsdp, exactly the arrays of at least TEST_FSDP_MIN_SIZE elements with a dimension divisible
    by the data axis (8) are split, over that axis, and there are some; replicated splits none."""
    expected = 0
    for x in jax.tree.leaves(state):
        spec = tuple(x.sharding.spec)
        splittable = x.size >= TEST_FSDP_MIN_SIZE and any(d % 8 == 0 for d in x.shape)
        if param_sharding == "fsdp" and splittable:
            expected += 1
            assert spec.count("data") == 1 and len(x.sharding.device_set) == 8, (x.shape, spec)
            assert x.addressable_shards[0].data.size == x.size // 8
        else:
            assert not any(spec), (x.shape, spec)
    assert split_arrays(state) == (expected, len(jax.tree.leaves(state)))
    assert (expected > 0) == (param_sharding == "fsdp")


@pytest.mark.parametrize("param_sharding", ["replicated", "fsdp"])
def test_sharded_step_equals_single_device_step(data_dir, param_sharding):
    """One stage-1 step on 8 devices equals the single-device step: state within 1e-5; and its
    loss is the multi-scale L1 plus lambda_w times the structure-weighted term, each recomputed
    here from the model's outputs.

    Computed in float64: in float32 the L1 loss's sign gradient and BatchNorm over
    tiny channels turn summation-order noise into ~2e-4 gradient differences (the
    same as merely permuting the batch on one device), which would hide a real
    error; in float64 that noise is ~1e-12 while a sharding mistake (e.g. per-device
    BatchNorm statistics) changes the result at ~1e-2.
    """
    config = stage_config("struct_decoder", data_dir, param_sharding=param_sharding, fsdp_min_size=TEST_FSDP_MIN_SIZE,
                          **{"model.dtype": "float64", "loss.struct_weight": 0.7, "loss.beta": 10.0})
    local = _first_batch(config)
    results = []
    with jax.enable_x64(True):
        for n in (1, 8):
            mesh = _mesh(n)
            state, step = _state_and_step(config, mesh)
            if n == 8:
                _assert_split_as_asked(state, param_sharding)
            before = jax.device_get(state.variables())
            state, metrics = step(state, batching.global_batch(local, mesh))
            results.append(jax.device_get((metrics, state)))
        model = depth_stage.build_model(config.model)
        # jitted: op by op, this float64 forward pass would compile each of its ops separately
        forward = jax.jit(lambda v, x: model.apply(v, x, train=frozenset(config.train_modules), use_attention=False,
                                                   mutable=["batch_stats"])[0])
        out = forward(before, local["image"])
        l1 = float(losses.depth_l1_multiscale(out["depth"], local["depth"]))
        sw = float(losses.struct_weighted_loss(out["structure_map"], local["depth"], 10.0))
    (m1, s1), (m8, s8) = results
    assert abs(float(m1["loss"]) - float(m8["loss"])) <= 1e-10
    assert int(s1.step) == int(s8.step) == 1
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s8), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    assert float(m1["loss_depth_l1"]) == pytest.approx(l1, rel=1e-12)
    assert float(m1["loss_struct_weighted"]) == pytest.approx(sw, rel=1e-12)
    assert float(m1["loss"]) == pytest.approx(l1 + 0.7 * sw, rel=1e-12)
    assert sw > 0.01 * l1  # the structure term is not negligible at this beta: the sum is a real check


def test_loss_falls_and_frozen_modules_stay_bit_identical(data_dir):
    config = stage_config("dsa_depth", data_dir, **{"optimizer.learning_rate": 1e-3})
    mesh = _mesh(8)
    state, step = _state_and_step(config, mesh)
    frozen_before = jax.device_get(state.frozen)
    assert set(state.params) == {"dsa", "depth_net"} and set(frozen_before["params"]) == {"struct_encoder",
                                                                                         "struct_decoder"}
    n_opt = sum(x.size for x in jax.tree.leaves(state.opt_state))
    n_trained = sum(x.size for x in jax.tree.leaves(state.params))
    assert n_opt == 2 * n_trained + 2  # Adam's mu and nu, two step counters: nothing for frozen modules
    batch = batching.global_batch(_first_batch(config), mesh)
    losses_seen = []
    for _ in range(12):
        state, metrics = step(state, batch)
        losses_seen.append(float(metrics["loss"]))
    assert losses_seen[-1] < 0.8 * losses_seen[0], losses_seen
    after = jax.device_get(state.frozen)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(frozen_before), jax.tree.leaves(after), strict=True))


def test_finetune_kitti_config_runs_a_masked_step(data_dir):
    """finetune_kitti (on synthetic frames here): the L1 is taken only where the mask is valid."""
    config = stage_config("finetune_kitti", data_dir)
    config.data.dataset, config.data.tfds_config, config.data.num_examples = "virtual_kitti", "1.3.1", 0
    config_schema.validate(config)
    assert config.loss.masked and config.train_modules == ("dsa", "depth_net")
    batch = _first_batch(config)
    batch["mask"][:, :, : batch["mask"].shape[2] // 2] = 0  # the left half has no ground truth
    scrambled = dict(batch, depth=np.where(batch["mask"] > 0, batch["depth"], -batch["depth"]))
    state, step = _state_and_step(config, _mesh(1))  # not donated: one state, both batches
    l_plain, l_scrambled = (float(step(state, b)[1]["loss"]) for b in (batch, scrambled))
    assert l_plain == pytest.approx(l_scrambled, rel=1e-6)  # holes do not count
    unmasked = override(config.copy_and_resolve_references(), **{"loss.masked": False})
    state, step = _state_and_step(unmasked, _mesh(1))
    assert abs(float(step(state, scrambled)[1]["loss"]) - l_plain) > 1e-3  # without the mask they would


def _run(config, workdir, interrupt_at=None, monkeypatch=None):
    if interrupt_at is not None:
        real = pipeline.train_iterator

        def iterator(cfg, start_step=0, **kw):
            for i, b in enumerate(real(cfg, start_step=start_step, **kw), start_step + 1):
                if i == interrupt_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield b

        monkeypatch.setattr(pipeline, "train_iterator", iterator)
    state = trainer.train(config, str(workdir))
    if monkeypatch is not None:
        monkeypatch.undo()
    return state


def test_sigterm_then_resume_equals_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    config = stage_config("struct_decoder", data_dir)
    full = _run(config, tmp_path / "full")
    assert checkpoint.Checkpointer(tmp_path / "full").all_steps() == [5, 10]
    # the signal arrives while a step between 6 and 9 runs (batches are prefetched ahead)
    part = _run(config, tmp_path / "part", interrupt_at=9, monkeypatch=monkeypatch)
    stopped = int(part.step)
    assert 5 < stopped < 10
    assert checkpoint.Checkpointer(tmp_path / "part").latest_step() == stopped  # saved on SIGTERM
    resumed = _run(config, tmp_path / "part")
    assert int(resumed.step) == 10
    assert _flat_equal(jax.device_get(full.variables()), jax.device_get(resumed.variables()))
    assert _flat_equal(jax.device_get(full.opt_state), jax.device_get(resumed.opt_state))


def test_resume_onto_another_sharding_and_restore_onto_one_device(data_dir, tmp_path):
    config = stage_config("struct_decoder", data_dir, param_sharding="fsdp", fsdp_min_size=TEST_FSDP_MIN_SIZE,
                          num_train_steps=5)
    trainer.train(config, str(tmp_path / "w"))
    replicated = stage_config("struct_decoder", data_dir, param_sharding="replicated")
    state = trainer.train(replicated, str(tmp_path / "w"))
    assert int(state.step) == 10
    reference = trainer.train(stage_config("struct_decoder", data_dir), str(tmp_path / "ref"))
    assert _flat_equal(jax.device_get(reference.params), jax.device_get(state.params), atol=1e-5)
    # the same checkpoint onto a single device and onto an 8-device mesh: identical values
    one, _ = checkpoint.load_variables(tmp_path / "w")
    sharding = jax.sharding.NamedSharding(_mesh(8), jax.sharding.PartitionSpec())
    eight, _ = checkpoint.load_variables(tmp_path / "w", sharding=sharding)
    assert _flat_equal(jax.device_get(one), jax.device_get(eight))
    assert len(jax.tree.leaves(eight)[0].sharding.device_set) == 8


class _OneConvDepth(flax.linen.Module):
    """A stand-in for the network (one convolution, four output scales): the step's logic
    without the cost of compiling S2R-DepthNet."""

    @flax.linen.compact
    def __call__(self, image, train=False, use_attention=False):
        x = flax.linen.Conv(1, (3, 3), name="depth_net")(image)
        n, h, w, _ = x.shape
        return {"depth": [jax.image.resize(x, (n, h // s, w // s, 1), "linear") for s in (8, 4, 2, 1)]}


def test_first_non_finite_step_freezes_the_state_and_is_named(data_dir):
    """A NaN batch at step 3: nothing is applied from step 3 on (a good step 4 included), and
    bad_step names step 3 (what the loop reports)."""
    config = stage_config("struct_decoder", data_dir, train_modules=("depth_net",), frozen_modules=(),
                          **{"loss.struct_weight": 0.0})
    model, tx = _OneConvDepth(), depth_stage.make_optimizer(config, 1)
    variables = jax.tree.map(np.asarray, model.init(jax.random.key(0), np.zeros((1, 96, 160, 3), np.float32)))
    state = depth_stage.create_state(variables, config, tx)
    step = jax.jit(depth_stage.make_train_step(model, config, tx, depth_stage.learning_rate_schedule(config, 1)))
    batch = _first_batch(config)
    poisoned = dict(batch, image=np.full_like(batch["image"], np.nan))
    history = []
    for b in (batch, batch, poisoned, batch):
        state, _ = step(state, b)
        history.append(jax.device_get(state.params))
    assert not _flat_equal(history[0], history[1])  # good steps do move the parameters
    assert int(state.bad_step) == 3 and int(state.step) == 4
    assert _flat_equal(history[1], history[3])      # ... and nothing moves after the bad one


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    config = stage_config("struct_decoder", data_dir)
    real = pipeline.train_iterator

    def poisoned(cfg, start_step=0, **kw):
        for i, b in enumerate(real(cfg, start_step=start_step, **kw), start_step + 1):
            if i == 7:
                b = {**b, "image": np.full_like(b["image"], np.nan)}
            yield b

    monkeypatch.setattr(pipeline, "train_iterator", poisoned)
    with pytest.raises(loop.TrainingError, match="NaN/Inf at step 7"):
        trainer.train(config, str(tmp_path / "w"))
    assert checkpoint.Checkpointer(tmp_path / "w").all_steps() == [5]


def test_workdir_of_another_config_is_a_clear_error(data_dir, tmp_path):
    trainer.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "w"))
    other = stage_config("struct_decoder", data_dir, **{"model.depth_ngf": 16})
    with pytest.raises(loop.TrainingError, match="different configuration"):
        trainer.train(other, str(tmp_path / "w"))
    with pytest.raises(loop.TrainingError, match="stage 'struct_decoder', not 'dsa_depth'"):
        trainer.train(stage_config("dsa_depth", data_dir, num_train_steps=2), str(tmp_path / "w"))
    # a finished run re-run: nothing to train, no new checkpoint
    again = trainer.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "w"))
    assert int(again.step) == 2 and checkpoint.Checkpointer(tmp_path / "w").all_steps() == [2]


def test_stage2_takes_frozen_modules_from_stage1_and_requires_them(data_dir, tmp_path):
    stage1 = trainer.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "s1"))
    config = stage_config("dsa_depth", data_dir, num_train_steps=2, allow_random_frozen=False)
    with pytest.raises(ValueError, match="init_from.struct_encoder, config.init_from.struct_decoder"):
        trainer.train(config, str(tmp_path / "s2_missing"))
    config.init_from.struct_encoder = str(tmp_path / "s1")
    config.init_from.struct_decoder = str(tmp_path / "s1")
    stage2 = trainer.train(config, str(tmp_path / "s2"))
    for m in ("struct_encoder", "struct_decoder"):
        want = jax.device_get(stage1.variables()["params"][m])
        assert _flat_equal(want, jax.device_get(stage2.frozen["params"][m]))
    # a checkpoint whose module does not fit the configured model is refused, naming a variable
    bad = stage_config("dsa_depth", data_dir, num_train_steps=2, **{"model.encoder_dim": 4})
    bad.init_from.struct_encoder = str(tmp_path / "s1")
    bad.init_from.struct_decoder = str(tmp_path / "s1")
    with pytest.raises(ValueError, match=r"params/struct_encoder/conv/conv/kernel: checkpoint \(7, 7, 3, 8\)"):
        trainer.train(bad, str(tmp_path / "s2_bad"))


def test_config_problems_are_named_together():
    c = load_config("struct_decoder")
    c.optimizer.lr = 0.1
    del c.loss["beta"]
    del c.data["batch_size"]
    c.data.batch_size = "32"  # as a config file that wrote it in quotes
    with pytest.raises(config_schema.ConfigError) as e:
        config_schema.validate(c)
    assert "config.optimizer.lr: unknown field" in str(e.value)
    assert "config.loss.beta: missing (float)" in str(e.value)
    assert "config.data.batch_size: expected int, got str '32'" in str(e.value)
    c = load_config("struct_decoder")
    c.train_modules = ("dsa", "depth_nett")
    c.checkpoint.every_steps = 0
    with pytest.raises(config_schema.ConfigError) as e:
        config_schema.validate(c)
    assert "depth_nett" in str(e.value) and "config.checkpoint.every_steps must be at least 1" in str(e.value)
    c = load_config("dsa_depth")
    c.data.image_size = (100, 160)
    with pytest.raises(config_schema.ConfigError, match="multiples of 16"):
        config_schema.validate(c)


@pytest.mark.parametrize("name", ["struct_decoder", "dsa_depth", "finetune_kitti", "ste_pretrain"])
def test_every_stage_config_and_its_local_variant_fit_the_schema(name):
    for arg in (None, "local"):
        c = load_config(name, arg)
        if name == "ste_pretrain":
            c.style_images = "/some/folder"
        config_schema.validate(c)
    with pytest.raises(ValueError, match="unknown variant 'locl'"):
        load_config(name, "locl")


def test_train_py_docstring_commands_are_complete():
    """Every `python train.py ...` command in train.py's docstring names a config whose frozen
    modules it loads, and stage 2 gets the ImageNet DRN as the official code does."""
    text = open(os.path.join(ROOT, "train.py")).read().split('"""')[1].replace("\\\n", " ")
    commands = [line for line in text.splitlines() if "python train.py" in line]
    assert len(commands) >= 4
    for command in commands:
        name, arg = re.search(r"--config configs/(\w+)\.py(?::(\w+))?", command).groups()
        c = load_config(name, arg)
        for field, value in re.findall(r"--config\.([\w.]+)=(\S+)", command):
            override(c, **{field: {"True": True, "False": False}.get(value, value)})
        if name == "ste_pretrain":
            assert c.style_images
            continue
        if name == "zoedepth_finetune":  # no frozen modules: the whole model starts from init_from
            assert c.init_from
            continue
        depth_stage.check_frozen_sources(c)
        if name == "dsa_depth" and not arg:
            assert c.init_from.dsa, "stage 2 starts the DSA trunk from the ImageNet DRN-D-22"


def test_docs_state_the_official_loss_defaults():
    """docs/training.md and the stage-1 config agree with the official train.py (lambda_w 1.0,
    hyper_w 0.001)."""
    c = load_config("struct_decoder")
    assert (c.loss.struct_weight, c.loss.beta) == (1.0, 0.001)
    doc = open(os.path.join(ROOT, "docs", "training.md")).read()
    assert "λ = 1, β = 0.001" in doc and "--hyper_w` default is 0.001" in doc


def test_learning_rate_halves_every_10_epochs():
    c = load_config("struct_decoder")
    schedule = depth_stage.learning_rate_schedule(c, steps_per_epoch=100)
    assert float(schedule(999)) == pytest.approx(1e-4)
    assert float(schedule(1000)) == pytest.approx(5e-5)
    assert float(schedule(2000)) == pytest.approx(2.5e-5)


def _variables_digest(variables) -> str:
    import hashlib
    h = hashlib.sha256()
    for path, x in jax.tree_util.tree_flatten_with_path(variables)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(x, np.float32)).tobytes())
    return h.hexdigest()[:16]


def test_initial_variables_keep_their_bits():
    """Golden digests, tolerance 0: a run started from `init_seed` begins from the same bits
    whatever version drew them. Computed at 1c48e93, when one XLA program drew and fused every
    `offset + scale * x`; draw_init now does that arithmetic in NumPy, where a plain float32
    multiply then add changed BatchNorm scales by 1 ulp (seen: 9 of the 174 arrays)."""
    from s2r_jax.training import init, ste_stage
    c = load_config("struct_decoder", "local")
    abstract = depth_stage.abstract_variables(depth_stage.build_model(c.model), c)
    assert _variables_digest(init.official_init(abstract, jax.random.key(1))) == "6b6aab6eb943d57c"
    c = load_config("ste_pretrain", "local")
    assert _variables_digest(init.munit_init(ste_stage.abstract_variables(c), jax.random.key(1))) == "ebac3291976340a0"


def test_official_init_statistics():
    from s2r_jax.models import S2RDepthNet
    from s2r_jax.training.init import official_init
    model = S2RDepthNet(encoder_dim=8, depth_ngf=32, dsa_channels=(16, 32, 64, 128, 256, 512, 512, 512))
    abstract = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 96, 96, 3), jnp.float32))
    v = official_init(abstract, jax.random.key(1))
    p = v["params"]
    assert float(jnp.std(p["depth_net"]["center0"]["branch0"]["kernel"])) == pytest.approx(0.02, rel=0.05)
    assert float(jnp.std(p["depth_net"]["center0"]["norm1"]["scale"])) == pytest.approx(0.02, rel=0.2)
    assert float(jnp.mean(p["depth_net"]["center0"]["norm1"]["scale"])) == pytest.approx(1.0, abs=0.01)
    assert not np.any(np.asarray(p["depth_net"]["deconv2"]["deconv"]["bias"]))
    k = p["dsa"]["trunk"]["layer6_0"]["conv2"]["kernel"]
    assert float(jnp.std(k)) == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.05)
    k = p["struct_decoder"]["up1"]["conv1"]["kernel"]
    bound = 1 / np.sqrt(5 * 5 * 32)
    assert float(jnp.max(jnp.abs(k))) <= bound and float(jnp.max(jnp.abs(k))) > 0.99 * bound
    assert float(p["depth_net"]["prelu"][0]) == 0.25
    assert float(v["batch_stats"]["dsa"]["up1"]["bn1"]["var"].mean()) == 1.0


def test_bf16_step_keeps_float32_parameters(data_dir):
    config = stage_config("dsa_depth", data_dir, **{"model.dtype": "bfloat16"})
    mesh = _mesh(8)
    state, step = _state_and_step(config, mesh)
    state, metrics = step(state, batching.global_batch(_first_batch(config), mesh))
    assert np.isfinite(float(metrics["loss"]))
    assert {x.dtype for x in jax.tree.leaves((state.params, state.opt_state))} <= {jnp.dtype("float32"),
                                                                                     jnp.dtype("int32")}


# --- the loop itself, on a tiny stand-in state (no network to compile) ------------------------


@flax.struct.dataclass
class _TinyState:
    step: jax.Array
    params: dict
    bad_step: jax.Array
    VARIABLE_FIELDS = ("params",)

    def variables(self):
        return {"params": self.params}


def _tiny_run(tmp_path, num_steps, evaluate=None, every=5, eval_every=0, start=None):
    config = load_config("struct_decoder", "local")
    config.log.every_steps, config.checkpoint.every_steps = every, 100
    config.eval.every_steps = eval_every
    ckpt = checkpoint.Checkpointer(tmp_path)
    make_state = lambda v: _TinyState(jnp.zeros((), jnp.int32), v["params"], jnp.full((), -1, jnp.int32))
    abstract = {"params": {"w": jax.ShapeDtypeStruct((2,), jnp.float32)}}
    shardings = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]),
                             jax.eval_shape(make_state, abstract))
    state = loop.restore_or_initialize(ckpt, config.stage, make_state, shardings, abstract,
                                       lambda: {"params": {"w": np.zeros(2, np.float32)}})

    def step(state, batch):  # the 'loss' of step s is s; w counts steps
        return state.replace(step=state.step + 1, params={"w": state.params["w"] + 1}), {
            "loss": batch["x"].astype(jnp.float32), "grad_norm": 2 * batch["x"].astype(jnp.float32)}

    first = int(state.step)
    batches = ({"x": jnp.asarray(s)} for s in range(first + 1, num_steps + 1))
    return loop.train(config, str(tmp_path), ckpt, state, step, batches, num_steps, evaluate=evaluate)


def _scalars(workdir):
    """{tag: {step: value}} of every TensorBoard event file in `workdir`."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util
    out = {}
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        acc = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["tensors"]:
            for e in acc.Tensors(tag):
                value = tensor_util.make_ndarray(e.tensor_proto)
                if value.size == 1 and value.dtype.kind == "f":  # scalars (not the hparams summary)
                    out.setdefault(tag, {})[e.step] = float(value)
    return out


def test_logged_scalars_are_averaged_over_the_interval(tmp_path):
    _tiny_run(tmp_path, 12)
    scalars = _scalars(tmp_path)
    assert scalars["loss"] == {5: 3.0, 10: 8.0, 12: 11.5}  # means of steps 1..5, 6..10, 11..12
    assert scalars["grad_norm"] == {5: 6.0, 10: 16.0, 12: 23.0}


def test_evaluation_during_training_keeps_the_best_checkpoint_across_resumes(tmp_path):
    curve = {2: 0.5, 4: 0.3, 6: 0.4, 8: 0.2, 10: 0.25}
    seen = []

    def evaluate(state):
        step = int(state.step)
        seen.append(step)
        return {"abs_rel": curve[step], "a1": 1 - curve[step]}

    _tiny_run(tmp_path, 6, evaluate, eval_every=2)
    best = checkpoint.Checkpointer(tmp_path / loop.BEST)
    assert best.latest_step() == 4 and best.restore_meta()["best"]["value"] == 0.3
    _tiny_run(tmp_path, 10, evaluate, eval_every=2)  # resumes at 6: 0.2 at step 8 beats the earlier 0.3
    best = checkpoint.Checkpointer(tmp_path / loop.BEST)
    assert seen == [2, 4, 6, 8, 10] and best.latest_step() == 8
    variables, meta = checkpoint.load_variables(tmp_path / loop.BEST)
    np.testing.assert_array_equal(variables["params"]["w"], [8, 8])  # the variables of step 8
    assert meta["best"] == {"metric": "abs_rel", "value": 0.2, "step": 8}
    assert _scalars(tmp_path)["eval/abs_rel"] == pytest.approx(curve, rel=1e-6)  # float32 events of both runs
