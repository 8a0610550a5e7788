"""The structure-encoder pretraining loop (`train.py --config configs/ste_pretrain.py`)."""
from __future__ import annotations

import jax
import numpy as np

from s2r_jax.data import batching, pipeline
from s2r_jax.data.style_images import style_dataset
from s2r_jax.models.structure_translation import StructureTranslator
from s2r_jax.training import panels
from s2r_jax.training.config import validate
from s2r_jax.training.init import munit_init
from s2r_jax.training.loop import Task, run
from s2r_jax.training.sharding import make_mesh, maybe_initialize_distributed, replicated, state_sharding
from s2r_jax.training.ste import STEState, abstract_variables, build_models, create_state, make_optimizer, make_step


def _batches(config, start: int, mesh):
    import tensorflow_datasets as tfds
    a = pipeline.train_iterator(config.data, start_step=start)
    b = iter(tfds.as_numpy(style_dataset(
        config.style_images, config.data.image_size, config.data.batch_size, seed=config.seed, start_step=start,
        process_index=jax.process_index(), process_count=jax.process_count())))
    return batching.prefetch_to_mesh(({"a": x["image"], "b": y} for x, y in zip(a, b)), mesh)


def pretrain(config, workdir: str) -> STEState:
    validate(config)
    if not config.style_images:
        raise ValueError("config.style_images: a folder of images for the style domain is required")
    maybe_initialize_distributed(config)
    mesh = make_mesh(config)
    tx = make_optimizer(config)
    abstract = abstract_variables(config)
    abstract_state = jax.eval_shape(lambda v: create_state(v, tx), abstract)
    shardings = state_sharding(abstract_state, mesh, config.param_sharding)
    new_state = jax.jit(lambda v: create_state(v, tx), out_shardings=shardings)
    restored = jax.jit(lambda v, t: create_state(v, tx).replace(**t), out_shardings=shardings)
    step_fn = jax.jit(make_step(config, tx), in_shardings=(shardings, batching.batch_sharding(mesh)),
                      out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    gen, _ = build_models(config)
    translate = jax.jit(lambda p, xa, xb: gen.apply({"params": p}, xa, xb, method=StructureTranslator.translate))
    recon = jax.jit(lambda p, x: gen.apply({"params": p}, x, "a", method=StructureTranslator.encode))

    def panel(state, batch):
        """A | B | A's structure in B's style | A reconstructed."""
        k = config.log.num_images
        xa, xb = (jax.device_get(batch[d])[:k] for d in ("a", "b"))
        ab = jax.device_get(translate(state.gen_params, xa, xb))
        c, s = recon(state.gen_params, xa)
        rec = jax.device_get(gen.apply({"params": state.gen_params}, c, s, "a", method=StructureTranslator.decode))
        return panels.panel([panels.image_to_uint8(x) for x in (xa, xb, ab, rec)])

    task = Task(
        name="ste_pretrain", abstract_variables=abstract, abstract_state=abstract_state, shardings=shardings,
        variable_shardings=state_sharding(abstract, mesh, config.param_sharding),
        init_state=lambda: new_state(jax.tree.map(np.asarray, munit_init(abstract, jax.random.key(config.seed)))),
        state_from=restored, step_fn=step_fn, batches_from=lambda start: _batches(config, start, mesh),
        num_steps=config.num_train_steps, panel=panel)
    return run(config, workdir, task)
