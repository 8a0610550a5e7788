"""The metric-bins S2R-DepthNet (ZoeDepth's metric bins head on DepthNet's decoder): its config,
its SILog loss in metres, and its checkpoints in the loader and prediction (metres out, no
tanh mapping). That it trains is shown on the procedural data in docs/benchmarks.md."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs_util import load_config, override
from s2r_jax import config_schema, model_loader, predict
from s2r_jax.checkpoint import Checkpointer
from s2r_jax.evaluation.resize import upsample_to
from s2r_jax.models.s2r_metric_bins import HEAD_FIELDS, S2RMetricBins
from s2r_jax.training import depth_stage


def test_configs_fit_the_schema_and_problems_are_named():
    for arg in (None, "local"):
        c = load_config("metric_bins_s2r", arg)
        config_schema.validate(c)
        assert set(c.model.metric_bins) == set(HEAD_FIELDS)  # every head field is in the config
    c = load_config("metric_bins_s2r")
    c.train_modules, c.model.metric_bins.n_attractors, c.loss.max_depth = ("dsa", "depth_net"), (16, 8), 0.0
    with pytest.raises(config_schema.ConfigError) as e:
        config_schema.validate(c)
    assert all(s in str(e.value) for s in ("'metric_head'", "one count per decoder scale", "min_depth < max_depth"))
    c = load_config("metric_bins_s2r")
    del c.loss.silog_beta
    with pytest.raises(config_schema.ConfigError, match="config.loss.silog_beta: missing"):
        config_schema.validate(c)


def test_the_loss_is_silog_in_metres_over_the_valid_range():
    """The pipeline's depth (d / 80 * 2 - 1) back in metres, the mask AND 1e-3 < d < 80, and
    ZoeDepth's SILog (10 sqrt(Var_unbiased(g) + 0.15 mean(g)^2), g = log pred - log gt),
    recomputed here in NumPy."""
    config = load_config("metric_bins_s2r", "local")
    rng = np.random.default_rng(0)
    metres = rng.uniform(-2.0, 90.0, (2, 12, 16, 1))  # beyond both ends: left out
    metres[0, :3] = 80.0                                # the clipped sky: left out (strict)
    mask = (rng.uniform(size=metres.shape) > 0.2).astype(np.float32)
    batch = {"depth": (metres / 80.0 * 2 - 1).astype(np.float32), "mask": mask}
    pred = rng.uniform(1.0, 60.0, (2, 6, 8, 1)).astype(np.float32)  # half size: resized (align_corners)
    got = float(jax.jit(lambda p, b: depth_stage.metric_loss(p, b, config))(pred, batch))
    up = np.stack([upsample_to(p[..., 0].astype(np.float64), (12, 16)) for p in pred])[..., None]
    valid = (mask > 0) & (metres > 1e-3) & (metres < 80.0 - 1e-4)
    g = np.log(up[valid] + 1e-7) - np.log(metres[valid] + 1e-7)
    want = 10 * np.sqrt(np.var(g, ddof=1) + 0.15 * np.mean(g) ** 2)
    assert valid.sum() < 0.7 * valid.size
    assert got == pytest.approx(want, rel=1e-5)


@pytest.fixture(scope="module")
def metric_checkpoint(tmp_path_factory):
    """A metric-bins checkpoint of the :local config (the official initialisation, as training
    starts), with the config training writes into its meta."""
    config = load_config("metric_bins_s2r", "local")
    model = depth_stage.build_model(config.model)
    abstract = depth_stage.abstract_variables(model, config)
    variables = depth_stage.initial_variables(override(config, allow_random_frozen=True), abstract)
    path = tmp_path_factory.mktemp("metric") / "ckpt"
    with Checkpointer(path) as c:
        c.save(0, variables, meta={"written_by": "s2r_jax.train", "config": config.to_dict()})
    return config, model, str(path)


def test_the_training_step_takes_the_metric_head(metric_checkpoint):
    """The stage trains the head with the attention and DepthNet; its loss traces to SILog alone
    (no L1 on the tanh outputs); evaluation during training reads metres."""
    config, model, path = metric_checkpoint
    abstract = depth_stage.abstract_variables(model, config)
    assert set(abstract["params"]) == {"struct_encoder", "struct_decoder", "dsa", "depth_net", "metric_head"}
    tx = depth_stage.make_optimizer(config, 2)
    state = jax.eval_shape(lambda v: depth_stage.create_state(v, config, tx), abstract)
    assert set(state.params) == {"dsa", "depth_net", "metric_head"}
    batch = {k: jax.ShapeDtypeStruct((2, 96, 160, c), jnp.float32) for k, c in (("image", 3), ("depth", 1),
                                                                               ("mask", 1))}
    loss, (metrics, _) = jax.eval_shape(lambda s, b: depth_stage.loss_fn(model, config, s.params, s, b), state, batch)
    assert loss.shape == () and set(metrics) == {"loss", "loss_silog"}
    assert depth_stage.make_eval_predict(model, config)[1] is None


def test_predict_gives_the_head_s_metres_at_each_image_s_size(metric_checkpoint, tmp_path):
    config, _, path = metric_checkpoint
    loaded = model_loader.load_model(path)
    assert loaded.metric and isinstance(loaded.model, S2RMetricBins) and loaded.depth_range_m is None
    assert loaded.evaluation.depth_range_m is None and loaded.evaluation.image_size == (96, 160)
    with pytest.raises(model_loader.CheckpointModelError, match="metric-bins S2R-DepthNet, which predicts metres"):
        model_loader.load_model(path, depth_range_m=80.0)
    predictor = predict.load_predictor(path)
    assert predictor.depth_range_m is None
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (70, 120, 3), dtype=np.uint8), rng.integers(0, 256, (50, 166, 3), dtype=np.uint8)]
    paths = []
    for k, rgb in enumerate(images):
        paths.append(str(tmp_path / f"im{k}.png"))
        Image.fromarray(rgb).save(paths[-1])
    written, errors = predict.predict_paths(predictor, paths, str(tmp_path / "out"), batch_size=2, log=None)
    assert not errors
    model = S2RMetricBins(encoder_dim=8, depth_ngf=8, dsa_channels=(4, 4, 8, 8, 16, 16, 16, 16),
                          metric_bins=dict(config.model.metric_bins))

    def depth_fn(variables, x):  # built here; named as the predictor's (the same program: one compile)
        return model.apply(variables, x, use_attention=True)["metric_depth"]

    raw = np.asarray(jax.jit(depth_fn)(loaded.variables, np.stack([predictor.preprocess(im) for im in images])))
    assert 1e-3 <= raw.min() and raw.max() <= 80.0  # normed bins: metres within the range
    for record in written:
        k = paths.index(record["input"])
        want = upsample_to(raw[k, ..., 0], images[k].shape[:2])  # only resized (align_corners): no tanh mapping
        np.testing.assert_allclose(np.load(record["npy"]), want, rtol=1e-5, atol=1e-4)
    assert os.path.exists(written[0]["colour"])
