"""Structure-encoder pretraining: MUNIT-style translation between the synthetic
domain (a) and a style domain (b), as jitted sharded steps.

Each step updates the discriminators on the current translations (LSGAN), then the
generator (shared structure encoder, style encoders, decoders) with the updated
discriminators, as MUNIT's `dis_update` / `gen_update`. Generator loss (weights in
config.loss, MUNIT's defaults except the cycle term the issue asks for):
  gan · LSGAN(D(x_ab), D(x_ba)) + recon_x · |x_recon − x| + recon_s · |s_re − s|
  + recon_c · |c_re − c| + recon_cyc · |x_aba − x|   (each for both domains).
No tensorflow here.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from s2r_jax import distributed
from s2r_jax.models.structure_translation import Discriminators, StructureTranslator
from s2r_jax.training import panels
from s2r_jax.training.init import munit_init


@flax.struct.dataclass
class STEState:
    step: jax.Array
    gen_params: dict   # struct_encoder, style_a, style_b, decoder_a, decoder_b
    dis_params: dict   # dis_a, dis_b
    gen_opt: Any
    dis_opt: Any
    bad_step: jax.Array

    VARIABLE_FIELDS = ("gen_params", "dis_params")

    def variables(self) -> dict:
        """`struct_encoder` at the top level: stage 1's `init_from.struct_encoder` reads it."""
        return {"params": {**self.gen_params, "discriminators": self.dis_params}}


def build_models(config):
    """The translator and the discriminators. Checkpoints written before the depth fields
    existed hold MUNIT's depths, the modules' defaults."""
    m = config.model
    dtype = jnp.dtype(m.dtype)
    return (StructureTranslator(m.encoder_dim, m.style_dim, m.mlp_dim,
                                m.get("decoder_res_blocks", StructureTranslator.decoder_res_blocks), dtype=dtype),
            Discriminators(m.dis_dim, m.get("dis_layers", Discriminators.n_layer),
                           m.get("dis_scales", Discriminators.num_scales), dtype=dtype))


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam with PyTorch's (coupled, L2) weight decay, lr halved every `decay_every_steps`."""
    o = config.optimizer
    schedule = optax.exponential_decay(o.learning_rate, o.decay_every_steps, o.decay_factor, staircase=True)
    return optax.chain(optax.add_decayed_weights(o.weight_decay), optax.adam(schedule, b1=o.b1, b2=o.b2))


def abstract_variables(config) -> dict:
    gen, dis = build_models(config)
    h, w = config.data.image_size
    image = jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32)
    style = jax.ShapeDtypeStruct((1, config.model.style_dim), jnp.float32)
    g = jax.eval_shape(gen.init, jax.random.key(0), image, image, style, style)["params"]
    d = jax.eval_shape(lambda k, x: dis.init(k, x, x, method=Discriminators.both), jax.random.key(0), image)["params"]
    return {"params": {**g, "discriminators": d}}


def create_state(variables: dict, tx: optax.GradientTransformation) -> STEState:
    params = dict(variables["params"])
    dis = params.pop("discriminators")
    return STEState(step=jnp.zeros((), jnp.int32), gen_params=params, dis_params=dis, gen_opt=tx.init(params),
                    dis_opt=tx.init(dis), bad_step=jnp.full((), -1, jnp.int32))


def _lsgan_d(real, fake):
    return sum(jnp.mean(jnp.square(f)) + jnp.mean(jnp.square(r - 1.0)) for r, f in zip(real, fake))


def _lsgan_g(fake):
    return sum(jnp.mean(jnp.square(f - 1.0)) for f in fake)


def _l1(a, b):
    dt = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)  # float64 under numerical checks
    return jnp.mean(jnp.abs(a.astype(dt) - b.astype(dt)))


def make_step(config, tx: optax.GradientTransformation):
    """`step(state, batch) -> (state, metrics)`; batch = {'a': images, 'b': images} in [-1, 1]."""
    gen, dis = build_models(config)
    w = config.loss
    style_dim = config.model.style_dim

    def step(state: STEState, batch):
        x_a, x_b = batch["a"], batch["b"]
        key = jax.random.fold_in(jax.random.key(config.init_seed), state.step)
        s_a, s_b = jax.random.normal(key, (2, x_a.shape[0], style_dim), jnp.float32)

        def dis_loss(dp):
            fake_ab, fake_ba = jax.lax.stop_gradient(gen.apply(
                {"params": state.gen_params}, x_a, x_b, s_a, s_b, method=StructureTranslator.translations))
            real_a, real_b = dis.apply({"params": dp}, x_a, x_b, method=Discriminators.both)
            fake_a, fake_b = dis.apply({"params": dp}, fake_ba, fake_ab, method=Discriminators.both)
            return w.gan * (_lsgan_d(real_a, fake_a) + _lsgan_d(real_b, fake_b))

        loss_d, grads_d = jax.value_and_grad(dis_loss)(state.dis_params)
        upd_d, dis_opt = tx.update(grads_d, state.dis_opt, state.dis_params)
        dis_params = optax.apply_updates(state.dis_params, upd_d)

        def gen_loss(gp):
            out = gen.apply({"params": gp}, x_a, x_b, s_a, s_b)
            adv_a, adv_b = dis.apply({"params": dis_params}, out["x_ba"], out["x_ab"], method=Discriminators.both)
            terms = {
                "loss_adv": _lsgan_g(adv_a) + _lsgan_g(adv_b),
                "loss_recon_x": _l1(out["x_a_recon"], x_a) + _l1(out["x_b_recon"], x_b),
                "loss_recon_s": _l1(out["s_a_re"], s_a) + _l1(out["s_b_re"], s_b),
                "loss_recon_c": _l1(out["c_a_re"], out["c_a"]) + _l1(out["c_b_re"], out["c_b"]),
                "loss_recon_cyc": _l1(out["x_aba"], x_a) + _l1(out["x_bab"], x_b),
            }
            total = (w.gan * terms["loss_adv"] + w.recon_x * terms["loss_recon_x"] + w.recon_s * terms["loss_recon_s"]
                     + w.recon_c * terms["loss_recon_c"] + w.recon_cyc * terms["loss_recon_cyc"])
            return total, terms

        (loss_g, terms), grads_g = jax.value_and_grad(gen_loss, has_aux=True)(state.gen_params)
        upd_g, gen_opt = tx.update(grads_g, state.gen_opt, state.gen_params)
        gen_params = optax.apply_updates(state.gen_params, upd_g)

        norms = {"grad_norm_gen": optax.tree.norm(grads_g), "grad_norm_dis": optax.tree.norm(grads_d)}
        ok = jnp.isfinite(loss_g) & jnp.isfinite(loss_d) & jnp.isfinite(norms["grad_norm_gen"]) & jnp.isfinite(
            norms["grad_norm_dis"])
        apply = ok & (state.bad_step < 0)  # nothing is applied after the first non-finite step
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(apply, a, b), new, old)
        state = state.replace(step=state.step + 1, gen_params=keep(gen_params, state.gen_params),
                              dis_params=keep(dis_params, state.dis_params), gen_opt=keep(gen_opt, state.gen_opt),
                              dis_opt=keep(dis_opt, state.dis_opt),
                              bad_step=jnp.where((state.bad_step < 0) & ~ok, state.step + 1, state.bad_step))
        return state, {"loss_gen": loss_g, "loss_dis": loss_d, **terms, **norms}

    return step


def initial_variables(config, abstract: dict) -> dict:
    """MUNIT's initialisation of the translation networks and discriminators."""
    return munit_init(abstract, jax.random.key(config.init_seed))  # NumPy arrays


def make_panel(config):
    """`panel(state, batch) -> uint8 image`: A | B | A's structure in B's style | A reconstructed."""
    gen, _ = build_models(config)

    def draw(gen_params, x_a, x_b):
        ab = gen.apply({"params": gen_params}, x_a, x_b, method=StructureTranslator.translate)
        code, style = gen.apply({"params": gen_params}, x_a, "a", method=StructureTranslator.encode)
        rec = gen.apply({"params": gen_params}, code, style, "a", method=StructureTranslator.decode)
        return {"a": x_a, "b": x_b, "ab": ab, "rec": rec}

    draw = distributed.SyncedJit(jax.jit(draw), "panel")

    def panel(state: STEState, batch) -> np.ndarray:
        rows = panels.first_rows(draw(state.gen_params, batch["a"], batch["b"]), config.log.num_images)
        return panels.panel([panels.image_to_uint8(rows[k]) for k in ("a", "b", "ab", "rec")])

    return panel
