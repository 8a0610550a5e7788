"""A depth stage of S2R-DepthNet (stage 1, stage 2, fine-tuning, and the metric-bins variant):
the network, its variables and their official initialisation, the train state, the optimiser
and the train step.

No tensorflow here: the step and the state also run where only jax is installed.

The state keeps the trained modules (with Adam state) apart from the frozen ones:
the loss is differentiated with respect to the trained modules only, so frozen modules
get no gradient, hold no optimiser state and stay bit-identical through training.

The step, as the official train.py: the multi-scale L1 of the four DepthNet outputs
against the ground truth resized with align_corners=True, plus (stage 1) lambda_w times
the structure-weighted term on the structure map and the full-size ground truth. The
metric-bins variant (`config.model.metric_bins`, configs/metric_bins_s2r.py) instead takes
ZoeDepth's SILog loss on its depth in metres, the ground truth mapped back to metres in the
step (the pipeline gives d / depth_range_m * 2 - 1) and masked to min_depth < d < max_depth.
A step whose loss or gradient is not finite is not applied, nor is any later one: the
state stays at the last good step and `bad_step` records the first bad one, so the
host stops with a message naming it without synchronising on every step.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from s2r_jax import checkpoint, distributed, losses
from s2r_jax.models import RGBBaseline, S2RDepthNet
from s2r_jax.models.s2r_metric_bins import S2RMetricBins
from s2r_jax.training import panels
from s2r_jax.training.init import official_init


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict          # {module: params} of the trained modules
    batch_stats: dict     # {module: batch_stats} of the trained modules
    opt_state: Any
    frozen: dict          # {'params': {module: ...}, 'batch_stats': {module: ...}} of the frozen modules
    bad_step: jax.Array   # -1, or the first step (1-based, as logged) whose loss or gradient was not finite

    # held by checkpoints' `variables` item (via `variables()`); the rest is the `train` item
    VARIABLE_FIELDS = ("params", "batch_stats", "frozen")

    def variables(self) -> dict:
        """All the model's variables, as `S2RDepthNet.apply` and checkpoints take them."""
        return {"params": {**self.frozen["params"], **self.params},
                "batch_stats": {**self.frozen.get("batch_stats", {}), **self.batch_stats}}


def build_model(model_config) -> S2RDepthNet | RGBBaseline:
    """The network of `config.model` (S2R-DepthNet, the metric-bins variant when the config has
    `model.metric_bins`, or the demo's RGB baseline)."""
    m = model_config
    if m.rgb_baseline:
        return RGBBaseline(m.depth_ngf, dtype=jnp.dtype(m.dtype))
    fields = dict(encoder_dim=m.encoder_dim, depth_ngf=m.depth_ngf, dsa_channels=tuple(m.dsa_channels),
                  shared_prelu=m.shared_prelu, align_corners=m.align_corners, dtype=jnp.dtype(m.dtype))
    if is_metric(model_config):
        return S2RMetricBins(**fields, metric_bins=dict(m.metric_bins))
    return S2RDepthNet(**fields)


def is_metric(model_config) -> bool:
    """Whether the network predicts metres (the metric-bins variant) rather than tanh depth."""
    return "metric_bins" in model_config


def stage_modules(config) -> tuple[str, ...]:
    return tuple(config.train_modules) + tuple(config.frozen_modules)


def abstract_variables(model, config) -> dict:
    """Shapes of the stage's modules' variables (nothing allocated)."""
    h, w = config.data.image_size
    image = jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32)
    full = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, use_attention=config.use_attention), image)
    mods = stage_modules(config)
    return {col: {m: full[col][m] for m in mods if m in full[col]} for col in ("params", "batch_stats")}


def flat(tree, prefix=""):
    """{'a/b/c': leaf} of a nested dict."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _load_module(path: str, module: str, expected: dict) -> dict:
    """{col: {'a/b': array}} of `module` from checkpoint directory `path`, shape-checked against `expected`."""
    variables, _ = checkpoint.load_variables(path)
    if module not in variables.get("params", {}):
        raise ValueError(f"init_from.{module}: checkpoint {path} holds no '{module}' "
                         f"(it holds {sorted(variables.get('params', {}))})")
    out, problems = {}, []
    for col in ("params", "batch_stats"):
        got = flat(variables.get(col, {}).get(module, {}))
        want = flat(expected.get(col, {}).get(module, {}))
        for k, v in got.items():
            if k not in want:
                problems.append(f"{col}/{module}/{k}: not in this model")
            elif tuple(v.shape) != tuple(want[k].shape):
                problems.append(f"{col}/{module}/{k}: checkpoint {tuple(v.shape)}, model {tuple(want[k].shape)}")
        out[col] = got
    if problems:
        raise ValueError(f"init_from.{module} = {path} does not fit the configured model:\n  " + "\n  ".join(problems))
    return out


def check_frozen_sources(config) -> None:
    """Frozen modules must come from a checkpoint (a random frozen module trains nothing useful)."""
    missing = [m for m in config.frozen_modules if not config.init_from[m]]
    if missing and not config.allow_random_frozen:
        raise ValueError("frozen modules must be loaded: set " + ", ".join(f"config.init_from.{m}" for m in missing)
                         + " (a workdir or a converted checkpoint); allow_random_frozen=True is for smoke tests only")


def initial_variables(config, abstract: dict) -> dict:
    """Official initialisation, then every module named in `config.init_from` loaded over it
    (a partial module, e.g. only the DSA trunk from the ImageNet DRN, replaces just its part)."""
    check_frozen_sources(config)
    variables = official_init(abstract, jax.random.key(config.init_seed))  # NumPy arrays
    for module in stage_modules(config):
        path = config.init_from[module]
        if not path:
            continue
        for col, values in _load_module(path, module, abstract).items():
            for key, value in values.items():
                node = variables[col][module]
                *parents, leaf = key.split("/")
                for p in parents:
                    node = node[p]
                node[leaf] = np.asarray(value)
        logging.info("init_from: %s <- %s", module, path)
    return variables


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """The official StepLR: multiplied by `decay_factor` every `decay_every_epochs` epochs."""
    o = config.optimizer
    return optax.exponential_decay(o.learning_rate, transition_steps=max(1, o.decay_every_epochs * steps_per_epoch),
                                   decay_rate=o.decay_factor, staircase=True)


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
    o = config.optimizer
    return optax.adam(learning_rate_schedule(config, steps_per_epoch), b1=o.b1, b2=o.b2)


def create_state(variables: dict, config, tx: optax.GradientTransformation) -> TrainState:
    """Split full model variables into trained and frozen parts and start Adam."""
    stats = variables.get("batch_stats", {})
    params = {m: variables["params"][m] for m in config.train_modules}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats={m: stats[m] for m in config.train_modules if m in stats},
        opt_state=tx.init(params),
        frozen={"params": {m: variables["params"][m] for m in config.frozen_modules},
                "batch_stats": {m: stats[m] for m in config.frozen_modules if m in stats}},
        bad_step=jnp.full((), -1, jnp.int32),
    )


def loss_fn(model, config, params, state: TrainState, batch):
    """(total loss, (metrics, updated batch statistics of the trained modules))."""
    variables = state.replace(params=params).variables()
    out, updates = model.apply(variables, batch["image"], train=frozenset(config.train_modules),
                               use_attention=config.use_attention, mutable=["batch_stats"])
    if is_metric(config.model):
        total = metric_loss(out["metric_depth"], batch, config)
        metrics = {"loss_silog": total}
    else:
        mask = batch["mask"] if config.loss.masked else None
        total = losses.depth_l1_multiscale(out["depth"], batch["depth"], mask)
        metrics = {"loss_depth_l1": total}
    if config.loss.get("struct_weight"):  # stage 1 (the metric-bins variant's loss has no such term)
        sw = losses.struct_weighted_loss(out["structure_map"], batch["depth"], config.loss.beta)
        metrics["loss_struct_weighted"] = sw
        total = total + config.loss.struct_weight * sw
    metrics["loss"] = total
    new_stats = {m: updates["batch_stats"][m] for m in state.batch_stats}
    return total, (metrics, new_stats)


def make_train_step(model, config, tx: optax.GradientTransformation, schedule: optax.Schedule):
    """`step(state, batch) -> (state, metrics)`, unjitted."""

    def step(state: TrainState, batch):
        grad_fn = jax.value_and_grad(lambda p: loss_fn(model, config, p, state, batch), has_aux=True)
        (loss, (metrics, new_stats)), grads = grad_fn(state.params)
        state, grad_norm = guarded_update(state, tx, loss, grads, batch_stats=new_stats)
        metrics.update(grad_norm=grad_norm, learning_rate=schedule(state.step - 1))
        return state, metrics

    return step


def guarded_update(state, tx: optax.GradientTransformation, loss: jax.Array, grads, **also):
    """(state one step on, gradient norm): `grads` applied to `state.params` by `tx`, and the
    fields in `also` replaced, unless the loss or the gradient is not finite or an earlier
    step was not; then only `step` advances and `bad_step` records the first bad step."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    apply = ok & (state.bad_step < 0)  # nothing is applied after the first non-finite step
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(apply, a, b), new, old)
    state = state.replace(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        bad_step=jnp.where((state.bad_step < 0) & ~ok, state.step + 1, state.bad_step),  # as numbered in logs
        **{k: keep(v, getattr(state, k)) for k, v in also.items()},
    )
    return state, grad_norm


def depth_in_metres(batch, depth_range_m: float, min_depth: float, max_depth: float):
    """The pipeline's depth (d / depth_range_m * 2 - 1) back in metres, and the mask of pixels
    that are valid and min_depth < d < max_depth (ZoeDepth's training mask)."""
    depth = (batch["depth"] + 1.0) / 2.0 * depth_range_m
    return depth, (batch["mask"] > 0) & (depth > min_depth) & (depth < max_depth)


def metric_loss(pred_metres: jax.Array, batch, config) -> jax.Array:
    """ZoeDepth's SILog of a prediction in metres against the batch's ground truth in metres."""
    depth, mask = depth_in_metres(batch, config.data.depth_range_m, config.loss.min_depth, config.loss.max_depth)
    return losses.silog_loss(pred_metres, depth, mask, beta=config.loss.silog_beta)


def make_eval_predict(model, config):
    """(`predict(variables, images)` for `DatasetEvaluation`, the metres of a tanh output of +1 or
    None when the network predicts metres)."""
    if is_metric(config.model):
        return lambda v, images: model.apply(v, images, use_attention=config.use_attention)["metric_depth"], None
    finest = lambda v, images: model.apply(v, images, use_attention=config.use_attention)["depth"][-1]
    return finest, config.data.depth_range_m


def make_predict(model, config):
    """`predict(variables, images) -> the model's outputs` in eval mode (panels, evaluation during training)."""
    return lambda variables, images: model.apply(variables, images, use_attention=config.use_attention)


def make_panel(model, config):
    """`panel(state, batch) -> uint8 image`: input | structure | attention | prediction | ground truth
    for the first `config.log.num_images` examples of the global batch."""
    predict = distributed.SyncedJit(jax.jit(make_predict(model, config)), "panel")

    def panel(state: TrainState, batch) -> np.ndarray:
        out = predict(state.variables(), batch["image"])
        shown = {k: v for k, v in out.items() if k in ("structure_map", "attention_map")}
        shown["depth"] = out["depth"][-1]
        if "metric_depth" in out:  # on the ground truth's [-1, 1] scale
            shown["depth"] = out["metric_depth"] / config.data.depth_range_m * 2 - 1
        rows = panels.first_rows({"image": batch["image"], "gt": batch["depth"], **shown}, config.log.num_images)
        return panels.training_panel(rows["image"], {**rows, "depth": [rows["depth"]]}, rows["gt"])

    return panel
