"""The training step: loss of the stage, Adam update, as one jitted sharded function.

Losses as the official train.py: the multi-scale L1 of the four DepthNet outputs
against the ground truth resized with align_corners=True, plus (stage 1) lambda_w
times the structure-weighted term on the structure map and the full-size ground
truth. A step whose loss or gradient is not finite is not applied (the state keeps
its last good values) and its number is recorded in `bad_step`, so the host can
stop with a message naming it without synchronising on every step.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from s2r_jax import losses
from s2r_jax.training.state import TrainState


def make_loss_fn(model, config) -> Callable:
    train = frozenset(config.train_modules)

    def loss_fn(params, state: TrainState, batch):
        variables = state.replace(params=params).variables()
        out, updates = model.apply(variables, batch["image"], train=train, use_attention=config.use_attention,
                                   mutable=["batch_stats"])
        mask = batch["mask"] if config.loss.masked else None
        l1 = losses.depth_l1_multiscale(out["depth"], batch["depth"], mask)
        metrics = {"loss_depth_l1": l1}
        total = l1
        if config.loss.struct_weight:
            sw = losses.struct_weighted_loss(out["structure_map"], batch["depth"], config.loss.beta)
            metrics["loss_struct_weighted"] = sw
            total = total + config.loss.struct_weight * sw
        metrics["loss"] = total
        new_stats = {m: updates["batch_stats"][m] for m in state.batch_stats}
        return total, (metrics, new_stats)

    return loss_fn


def make_train_step(model, config, tx: optax.GradientTransformation, schedule: optax.Schedule) -> Callable:
    """`step(state, batch) -> (state, metrics)`, unjitted (see `jit_train_step`)."""
    loss_fn = make_loss_fn(model, config)

    def step(state: TrainState, batch):
        (loss, (metrics, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        state = state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            batch_stats=keep(new_stats, state.batch_stats),
            opt_state=keep(opt_state, state.opt_state),
            bad_step=jnp.where((state.bad_step < 0) & ~ok, state.step + 1, state.bad_step),  # as numbered in logs
        )
        metrics.update(grad_norm=grad_norm, learning_rate=schedule(state.step - 1))
        return state, metrics

    return step


def jit_train_step(step_fn, state_sharding, batch_sharding, replicated):
    """jit with explicit shardings; the state is donated (updated in place)."""
    return jax.jit(step_fn, in_shardings=(state_sharding, batch_sharding),
                   out_shardings=(state_sharding, replicated), donate_argnums=(0,))
