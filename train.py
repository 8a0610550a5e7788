r"""Train a stage of S2R-DepthNet (structure-encoder pretraining, stage 1, stage 2, fine-tuning,
the metric-bins variant) or fine-tune ZoeDepth.

  python train.py --config configs/ste_pretrain.py --workdir runs/ste --config.style_images=DIR
  python train.py --config configs/struct_decoder.py --workdir runs/stage1 \
      --config.init_from.struct_encoder=runs/ste
  python -m s2r_jax.convert --drn_imagenet drn_d_22-4bd2f8ea.pth --output ckpt/drn_imagenet
  python train.py --config configs/dsa_depth.py --workdir runs/stage2 \
      --config.init_from.struct_encoder=runs/stage1 --config.init_from.struct_decoder=runs/stage1 \
      --config.init_from.dsa=ckpt/drn_imagenet
  python train.py --config configs/dsa_depth.py:local --workdir /tmp/quick \
      --config.data.data_dir=/tmp/tfds --config.allow_random_frozen=True   # a smoke run on a CPU
  python train.py --config configs/metric_bins_s2r.py --workdir runs/metric_bins \
      --config.init_from.struct_encoder=runs/stage1 --config.init_from.struct_decoder=runs/stage1 \
      --config.init_from.dsa=ckpt/drn_imagenet
  python -m s2r_jax.convert --zoedepth ZoeD_M12_K.pt --output ckpt/zoed_k
  python train.py --config configs/zoedepth_finetune.py --workdir runs/zoed_k --config.init_from=ckpt/zoed_k

Any field can be overridden with --config.FIELD=VALUE; add --config.distributed=True on
every host of a cluster (docs/multihost.md). Re-running with the same workdir resumes from
its latest checkpoint. Each function below reads top-down in the order the data flows:
mesh -> data -> model/init -> state/shardings -> step -> restore -> loop.
"""
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from s2r_jax import checkpoint, config_schema, console, distributed
from s2r_jax.data import batching
from s2r_jax.training import depth_stage, loop, ste_stage, zoedepth_stage
from s2r_jax.training.sharding import make_mesh, replicated, state_sharding



def train_depth_stage(config, workdir: str):
    """Stage 1, stage 2, fine-tuning or the metric-bins variant (configs/struct_decoder.py,
    dsa_depth.py, finetune_kitti.py, metric_bins_s2r.py)."""
    from s2r_jax.data import pipeline

    mesh = make_mesh(config.mesh.shape, config.mesh.axes)                          # mesh
    batching.check_divisible(config.data.batch_size, mesh, "config.data.batch_size")
    steps_per_epoch = pipeline.steps_per_epoch(config.data)                          # data
    num_steps = config.num_train_steps or config.num_epochs * steps_per_epoch
    model = depth_stage.build_model(config.model)                                    # model/init
    abstract_variables = depth_stage.abstract_variables(model, config)
    tx = depth_stage.make_optimizer(config, steps_per_epoch)
    make_state = lambda variables: depth_stage.create_state(variables, config, tx)    # state/shardings
    shardings = state_sharding(jax.eval_shape(make_state, abstract_variables), mesh, config.param_sharding,
                               config.fsdp_min_size)
    schedule = depth_stage.learning_rate_schedule(config, steps_per_epoch)            # step
    train_step = jax.jit(depth_stage.make_train_step(model, config, tx, schedule),
                         in_shardings=(shardings, batching.batch_sharding(mesh)),
                         out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.checkpoint.keep)       # restore
    state = loop.restore_or_initialize(ckpt, config.stage, make_state, shardings, abstract_variables,
                                       lambda: depth_stage.initial_variables(config, abstract_variables))
    rows = batching.host_rows(mesh, config.data.batch_size)                           # loop
    batches = batching.prefetch_to_mesh(pipeline.train_iterator(config.data, start_step=int(
        distributed.host_value(state.step)), rows=rows), mesh, config.data.batch_size)
    evaluate = None
    if config.eval.every_steps:
        predict, depth_range_m = depth_stage.make_eval_predict(model, config)
        evaluate = _evaluation(config, mesh, predict, image_size=config.data.image_size, depth_range_m=depth_range_m)
    return loop.train(config, workdir, ckpt, state, train_step, batches, num_steps,
                      panel=depth_stage.make_panel(model, config), evaluate=evaluate)


def train_zoedepth_stage(config, workdir: str):
    """ZoeDepth fine-tuning (configs/zoedepth_finetune.py): SILog, AdamW with the official groups, OneCycle."""
    from s2r_jax.data import pipeline

    mesh = make_mesh(config.mesh.shape, config.mesh.axes)                          # mesh
    batching.check_divisible(config.data.batch_size, mesh, "config.data.batch_size")
    steps_per_epoch = pipeline.steps_per_epoch(config.data)                          # data
    num_steps = config.num_train_steps or config.num_epochs * steps_per_epoch
    model = zoedepth_stage.build_model(config.model)                                 # model/init
    abstract_variables = zoedepth_stage.abstract_variables(model, config)
    tx = zoedepth_stage.make_optimizer(config, num_steps)                            # OneCycle over the run
    make_state = lambda variables: zoedepth_stage.create_state(variables, config, tx)  # state/shardings
    shardings = state_sharding(jax.eval_shape(make_state, abstract_variables), mesh, config.param_sharding,
                               config.fsdp_min_size)
    schedule = zoedepth_stage.learning_rate_schedule(config, num_steps)              # step
    train_step = jax.jit(zoedepth_stage.make_train_step(model, config, tx, schedule),
                         in_shardings=(shardings, batching.batch_sharding(mesh)),
                         out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.checkpoint.keep)       # restore
    state = loop.restore_or_initialize(ckpt, config.stage, make_state, shardings, abstract_variables,
                                       lambda: zoedepth_stage.initial_variables(config, abstract_variables))
    rows = batching.host_rows(mesh, config.data.batch_size)                           # loop
    batches = batching.prefetch_to_mesh(pipeline.train_iterator(config.data, start_step=int(
        distributed.host_value(state.step)), rows=rows), mesh, config.data.batch_size)
    evaluate = None
    if config.eval.every_steps:  # as the official evaluate.py: its own input size, metres out
        from s2r_jax.model_loader import zoedepth_evaluation
        shown = zoedepth_evaluation(model)
        evaluate = _evaluation(config, mesh, shown.predict, image_size=shown.image_size, depth_range_m=None,
                               preprocess=shown.preprocess)
    return loop.train(config, workdir, ckpt, state, train_step, batches, num_steps,
                      panel=zoedepth_stage.make_panel(model, config), evaluate=evaluate)


def _evaluation(config, mesh, predict, **model_inputs):
    """`evaluate(state) -> metrics` on `config.eval.data` under `config.eval`'s protocol, on every
    device of every host (`model_inputs`: DatasetEvaluation's image_size, depth_range_m, preprocess)."""
    from s2r_jax.evaluation.evaluator import DatasetEvaluation
    from s2r_jax.evaluation.protocols import protocol_from_config
    evaluation = DatasetEvaluation(config.eval.data, config.eval.ground_truth, protocol_from_config(config.eval),
                                   mesh, batch_size=config.eval.batch_size, progress=False, **model_inputs)
    return lambda state: evaluation.run(predict, state.variables()).mean


def pretrain_structure_encoder(config, workdir: str):
    """MUNIT-style structure-encoder pretraining (configs/ste_pretrain.py)."""
    import tensorflow_datasets as tfds

    from s2r_jax.data import pipeline
    from s2r_jax.data.style_images import style_dataset

    mesh = make_mesh(config.mesh.shape, config.mesh.axes)                          # mesh
    batching.check_divisible(config.data.batch_size, mesh, "config.data.batch_size")
    abstract_variables = ste_stage.abstract_variables(config)                      # model/init
    tx = ste_stage.make_optimizer(config)
    make_state = lambda variables: ste_stage.create_state(variables, tx)            # state/shardings
    shardings = state_sharding(jax.eval_shape(make_state, abstract_variables), mesh, config.param_sharding,
                               config.fsdp_min_size)
    train_step = jax.jit(ste_stage.make_step(config, tx),                           # step
                         in_shardings=(shardings, batching.batch_sharding(mesh)),
                         out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.checkpoint.keep)     # restore
    state = loop.restore_or_initialize(ckpt, config.stage, make_state, shardings, abstract_variables,
                                       lambda: ste_stage.initial_variables(config, abstract_variables))
    start, rows = int(distributed.host_value(state.step)), batching.host_rows(mesh, config.data.batch_size)
    synthetic = pipeline.train_iterator(config.data, start_step=start, rows=rows)   # data (domain a, domain b)
    styles = iter(tfds.as_numpy(style_dataset(config.style_images, config.data.image_size, config.data.batch_size,
                                              seed=config.data.shuffle_seed, start_step=start, rows=rows)))
    batches = batching.prefetch_to_mesh(({"a": a["image"], "b": b} for a, b in zip(synthetic, styles)), mesh,
                                        config.data.batch_size)
    return loop.train(config, workdir, ckpt, state, train_step, batches, config.num_train_steps,   # loop
                      panel=ste_stage.make_panel(config))


def train(config, workdir: str):
    """Validate, join the cluster, run the stage the config names."""
    config_schema.validate(config)
    distributed.initialize(config)
    distributed.check_same_program(config)
    if config.stage == "ste_pretrain":
        return pretrain_structure_encoder(config, workdir)
    if config.stage == "zoedepth_finetune":
        return train_zoedepth_stage(config, workdir)
    return train_depth_stage(config, workdir)


def main(argv):
    del argv
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    try:
        distributed.initialize(config)  # first: each process's log file is named after it
        console.setup(console.log_file(workdir), flags.FLAGS.verbose)
        train(config, workdir)
    except (ValueError, FileNotFoundError, loop.TrainingError, distributed.ClusterError) as e:
        console.error(str(e))
        sys.exit(1)


def define_flags():
    """Only when run as a program: importing this file (the demo, the tests) claims no flag names."""
    config_flags.DEFINE_config_file("config", None, "A configs/*.py file (optionally 'file.py:local').", lock_config=True)
    flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard logs and log.txt go here; an existing one is resumed.")
    flags.DEFINE_bool("verbose", False, "Show library logs on the terminal (they always go to WORKDIR/log.txt).")
    flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
