"""ZoeDepth as a user runs it: fine-tuning with train.py (the official optimiser, sharded), the
checkpoint loaded by model_loader, evaluated by eval.py as the official evaluate.py does, and
predicted by `s2r_jax.predict` through the official infer path. A small BEiT/DPT (the
`:local` config) on the procedural frames; one train.py run serves every test here."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from configs_util import load_config, override
from s2r_jax import checkpoint, config_schema, convert, losses, model_loader, repo
from s2r_jax.data import batching, pipeline
from s2r_jax.evaluation.protocols import protocol_from_config
from s2r_jax.evaluation.resize import upsample_to
from s2r_jax.models import build_zoedepth, zoedepth_infer
from s2r_jax.training import zoedepth_stage
from s2r_jax.training.sharding import state_sharding
from test_training import _scalars

STEPS = 8  # 16 frames, batch 8: four epochs


def finetune_config(data_dir, **fields):
    """configs/zoedepth_finetune.py:local on the procedural frames, the backbone trained too (all
    four official parameter groups), a learning rate for six steps, every step logged and saved."""
    c = load_config("zoedepth_finetune", "local")
    c.data.data_dir, c.allow_random_init, c.train_backbone = data_dir, True, True
    c.num_train_steps, c.optimizer.learning_rate = STEPS, 4e-3
    c.log.every_steps, c.log.image_every_steps, c.checkpoint.every_steps, c.checkpoint.keep = 1, STEPS, 1, STEPS
    c.eval.every_steps, c.eval.protocol, c.eval.crop, c.eval.flip_tta = STEPS, "metric", "none", True
    c.eval.data.update(dataset="virtual_kitti", tfds_config="1.3.1", data_dir=data_dir, split="train")
    return override(c, **fields)


@pytest.fixture(scope="module")
def run(procedural_vkitti, tmp_path_factory):
    config = finetune_config(procedural_vkitti)
    workdir = str(tmp_path_factory.mktemp("zoed") / "run")
    repo.load_program("train").train(config, workdir)
    return {"config": config, "workdir": workdir, "scalars": _scalars(workdir)}


@functools.lru_cache(maxsize=None)
def _forward(config_json):
    """The jitted training-config forward (the official `forward`: prep inside), shared by tests."""
    import json

    import ml_collections
    model = zoedepth_stage.build_model(ml_collections.ConfigDict(json.loads(config_json)))
    return model, jax.jit(model.apply)


def forward(config):
    return _forward(config.model.to_json())


# --- the optimiser against torch ------------------------------------------------------------


def test_optimizer_is_torch_adamw_onecycle_clipping_with_the_official_groups():
    """Our optimiser against torch's AdamW(param groups) + OneCycleLR(cycle_momentum) +
    clip_grad_norm_(0.1), as the official trainer steps them, over a whole 12-step cycle on a
    parameter of each group (midas_lr_factor 2 here, to tell MiDaS's decoder group from the
    head's); gradients large and small, so clipping acts on some steps only. Tolerance 1e-6
    relative (float32)."""
    c = load_config("zoedepth_finetune")
    c.optimizer.midas_lr_factor, c.train_backbone = 2.0, True
    shapes = {("midas", "beit", "block0", "attn", "relative_position_bias_table"): (5, 2),   # rel_pos: lr / 10
              ("midas", "beit", "block0", "fc1", "kernel"): (4, 3),                         # encoder: lr / 10
              ("midas", "reassemble1", "readout", "kernel"): (3, 3),                        # encoder (pretrained)
              ("midas", "refinenet1", "out_conv", "kernel"): (2, 2),                        # scratch: lr / 2
              ("head", "seed_bin_regressor", "mlp", "conv1", "bias"): (6,)}                 # head: lr
    rng = np.random.default_rng(0)
    init = {path: rng.standard_normal(shape).astype(np.float32) for path, shape in shapes.items()}
    params = {}
    for path, value in init.items():
        node = params
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = jnp.asarray(value)
    groups = {path: zoedepth_stage.param_group(path) for path in shapes}
    assert list(groups.values()) == ["rel_pos", "encoder", "encoder", "midas_decoder", "head"]
    total = 12
    tx = zoedepth_stage.make_optimizer(c, total)
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p))

    tparams = {path: torch.nn.Parameter(torch.from_numpy(v.copy())) for path, v in init.items()}
    factors = zoedepth_stage.group_factors(c)
    lr = c.optimizer.learning_rate
    torch_groups = [{"params": [tparams[p] for p in shapes if groups[p] == g], "lr": lr * factors[g]}
                    for g in ("encoder", "rel_pos", "midas_decoder", "head")]
    opt = torch.optim.AdamW(torch_groups, lr=lr, weight_decay=c.optimizer.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, [g["lr"] for g in torch_groups], epochs=1, steps_per_epoch=total, cycle_momentum=True,
        base_momentum=0.85, max_momentum=0.95, div_factor=1, final_div_factor=10000, pct_start=0.7,
        three_phase=False)
    head_lr = zoedepth_stage.learning_rate_schedule(c, total)
    clipped = 0
    for step in range(total):
        scale = 0.01 if step % 3 else 3.0  # global norms below and above 0.1
        grads = {path: (scale * rng.standard_normal(shape)).astype(np.float32) for path, shape in shapes.items()}
        assert float(head_lr(step)) == pytest.approx(opt.param_groups[3]["lr"], rel=1e-6)
        for g, group in zip(("encoder", "rel_pos", "midas_decoder"), opt.param_groups):
            assert float(head_lr(step)) * factors[g] == pytest.approx(group["lr"], rel=1e-6)
        for path, p in tparams.items():
            p.grad = torch.from_numpy(grads[path].copy())
        norm = torch.nn.utils.clip_grad_norm_(list(tparams.values()), c.optimizer.clip_grad)
        clipped += float(norm) > c.optimizer.clip_grad
        opt.step()
        sched.step()
        g_tree = jax.tree_util.tree_map_with_path(lambda p, _: jnp.asarray(grads[tuple(k.key for k in p)]), params)
        updates, state = update(g_tree, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        for path, p in tparams.items():
            ours = params
            for k in path:
                ours = ours[k]
            np.testing.assert_allclose(np.asarray(ours), p.detach().numpy(), rtol=1e-6, atol=1e-7,
                                       err_msg=f"step {step} {path}")
    assert 0 < clipped < total
    moved = {path: float(np.abs(tparams[path].detach().numpy() - init[path]).max()) for path in shapes}
    assert moved[("midas", "beit", "block0", "fc1", "kernel")] < 0.2 * moved[("head", "seed_bin_regressor", "mlp",
                                                                                 "conv1", "bias")]


def test_parameter_groups_of_the_model_are_the_official_ones():
    """get_lr_params: BEiT and MiDaS's reassemble layers (core.core.pretrained) -> encoder,
    BEiT's relative position tables -> rel_pos, MiDaS's decoder (scratch) -> midas_decoder,
    everything outside MiDaS -> head; without train_backbone MiDaS is frozen."""
    c = load_config("zoedepth_finetune", "local")
    model, _ = forward(c)
    abstract = zoedepth_stage.abstract_variables(model, c)
    labels = zoedepth_stage.group_labels(abstract["params"])
    flat = {"/".join(k.key for k in p): v for p, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
    assert {k for k, g in flat.items() if g == "rel_pos"} == {
        f"midas/beit/block{i}/attn/relative_position_bias_table" for i in range(c.model.depth)}
    assert all(g == "encoder" for k, g in flat.items() if k.startswith(("midas/beit", "midas/reassemble"))
               and "relative_position" not in k)
    decoder = {k.split("/")[1] for k, g in flat.items() if g == "midas_decoder"}
    assert decoder == {"layer1_rn", "layer2_rn", "layer3_rn", "layer4_rn", "refinenet1", "refinenet2", "refinenet3",
                       "refinenet4", "head_conv1", "head_conv2", "head_conv3"}
    assert {k.split("/")[0] for k, g in flat.items() if g == "head"} == set(abstract["params"]) - {"midas"}
    assert "midas" not in zoedepth_stage.trained_modules(c, abstract)
    assert "midas" in zoedepth_stage.trained_modules(override(c, train_backbone=True), abstract)


def test_configs_fit_the_schema_and_problems_are_named():
    for arg in (None, "local"):
        config_schema.validate(load_config("zoedepth_finetune", arg))
    c = load_config("zoedepth_finetune")
    c.model.kind, c.model.img_size, c.optimizer.pct_start = "nk", (384, 500), 1.5
    with pytest.raises(config_schema.ConfigError) as e:
        config_schema.validate(c)
    assert all(s in str(e.value) for s in ("router's domain loss", "(384, 500)", "pct_start"))
    with pytest.raises(ValueError, match="unknown variant 'locl'"):
        load_config("zoedepth_finetune", "locl")
    c = load_config("zoedepth_finetune", "local")
    with pytest.raises(ValueError, match="ZoeD_M12_K.pt"):  # fine-tuning needs weights to start from
        zoedepth_stage.initial_variables(c, {"params": {}})


# --- train.py ---------------------------------------------------------------------------------


def test_loss_falls_and_the_schedule_is_one_cycle(run):
    """Over an epoch (the same 16 frames, other augmentations) the SILog falls from the first to
    the last (by ~30 %; the augmentations alone move it by a few %); the logged learning rate is
    the head's OneCycle: flat at the maximum for 70 % of the run (div_factor 1), then annealed."""
    loss = run["scalars"]["loss"]
    assert (loss[7] + loss[8]) < 0.8 * (loss[1] + loss[2]), loss
    lr = run["scalars"]["learning_rate"]
    assert lr[1] == lr[5] == pytest.approx(4e-3, rel=1e-6) and lr[8] < 0.5 * lr[7] < lr[6] < lr[5]
    assert "eval/abs_rel" in run["scalars"]  # evaluation during training ran (ZoeDepth's own input)


def test_sharded_step_equals_the_single_device_step(run, procedural_vkitti):
    """train.py's first step, on 8 devices with FSDP, against the same step on one device from the
    same initial weights and batch: the loss and gradient norm agree to float32 summation noise
    and the weights to 1e-5 (a step moves them by up to lr = 4e-3; Adam's first step is
    g / (|g| + 1e-8), so a gradient of ~1e-9 with summation noise moves its weight by up to
    ~1e-6: seen 1.2e-6). The loss is w_si x SILog of
    the forward on the image mapped to [0, 1] against the depth in metres, recomputed here."""
    config = run["config"]
    model, apply = forward(config)
    abstract = zoedepth_stage.abstract_variables(model, config)
    initial = zoedepth_stage.initial_variables(config, abstract)
    batch = next(pipeline.train_iterator(config.data))
    tx = zoedepth_stage.make_optimizer(config, STEPS)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    make_state = lambda v: zoedepth_stage.create_state(v, config, tx)
    shardings = state_sharding(jax.eval_shape(make_state, abstract), mesh, "replicated")
    state = jax.jit(make_state, out_shardings=shardings)(initial)
    step = jax.jit(zoedepth_stage.make_train_step(model, config, tx, zoedepth_stage.learning_rate_schedule(config,
                                                                                                         STEPS)))
    state, metrics = step(state, batching.global_batch(batch, mesh))
    logged = run["scalars"]
    assert float(metrics["loss"]) == pytest.approx(logged["loss"][1], rel=1e-5)
    assert float(metrics["grad_norm"]) == pytest.approx(logged["grad_norm"][1], rel=1e-4)
    sharded, _ = checkpoint.load_variables(run["workdir"], step=1)
    for path, a in jax.tree_util.tree_flatten_with_path(state.variables())[0]:
        b = sharded
        for k in path:
            b = b[k.key]
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5, err_msg=str(path))
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
        jax.tree.leaves(state.variables()), jax.tree.leaves(initial)))
    assert moved > 1e-3  # the step did move the weights: the comparison is not vacuous
    depth = (batch["depth"] + 1) / 2 * config.data.depth_range_m
    mask = (batch["mask"] > 0) & (depth > 1e-3) & (depth < 80.0)
    pred = apply(initial, (batch["image"] + 1) / 2)["metric_depth"]
    assert float(metrics["loss"]) == pytest.approx(float(losses.silog_loss(pred, depth, mask)), rel=1e-5)


# --- the checkpoints in model_loader, eval.py, predict -----------------------------------------


def test_the_loader_reads_a_workdir_and_a_converted_checkpoint(run, tmp_path):
    loaded = model_loader.load_model(run["workdir"])
    assert isinstance(loaded, model_loader.LoadedZoeDepth) and loaded.family == "zoedepth" and loaded.kind == "k"
    assert loaded.image_size == (64, 96) and loaded.model.max_depth == 80.0 and loaded.model.embed_dim == 32
    assert loaded.infer_model.keep_aspect_ratio and not loaded.model.keep_aspect_ratio  # infer vs training config
    shown = loaded.evaluation
    assert shown.image_size == (64, 96) and shown.depth_range_m is None and shown.preprocess is not None
    with pytest.raises(model_loader.CheckpointModelError, match="ZoeD-K, which predicts metres"):
        model_loader.load_model(run["workdir"], depth_range_m=80.0)
    with pytest.raises(model_loader.CheckpointModelError, match="multiple of 32"):
        model_loader.load_model(run["workdir"], image_size=(100, 96))
    # as s2r_jax.convert --zoedepth writes it: meta family/kind/model_config
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in run["config"].model.items() if k != "kind"}
    meta = {"written_by": "s2r_jax.convert", "family": "zoedepth", "kind": "k", "model_config": fields}
    convert.write_checkpoint(loaded.variables, meta, str(tmp_path / "k"))
    converted = model_loader.load_model(str(tmp_path / "k"), image_size=(96, 128), dtype="bfloat16")
    assert converted.image_size == (96, 128) and converted.dtype == "bfloat16"
    convert.write_checkpoint(loaded.variables, dict(meta, kind="nk"), str(tmp_path / "nk"))
    with pytest.raises(model_loader.CheckpointModelError, match="missing.*router"):
        model_loader.load_model(str(tmp_path / "nk"))


def _frames(root):
    """(names, uint8 images) of the procedural frames, in split order."""
    from s2r_jax.evaluation.ground_truth import ground_truth_frames
    e = load_config("eval_vkitti")
    e.data.split, e.data.data_dir = "train", root
    gts, names = ground_truth_frames(e)
    raw = os.path.join(os.path.dirname(root), "raw")
    return names, [np.asarray(Image.open(os.path.join(raw, n)).convert("RGB")) for n in names], gts


def test_eval_py_runs_zoedepth_as_the_official_evaluate_py(run, procedural_vkitti):
    """eval.py on the workdir against the official evaluate.py's steps, recomputed here from the
    PNG files with the official forward (`prep` inside: the resize to the network size, no
    aspect ratio kept): the image / 255, the prediction averaged with the mirrored image's,
    resized to the ground truth (align_corners), in metres. The evaluator instead resizes the
    images on the host (torch's kernel); the two agree to float32 noise."""
    e = load_config("eval_vkitti")
    e.data.split, e.data.data_dir, e.checkpoint = "train", procedural_vkitti, run["workdir"]
    e.crop, e.flip_tta, e.save_predictions = "none", True, True
    config_schema.validate_evaluation(e)
    mean, _, names, kept, source = repo.load_program("eval").evaluate_model(e, protocol_from_config(e))
    assert source["family"] == "zoedepth" and source["depth_range_m"] is None and mean["frames"] == 16
    # evaluation during training (the same frames and protocol, the final weights) gave the same
    assert run["scalars"]["eval/abs_rel"][STEPS] == pytest.approx(mean["abs_rel"], rel=1e-5)
    want_names, images, gts = _frames(procedural_vkitti)
    assert names == want_names
    _, apply = forward(run["config"])
    variables = model_loader.load_model(run["workdir"]).variables
    x = np.stack(images[:8]).astype(np.float32) / np.float32(255)
    plain = np.asarray(apply(variables, x)["metric_depth"])[..., 0]
    mirrored = np.asarray(apply(variables, x[:, :, ::-1])["metric_depth"])[..., 0][:, :, ::-1]
    assert np.abs(plain - mirrored).max() > 1e-2  # flip TTA is not vacuous at the tolerance below
    for index, _, metres in sorted(kept)[:8]:
        want = upsample_to((plain[index] + mirrored[index]) / 2, gts[index].shape)
        np.testing.assert_allclose(metres, want, rtol=1e-4, atol=1e-4)


def test_predict_runs_the_official_infer_path(run, tmp_path, procedural_vkitti):
    """`s2r_jax.predict` on a converted ZoeD-K: each image through the official `model.infer`
    (reflect padding, the network at a multiple of 32 near img_size keeping the aspect ratio,
    torch's bicubic back, flip averaging), metres at the image's size."""
    from s2r_jax import predict
    loaded = model_loader.load_model(run["workdir"])
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in run["config"].model.items() if k != "kind"}
    convert.write_checkpoint(loaded.variables, {"written_by": "s2r_jax.convert", "family": "zoedepth", "kind": "k",
                                                "model_config": fields}, str(tmp_path / "ckpt"))
    names, images, _ = _frames(procedural_vkitti)
    paths = [os.path.join(os.path.dirname(procedural_vkitti), "raw", n) for n in names[:3]]
    predictor = predict.load_predictor(str(tmp_path / "ckpt"))
    assert isinstance(predictor, predict.ZoeDepthPredictor) and predictor.depth_range_m is None
    written, errors = predict.predict_paths(predictor, paths, str(tmp_path / "out"), batch_size=3, log=None)
    assert not errors and len(written) == 3
    model = build_zoedepth("k", **dict(fields, keep_aspect_ratio=True))

    def metric_depth(variables, images):  # built here; named as the predictor's (the same program: one compile)
        return zoedepth_infer(model, variables, images)

    x = np.stack(images[:3]).astype(np.float32) / np.float32(255)
    want = np.asarray(jax.jit(metric_depth)(loaded.variables, x))
    for record in written:  # in sorted path order
        k = paths.index(record["input"])
        got = np.load(record["npy"])
        assert got.shape == images[k].shape[:2]
        np.testing.assert_allclose(got, want[k], rtol=1e-5, atol=1e-4)
    with pytest.raises(predict.PredictError, match="predicts metres"):
        predict.load_predictor(str(tmp_path / "ckpt"), depth_range_m=8.0)


def test_export_writes_zoedepth_s_infer_path(run, tmp_path):
    """`s2r_jax.export` takes a ZoeDepth checkpoint as it takes an S2R one (`variables`,
    `image_size`, a pure `metric_depth`): the StableHLO file, run by `jax.export` alone, gives the
    loaded model's `metric_depth` (the official infer path at the network size) to float32 noise."""
    from s2r_jax import export
    from s2r_jax.export.common import describe
    loaded = model_loader.load_model(run["workdir"])
    options = export.ExportOptions(batch=1, platforms=("cpu",))
    assert describe(loaded, "stablehlo", options).startswith(
        "stablehlo: images float32 (1, 64, 96, 3) RGB in [0, 1] -> depth float32 (1, 64, 96) metres, at most 80 m")
    export.export_model(loaded, "stablehlo", tmp_path / "zoed.stablehlo", options)
    exported = jax.export.deserialize(bytearray((tmp_path / "zoed.stablehlo").read_bytes()))
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 96, 3)).astype(np.float32)
    got = np.asarray(exported.call(x))
    want = np.asarray(jax.jit(loaded.metric_depth)(loaded.variables, x))
    assert got.shape == (1, 64, 96) and float(want.std()) > 1e-3  # not a constant map
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
