"""ZoeDepth fine-tuning (configs/zoedepth_finetune.py): the model, its variables, the train
state, the official optimiser and the SILog step. No tensorflow here.

What the official trainer does (isl-org/ZoeDepth zoedepth/trainers/zoedepth_trainer.py,
base_trainer.py, the model's `get_lr_params`; the values are in the config file):
- loss: `w_si` x SILog(metric depth, ground truth, mask = min_depth < gt < max_depth), the
  prediction resized to the ground truth with align_corners bilinear (`losses.silog_loss`);
- parameter groups: with the backbone trained (`train_midas`), BEiT and MiDaS's reassemble
  layers (the official `core.core.pretrained`) at lr / encoder_lr_factor, except BEiT's
  relative position bias tables at lr / pos_enc_lr_factor, MiDaS's decoder (`scratch`) at
  lr / midas_lr_factor, the rest (the metric head) at lr; without it MiDaS is frozen (no
  gradient, no optimiser state) and only the head trains;
- AdamW (torch's: decoupled weight decay scaled by each group's learning rate), its beta1
  cycled by OneCycleLR (`cycle_momentum`) from max_momentum to base_momentum and back;
- OneCycleLR per group (each group cycles to its own maximum, lr / factor), exactly torch's
  two-phase cosine schedule over the run's steps;
- `clip_grad_norm_(parameters, clip_grad)`: torch's formula, every gradient scaled by
  min(1, clip_grad / (global norm + 1e-6)).
The pipeline gives image and depth in [-1, 1] and a validity mask (s2r_jax/data/pipeline.py);
the step maps the image to [0, 1] (what ZoeDepth takes) and the depth to metres.
"""
from __future__ import annotations

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from s2r_jax import checkpoint, distributed
from s2r_jax.models import build_zoedepth
from s2r_jax.models.layers import resize_bilinear
from s2r_jax.training import panels
from s2r_jax.training.depth_stage import flat, guarded_update, metric_loss
from s2r_jax.training.init import draw_init

BACKBONE = "midas"
GROUPS = ("encoder", "rel_pos", "midas_decoder", "head")  # the official parameter groups, in get_lr_params' order


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict          # {module: params} of the trained top-level modules
    opt_state: Any
    frozen: dict          # {'params': {module: ...}}: MiDaS, unless the backbone is trained
    bad_step: jax.Array   # -1, or the first step (1-based) whose loss or gradient was not finite

    VARIABLE_FIELDS = ("params", "frozen")

    def variables(self) -> dict:
        """All the model's variables, as `ZoeDepth.apply` and checkpoints take them."""
        return {"params": {**self.frozen["params"], **self.params}}


def build_model(model_config):
    """ZoeDepth of `config.model` (its `kind` and the `build_zoedepth` fields)."""
    fields = {k: v for k, v in model_config.items() if k != "kind"}
    return build_zoedepth(model_config.kind, **fields)


def abstract_variables(model, config) -> dict:
    """Shapes of the model's variables at the training image size (nothing allocated)."""
    h, w = config.data.image_size
    return jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))


def trained_modules(config, abstract: dict) -> tuple[str, ...]:
    """Every top-level module; MiDaS only with `train_backbone` (the official `train_midas`)."""
    return tuple(m for m in abstract["params"] if config.train_backbone or m != BACKBONE)


def param_group(path: tuple[str, ...]) -> str:
    """The official parameter group of the parameter at `path` (`ZoeDepth.get_lr_params`)."""
    if path[0] != BACKBONE:
        return "head"
    if path[1] == "beit" or path[1].startswith("reassemble"):  # the official core.core.pretrained
        return "rel_pos" if path[-1] == "relative_position_bias_table" else "encoder"
    return "midas_decoder"                                      # the official core.core.scratch


def group_labels(params: dict) -> dict:
    """The tree of `param_group` labels of a tree of parameters."""
    return jax.tree_util.tree_map_with_path(lambda p, _: param_group(tuple(k.key for k in p)), params)


def group_factors(config) -> dict[str, float]:
    """Each group's learning rate as a fraction of `optimizer.learning_rate`."""
    o = config.optimizer
    return {"encoder": 1 / o.encoder_lr_factor, "rel_pos": 1 / o.pos_enc_lr_factor,
            "midas_decoder": 1 / o.midas_lr_factor, "head": 1.0}


def one_cycle(start: float, peak: float, end: float, total_steps: int, pct_start: float) -> optax.Schedule:
    """torch's OneCycleLR curve (two phases, cosine annealing): `start` -> `peak` over steps
    0 .. pct_start * total_steps - 1, then `peak` -> `end` at step total_steps - 1; for
    learning rates (start = peak / div_factor, end = start / final_div_factor) and momenta."""
    end1, end2 = float(pct_start * total_steps) - 1, float(total_steps - 1)

    def schedule(count):
        step = jnp.asarray(count, jnp.float32)
        first = step <= end1
        # torch's pct; the guards only avoid 0/0 where torch would divide by zero
        pct = jnp.where(first, step / max(end1, 1e-12), (step - end1) / max(end2 - end1, 1e-12))
        a, b = jnp.where(first, start, peak), jnp.where(first, peak, end)
        return b + (a - b) / 2.0 * (jnp.cos(math.pi * pct) + 1.0)

    return schedule


def learning_rate_schedule(config, total_steps: int, factor: float = 1.0) -> optax.Schedule:
    """OneCycleLR of one group (maximum `optimizer.learning_rate * factor`)."""
    o = config.optimizer
    peak = o.learning_rate * factor
    start = peak / o.div_factor
    return one_cycle(start, peak, start / o.final_div_factor, total_steps, o.pct_start)


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
    """`torch.nn.utils.clip_grad_norm_`: gradients x min(1, max_norm / (global norm + 1e-6))
    (optax's `clip_by_global_norm` has no 1e-6 and divides only above the threshold)."""

    def update(updates, state, params=None):
        del params
        scale = jnp.minimum(max_norm / (optax.tree.norm(updates) + 1e-6), 1.0)
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def scale_by_group(config) -> optax.GradientTransformation:
    """Each update times its parameter group's learning-rate factor (`group_factors`)."""
    factors = group_factors(config)

    def update(updates, state, params=None):
        del params
        labels = group_labels(updates)
        return jax.tree.map(lambda u, g: u * factors[g] if factors[g] != 1.0 else u, updates, labels), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
    """Clipping, then AdamW with the cycled beta1 and, per official parameter group, its
    OneCycle learning rate (`total_steps`: the run's, OneCycleLR's epochs x steps per epoch).

    torch gives every group its own OneCycle from its own maximum lr / factor; every point of
    that curve, and so the whole AdamW step (weight decay included, being scaled by the
    group's lr), is the head group's times the factor: one AdamW at the head's schedule, then
    each update times its group's factor, is the same optimiser (tested against torch).
    """
    o = config.optimizer
    if o.cycle_momentum:
        b1 = one_cycle(o.max_momentum, o.base_momentum, o.max_momentum, total_steps, o.pct_start)
    else:
        b1 = o.b1
    adamw = optax.inject_hyperparams(optax.adamw)(
        learning_rate=learning_rate_schedule(config, total_steps), b1=b1, b2=o.b2, eps=o.eps,
        weight_decay=o.weight_decay)
    clip = [clip_by_global_norm_torch(o.clip_grad)] if o.clip_grad else []
    return optax.chain(*clip, adamw, scale_by_group(config))


def create_state(variables: dict, config, tx: optax.GradientTransformation) -> TrainState:
    """Split the model's variables into trained and frozen modules and start the optimiser."""
    trained = trained_modules(config, variables)
    params = {m: variables["params"][m] for m in trained}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      frozen={"params": {m: v for m, v in variables["params"].items() if m not in trained}},
                      bad_step=jnp.full((), -1, jnp.int32))


def _random_rule(path, leaf, module, collection):
    """PyTorch's default initialisation (what ZoeDepth's metric head gets), for smoke tests and
    training from scratch: kernels and their biases U(+-1/sqrt(fan_in)); LayerNorm 1/0; BEiT's
    own parameters as timm draws them (cls token and bias tables N(0, 0.02), gamma 0.1, q/v 0)."""
    del path, collection
    if "kernel" in module and leaf in ("kernel", "bias"):
        shape = module["kernel"].shape
        return ("uniform", float(1 / np.sqrt(np.prod(shape[:-1]))), 0.0)
    if leaf in ("cls_token", "relative_position_bias_table"):
        return ("normal", 0.02, 0.0)
    if leaf.startswith("gamma_"):
        return ("const", 0.0, 0.1)
    return ("const", 0.0, 1.0 if leaf == "scale" else 0.0)


def initial_variables(config, abstract: dict) -> dict:
    """The variables of `config.init_from` (a converted ZoeDepth checkpoint or a fine-tuning
    workdir), shape-checked; random ones only with `allow_random_init` (smoke tests)."""
    if not config.init_from:
        if not config.allow_random_init:
            raise ValueError("config.init_from: fine-tuning starts from a ZoeDepth checkpoint (python -m "
                             "s2r_jax.convert --zoedepth ZoeD_M12_K.pt --output DIR) or a zoedepth_finetune "
                             "workdir; allow_random_init=True is for smoke tests only")
        return draw_init(abstract, jax.random.key(config.init_seed), _random_rule)  # NumPy arrays
    variables, _ = checkpoint.load_variables(config.init_from)
    got, want = flat(variables.get("params", {})), flat(abstract["params"])
    problems = [f"{k}: not in this model" for k in sorted(set(got) - set(want))]
    problems += [f"{k}: missing from the checkpoint" for k in sorted(set(want) - set(got))]
    problems += [f"{k}: checkpoint {tuple(got[k].shape)}, model {tuple(want[k].shape)}"
                 for k in sorted(set(got) & set(want)) if tuple(got[k].shape) != tuple(want[k].shape)]
    if problems:
        raise ValueError(f"init_from = {config.init_from} does not fit the configured ZoeD-{config.model.kind.upper()} "
                         f"({len(problems)} variables differ):\n  " + "\n  ".join(problems[:20]))
    logging.info("init_from: ZoeDepth <- %s", config.init_from)
    return {"params": jax.tree.map(np.asarray, variables["params"])}


def loss_fn(model, config, params, state: TrainState, batch):
    """(loss, metrics): w_si x SILog of the metric depth of the images in [0, 1]."""
    out = model.apply(state.replace(params=params).variables(), (batch["image"] + 1.0) / 2.0)
    silog = metric_loss(out["metric_depth"], batch, config)
    loss = config.loss.w_si * silog
    return loss, {"loss": loss, "loss_silog": silog}


def make_train_step(model, config, tx: optax.GradientTransformation, schedule: optax.Schedule):
    """`step(state, batch) -> (state, metrics)`, unjitted; `schedule`: the head's learning rate (logged)."""

    def step(state: TrainState, batch):
        grad_fn = jax.value_and_grad(lambda p: loss_fn(model, config, p, state, batch), has_aux=True)
        (loss, metrics), grads = grad_fn(state.params)
        state, grad_norm = guarded_update(state, tx, loss, grads)
        metrics.update(grad_norm=grad_norm, learning_rate=schedule(state.step - 1))
        return state, metrics

    return step


def make_panel(model, config):
    """`panel(state, batch) -> uint8 image`: input | predicted depth | ground truth (both on the
    pipeline's [-1, 1] scale of depth_range_m) for the first `config.log.num_images` examples."""
    def predict(variables, images):  # at the network size, brought to the images'
        depth = model.apply(variables, (images + 1.0) / 2.0)["metric_depth"]
        return resize_bilinear(depth, images.shape[1:3], align_corners=True)

    predict = distributed.SyncedJit(jax.jit(predict), "panel")

    def panel(state: TrainState, batch) -> np.ndarray:
        depth = predict(state.variables(), batch["image"]) / config.data.depth_range_m * 2 - 1
        rows = panels.first_rows({"image": batch["image"], "gt": batch["depth"], "depth": depth},
                                 config.log.num_images)
        return panels.training_panel(rows["image"], {"depth": [rows["depth"]]}, rows["gt"])

    return panel
