"""Training on CPU with tiny widths and procedural data: sharded steps, resume, faults."""
import glob
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs_util import load_config, override
from s2r_jax import checkpoint
from s2r_jax.data import batching, pipeline
from s2r_jax.training import config as config_lib
from s2r_jax.training import loop
from s2r_jax.training.sharding import state_sharding
from s2r_jax.training.state import build_model, create_state, learning_rate_schedule, make_optimizer
from s2r_jax.training.step import make_train_step



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
    model = build_model(config)
    tx = make_optimizer(config, steps_per_epoch=2)
    abstract = loop.abstract_variables(model, config)
    variables = loop.initial_variables(config, abstract, jax.random.key(0))
    abstract_state = jax.eval_shape(lambda v: create_state(v, config, tx), abstract)
    shardings = state_sharding(abstract_state, mesh, config.param_sharding)
    state = jax.jit(lambda v: create_state(v, config, tx), out_shardings=shardings)(variables)
    step = jax.jit(make_train_step(model, config, tx, learning_rate_schedule(config, 2)),
                   in_shardings=(shardings, batching.batch_sharding(mesh)), out_shardings=(shardings, None))
    return state, step


def _mesh(n):
    return jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",),
                             axis_types=(jax.sharding.AxisType.Auto,))


@pytest.mark.parametrize("param_sharding", ["replicated", "fsdp"])
def test_sharded_step_equals_single_device_step(data_dir, param_sharding):
    """One step on 8 devices equals the single-device step: state within 1e-5.

    Computed in float64: in float32 the L1 loss's sign gradient and BatchNorm over
    tiny channels turn summation-order noise into ~2e-4 gradient differences (the
    same as merely permuting the batch on one device), which would hide a real
    error; in float64 that noise is ~1e-12 while a sharding mistake (e.g. per-device
    BatchNorm statistics) changes the result at ~1e-2.
    """
    config = stage_config("dsa_depth", data_dir, param_sharding=param_sharding, **{"model.dtype": "float64"})
    local = next(pipeline.train_iterator(config.data, process_index=0, process_count=1))
    results = []
    with jax.enable_x64(True):
        for n in (1, 8):
            mesh = _mesh(n)
            state, step = _state_and_step(config, mesh)
            state, metrics = step(state, batching.global_batch(local, mesh))
            results.append(jax.device_get((float(metrics["loss"]), state)))
    (l1, s1), (l8, s8) = results
    assert abs(l1 - l8) <= 1e-10
    assert int(s1.step) == int(s8.step) == 1
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s8), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_loss_falls_and_frozen_modules_stay_bit_identical(data_dir):
    config = stage_config("dsa_depth", data_dir, **{"optimizer.learning_rate": 1e-3})
    mesh = _mesh(8)
    state, step = _state_and_step(config, mesh)
    frozen_before = jax.device_get(state.frozen)
    assert set(state.params) == {"dsa", "depth_net"} and set(frozen_before["params"]) == {"struct_encoder",
                                                                                         "struct_decoder"}
    # Adam state exists for trained modules only
    assert {p.shape for p in jax.tree.leaves(state.opt_state)} >= {p.shape for p in jax.tree.leaves(state.params)}
    n_opt = sum(x.size for x in jax.tree.leaves(state.opt_state))
    n_trained = sum(x.size for x in jax.tree.leaves(state.params))
    assert n_opt == 2 * n_trained + 2  # Adam's mu and nu, two step counters: nothing for frozen modules
    batch = batching.global_batch(next(pipeline.train_iterator(config.data, process_index=0, process_count=1)), mesh)
    losses = []
    for _ in range(12):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.8 * losses[0], losses
    after = jax.device_get(state.frozen)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(frozen_before), jax.tree.leaves(after), strict=True))


def _run(config, workdir, interrupt_at=None, monkeypatch=None):
    if interrupt_at is not None:
        real = pipeline.train_iterator

        def iterator(cfg, start_step=0, **kw):
            for i, b in enumerate(real(cfg, start_step=start_step, **kw), start_step + 1):
                if i == interrupt_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield b

        monkeypatch.setattr(pipeline, "train_iterator", iterator)
    state = loop.train(config, str(workdir))
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
    # TensorBoard event files with the scalars
    events = glob.glob(str(tmp_path / "full" / "events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(events[0])
    acc.Reload()
    assert {"loss", "loss_depth_l1", "loss_struct_weighted", "grad_norm", "learning_rate"} <= set(acc.Tags()["tensors"])


def test_resume_onto_another_sharding_and_restore_onto_one_device(data_dir, tmp_path):
    config = stage_config("struct_decoder", data_dir, param_sharding="fsdp", num_train_steps=5)
    loop.train(config, str(tmp_path / "w"))
    replicated = stage_config("struct_decoder", data_dir, param_sharding="replicated")
    state = loop.train(replicated, str(tmp_path / "w"))
    assert int(state.step) == 10
    reference = loop.train(stage_config("struct_decoder", data_dir), str(tmp_path / "ref"))
    assert _flat_equal(jax.device_get(reference.params), jax.device_get(state.params), atol=1e-5)
    # the same checkpoint onto a single device and onto an 8-device mesh: identical values
    one, _ = checkpoint.load_variables(tmp_path / "w")
    sharding = jax.sharding.NamedSharding(_mesh(8), jax.sharding.PartitionSpec())
    eight, _ = checkpoint.load_variables(tmp_path / "w", sharding=sharding)
    assert _flat_equal(jax.device_get(one), jax.device_get(eight))
    assert len(jax.tree.leaves(eight)[0].sharding.device_set) == 8


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
        loop.train(config, str(tmp_path / "w"))
    assert checkpoint.Checkpointer(tmp_path / "w").all_steps() == [5]


def test_workdir_of_another_config_is_a_clear_error(data_dir, tmp_path):
    loop.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "w"))
    other = stage_config("struct_decoder", data_dir, **{"model.depth_ngf": 16})
    with pytest.raises(loop.TrainingError, match="different configuration"):
        loop.train(other, str(tmp_path / "w"))
    with pytest.raises(loop.TrainingError, match="stage 'struct_decoder', not 'dsa_depth'"):
        loop.train(stage_config("dsa_depth", data_dir, num_train_steps=2), str(tmp_path / "w"))
    # a finished run re-run: nothing to train, no new checkpoint
    again = loop.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "w"))
    assert int(again.step) == 2 and checkpoint.Checkpointer(tmp_path / "w").all_steps() == [2]


def test_unknown_config_field_is_named():
    c = config_lib.default_config()
    c.optimizer.lr = 0.1
    with pytest.raises(ValueError, match=r"config\.optimizer\.lr"):
        config_lib.validate(c)
    c = config_lib.default_config()
    c.train_modules = ("dsa", "depth_nett")
    with pytest.raises(ValueError, match="depth_nett"):
        config_lib.validate(c)
    c = config_lib.default_config()
    c.checkpoint.every_steps = 0
    with pytest.raises(ValueError, match="config.checkpoint.every_steps must be at least 1"):
        config_lib.validate(c)


def test_stage2_takes_frozen_modules_from_stage1_and_requires_them(data_dir, tmp_path):
    stage1 = loop.train(stage_config("struct_decoder", data_dir, num_train_steps=2), str(tmp_path / "s1"))
    config = stage_config("dsa_depth", data_dir, num_train_steps=2, allow_random_frozen=False)
    with pytest.raises(ValueError, match="init_from.struct_encoder, config.init_from.struct_decoder"):
        loop.train(config, str(tmp_path / "s2_missing"))
    config.init_from.struct_encoder = str(tmp_path / "s1")
    config.init_from.struct_decoder = str(tmp_path / "s1")
    stage2 = loop.train(config, str(tmp_path / "s2"))
    for m in ("struct_encoder", "struct_decoder"):
        want = jax.device_get(stage1.variables()["params"][m])
        assert _flat_equal(want, jax.device_get(stage2.frozen["params"][m]))
    # a checkpoint whose module does not fit the configured model is refused, naming a variable
    bad = stage_config("dsa_depth", data_dir, num_train_steps=2, **{"model.encoder_dim": 4})
    bad.init_from.struct_encoder = str(tmp_path / "s1")
    bad.init_from.struct_decoder = str(tmp_path / "s1")
    with pytest.raises(ValueError, match=r"params/struct_encoder/conv/conv/kernel: checkpoint \(7, 7, 3, 8\)"):
        loop.train(bad, str(tmp_path / "s2_bad"))


def test_learning_rate_halves_every_10_epochs():
    c = config_lib.default_config()
    schedule = learning_rate_schedule(c, steps_per_epoch=100)
    assert float(schedule(999)) == pytest.approx(1e-4)
    assert float(schedule(1000)) == pytest.approx(5e-5)
    assert float(schedule(2000)) == pytest.approx(2.5e-5)


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
    batch = batching.global_batch(next(pipeline.train_iterator(config.data, process_index=0, process_count=1)), mesh)
    state, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    assert {x.dtype for x in jax.tree.leaves((state.params, state.opt_state))} <= {jnp.dtype("float32"),
                                                                                     jnp.dtype("int32")}
