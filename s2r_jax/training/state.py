"""Training state: trained modules (with Adam state) apart from frozen ones.

Keeping frozen modules out of `params` is what makes them receive no gradient
(the loss is differentiated with respect to `params` only) and hold no optimizer
state, and it leaves them bit-identical through training.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from s2r_jax.models import RGBBaseline, S2RDepthNet


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


def build_model(config) -> S2RDepthNet:
    m = config.model
    if m.get("rgb_baseline", False):
        return RGBBaseline(m.depth_ngf, dtype=jnp.dtype(m.dtype))
    return S2RDepthNet(encoder_dim=m.encoder_dim, depth_ngf=m.depth_ngf, dsa_channels=tuple(m.dsa_channels),
                       shared_prelu=m.shared_prelu, align_corners=m.align_corners, dtype=jnp.dtype(m.dtype))


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


def stage_modules(config) -> tuple[str, ...]:
    return tuple(config.train_modules) + tuple(config.frozen_modules)
