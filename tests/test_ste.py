"""Structure-encoder pretraining: losses fall, sharded == single device, structure survives
a change of style, and stage 1 loads the trained encoder."""

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs_util import load_config, override
from s2r_jax.data import batching, pipeline
from s2r_jax.data.style_images import style_dataset
from s2r_jax.models.structure_translation import StructureTranslator
from s2r_jax.training.sharding import replicated, state_sharding
from s2r_jax.training.ste_stage import (abstract_variables, build_models, create_state, initial_variables,
                                        make_optimizer, make_step)

# Shallow decoders and discriminators (MUNIT's depths are 4 blocks, 4 layers, 3 scales): the
# step compiles faster, and compiling is most of these tests' time.
SHALLOW = {"model.decoder_res_blocks": 1, "model.dis_layers": 2, "model.dis_scales": 2}


def _config(data_dir, style_dir, **overrides):
    c = load_config("ste_pretrain", "local")
    c.data.data_dir, c.style_images = data_dir, style_dir
    c.log.image_every_steps = 0
    return override(c, **overrides)


def _mesh(n):
    return jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _setup(config, mesh, cast=None):
    """A state and the jitted step, built as train.py builds them."""
    tx = make_optimizer(config)
    abstract = abstract_variables(config)
    shardings = state_sharding(jax.eval_shape(lambda v: create_state(v, tx), abstract), mesh, config.param_sharding,
                               config.fsdp_min_size)
    variables = initial_variables(config, abstract)
    if cast is not None:  # float64 parameters too: exactness tests compute everything in float64
        variables = jax.tree.map(lambda a: a.astype(cast), variables)
    state = jax.jit(lambda v: create_state(v, tx), out_shardings=shardings)(variables)
    step = jax.jit(make_step(config, tx), in_shardings=(shardings, batching.batch_sharding(mesh)),
                   out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    return state, step


def _local_batch(config):
    a = next(pipeline.train_iterator(config.data))["image"]
    b = next(iter(tfds.as_numpy(style_dataset(config.style_images, config.data.image_size, config.data.batch_size))))
    return {"a": a, "b": b}


def _grad_corr(x, y):
    """Pearson correlation of the grey-level gradient magnitudes of two images (H, W, 3)."""
    def mag(img):
        g = img.mean(-1)
        return np.hypot(np.diff(g, axis=0)[:, :-1], np.diff(g, axis=1)[:-1, :]).ravel()
    return float(np.corrcoef(mag(x), mag(y))[0, 1])


def test_style_images_pipeline(procedural_style_images, tmp_path):
    ds = style_dataset(procedural_style_images, (96, 160), 4, seed=0)  # the pipeline at a depth-model size
    batches = list(tfds.as_numpy(ds.take(5)))
    assert batches[0].shape == (4, 96, 160, 3) and batches[0].min() >= -1 and batches[0].max() <= 1
    resumed = next(iter(tfds.as_numpy(style_dataset(procedural_style_images, (96, 160), 4, seed=0, start_step=4))))
    np.testing.assert_array_equal(resumed, batches[4])
    # a host's rows of one global order: any split of the rows gives the one-host batches' rows
    for rows in ((0, 1), (1, 3)):
        part = list(tfds.as_numpy(style_dataset(procedural_style_images, (96, 160), 4, seed=0, rows=rows).take(5)))
        for whole, mine in zip(batches, part):
            np.testing.assert_array_equal(whole[list(rows)], mine)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png or .jpg files under"):
        style_dataset(str(tmp_path / "empty"), (96, 160), 4)


def test_losses_fall_and_translation_keeps_structure(procedural_vkitti, procedural_style_images):
    config = _config(procedural_vkitti, procedural_style_images, **{"optimizer.learning_rate": 1e-3}, **SHALLOW)
    mesh = _mesh(8)
    state, step = _setup(config, mesh)
    local = _local_batch(config)
    batch = batching.global_batch(local, mesh)
    history = []
    for _ in range(25):
        state, metrics = step(state, batch)
        history.append(jax.device_get(metrics))
    first, last = history[0], history[-1]
    assert last["loss_gen"] < 0.7 * first["loss_gen"], (first["loss_gen"], last["loss_gen"])
    assert last["loss_recon_x"] < 0.7 * first["loss_recon_x"]
    assert last["loss_recon_cyc"] < 0.8 * first["loss_recon_cyc"]
    # a's structure in b's style keeps a's edges: its gradients correlate with a's far more
    # than an unrelated image's do
    gen, _ = build_models(config)
    x_a, x_b = local["a"], local["b"]
    x_ab = np.asarray(jax.jit(lambda p, a, b: gen.apply({"params": p}, a, b, method=StructureTranslator.translate))(
        jax.device_get(state.gen_params), x_a, np.roll(x_b, 1, axis=0)))
    kept = np.mean([_grad_corr(x_a[i], x_ab[i]) for i in range(len(x_a))])
    unrelated = np.mean([_grad_corr(x_a[i], x_b[i]) for i in range(len(x_a))])
    assert kept > unrelated + 0.2, (kept, unrelated)
    # ...and it is a translation, not an identity: the colours move toward the style image's
    style = np.roll(x_b, 1, axis=0)
    stats = lambda x: np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=-1)  # per image, RGB
    before = np.linalg.norm(stats(x_a) - stats(style), axis=-1).mean()
    after = np.linalg.norm(stats(x_ab) - stats(style), axis=-1).mean()
    assert after < 0.7 * before, (before, after)
    assert np.abs(x_ab - x_a).mean() > 0.05


def test_sharded_step_equals_single_device_step(procedural_vkitti, procedural_style_images):
    """Everything in float64 (parameters, Adam state, compute), so that 1 and 8 devices may differ
    only by summation order (~1e-12): losses and gradient norms within 1e-9 relative. The state
    within 1e-7: Adam's first update is lr * g / (|g| + eps), so for the few parameters whose
    gradient nearly cancels to ~eps, summation order moves it by up to ~1e-8 (a sharding error,
    e.g. per-device instance or batch statistics, moves losses at ~1e-2)."""
    config = _config(procedural_vkitti, procedural_style_images, **{"model.dtype": "float64"}, **SHALLOW)
    local = _local_batch(config)
    results = []
    with jax.enable_x64(True):
        for n in (1, 8):
            mesh = _mesh(n)
            state, step = _setup(config, mesh, cast=np.float64)
            state, metrics = step(state, batching.global_batch(local, mesh))
            results.append(jax.device_get((metrics, state)))
    (m1, s1), (m8, s8) = results
    assert {np.asarray(v).dtype for v in m1.values()} == {np.dtype("float64")}
    for k in m1:
        assert abs(float(m1[k]) - float(m8[k])) <= 1e-9 * max(1.0, abs(float(m1[k]))), k
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s8), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7, rtol=0)


def test_munit_depths_are_config_fields():
    """decoder_res_blocks, dis_layers and dis_scales build the networks they name; a config
    without them (a checkpoint written before they existed) builds MUNIT's depths."""
    c = load_config("ste_pretrain", "local")
    params = abstract_variables(c)["params"]
    default = (sorted(k for k in params["decoder_a"] if k.startswith("res")),
               sorted(params["discriminators"]["dis_a"]))
    assert len(default[0]) == 8 and len(default[1]) == 3 * (4 + 1)  # 4 blocks x 2 convs; 3 scales x (4 + out)
    params = abstract_variables(override(c, **SHALLOW))["params"]
    assert sorted(k for k in params["decoder_a"] if k.startswith("res")) == ["res0_conv1", "res0_conv2"]
    assert sorted(params["discriminators"]["dis_b"]) == sorted(f"scale{s}_{n}" for s in range(2)
                                                               for n in ("conv0", "conv1", "out"))
    assert params["decoder_a"]["mlp_out"]["kernel"].shape[-1] == 2 * 2 * 4 * c.model.encoder_dim  # AdaIN (mean, std) x 2
    old = c.to_dict()
    for k in ("decoder_res_blocks", "dis_layers", "dis_scales"):
        del old["model"][k]
    params = abstract_variables(ml_collections.ConfigDict(old))["params"]
    assert (sorted(k for k in params["decoder_a"] if k.startswith("res")),
            sorted(params["discriminators"]["dis_a"])) == default


# Pretraining through train.py, on one and on two processes, and stage 1 loading the encoder it
# trained: tests/test_multihost.py::test_pretraining_on_two_processes_equals_one.
