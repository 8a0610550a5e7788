"""The training loop behind `train.py`: one program on every host.

Resumes from the latest checkpoint in the workdir (same data order: the pipeline
starts at the restored step), saves asynchronously every `checkpoint.every_steps`
and at the end, saves and exits cleanly on SIGTERM, stops on a NaN/Inf loss naming
the step (the last good checkpoint stays the latest), and logs with clu on host 0.
"""
from __future__ import annotations

import dataclasses
import json
import signal
from typing import Any, Callable, Iterator

import jax
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from s2r_jax import checkpoint
from s2r_jax.data import batching, pipeline
from s2r_jax.training import panels
from s2r_jax.training.config import validate
from s2r_jax.training.variables import flat, abstract_variables, initial_variables
from s2r_jax.training.sharding import make_mesh, maybe_initialize_distributed, replicated, state_sharding
from s2r_jax.training.state import TrainState, build_model, create_state, learning_rate_schedule, make_optimizer
from s2r_jax.training.step import jit_train_step, make_train_step


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a workdir of another configuration)."""


def _check_same_config(ckpt: checkpoint.Checkpointer, step: int, abstract: dict, stage: str) -> None:
    saved_stage = ckpt.restore_meta(step).get("stage")
    if saved_stage not in (None, stage):
        raise TrainingError(f"{ckpt.directory} holds a checkpoint of stage {saved_stage!r}, not {stage!r}: use "
                            f"another workdir (to start from it, set config.init_from.<module>={ckpt.directory})")
    saved = ckpt.variables_shapes(step)
    want = {k: tuple(v.shape) for k, v in flat(abstract).items()}
    diff = sorted(set(saved) ^ set(want)) + sorted(k for k in set(saved) & set(want) if saved[k] != want[k])
    if diff:
        detail = "\n  ".join(f"{k}: checkpoint {saved.get(k)}, config {want.get(k)}" for k in diff[:20])
        raise TrainingError(f"{ckpt.directory} holds a checkpoint (step {step}) of a different configuration "
                            f"({len(diff)} variables differ); use another workdir or the matching config:\n  {detail}")


def _with_sharding(abstract, sharding):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, sharding)


def _train_item(state) -> dict:
    """What a checkpoint's `train` item holds: the state minus the model variables."""
    return {k: v for k, v in vars(state).items() if k not in state.VARIABLE_FIELDS}


@dataclasses.dataclass
class Task:
    """What differs between trainers (the depth stages, STE pretraining); `run` does the rest."""

    name: str
    abstract_variables: dict              # shapes of what `variables_of` returns
    abstract_state: Any
    shardings: Any                        # of the state
    variable_shardings: Any               # of abstract_variables
    init_state: Callable[[], Any]         # a fresh state (official init, init_from), sharded
    state_from: Callable[[dict, dict], Any]   # (variables, train item) -> state, on restore
    step_fn: Callable                     # jitted (state, batch) -> (state, metrics)
    batches_from: Callable[[int], Iterator]   # start step -> global batches
    num_steps: int
    panel: Callable[[Any, dict], np.ndarray] | None = None


def run(config, workdir: str, task: Task):
    """Restore or initialise, then train `task.num_steps` steps with checkpoints and logs."""
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.checkpoint.keep)
    latest = ckpt.latest_step()
    if latest is not None:
        _check_same_config(ckpt, latest, task.abstract_variables, task.name)
        variables, train_item = ckpt.restore_train(
            latest, _with_sharding(task.abstract_variables, task.variable_shardings),
            _with_sharding(_train_item(task.abstract_state), _train_item(task.shardings)))
        state = task.state_from(variables, train_item)
        logging.info("resumed from %s step %d", workdir, latest)
    else:
        state = task.init_state()
    first_step = int(state.step)
    if first_step >= task.num_steps:
        logging.warning("%s is at step %d, at or past num_train_steps=%d: nothing to train", workdir, first_step,
                        task.num_steps)
        ckpt.close()
        return state
    batches = task.batches_from(first_step)
    multihost = jax.process_count() > 1

    is_host0 = jax.process_index() == 0
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_host0)
    if first_step == 0:
        writer.write_hparams({k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                              for k, v in flat(config.to_dict()).items()})
    panel = task.panel if not multihost else None  # the panel reads the global batch: single host only
    if task.panel and multihost:
        logging.info("image panels are off on %d hosts", jax.process_count())
    hooks = [periodic_actions.ReportProgress(num_train_steps=task.num_steps, writer=writer,
                                             every_steps=config.log.every_steps)]
    if config.log.profile and is_host0:
        hooks.append(periodic_actions.Profile(logdir=workdir, num_profile_steps=5))
    meta = {"written_by": "s2r_jax.train", "stage": task.name, "config": json.loads(config.to_json_best_effort())}

    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))

    def check_finite(step):
        bad = int(state.bad_step)
        if bad >= 0:
            ckpt.wait_until_finished()
            raise TrainingError(f"loss or gradient became NaN/Inf at step {bad}; stopped at step {step}. "
                                f"The latest checkpoint ({ckpt.latest_step()}) precedes it.")

    def save(step, force=False):
        check_finite(step)
        if ckpt.latest_step() != step:
            ckpt.save(step, state.variables(), meta, _train_item(state), force=force)

    num_steps = task.num_steps
    try:
        for step in range(first_step + 1, num_steps + 1):
            batch = next(batches)
            state, metrics = task.step_fn(state, batch)
            for hook in hooks:
                hook(step)
            if step % config.log.every_steps == 0 or step == num_steps:
                check_finite(step)
                writer.write_scalars(step, {k: float(v) for k, v in jax.device_get(metrics).items()})
            if panel and config.log.image_every_steps and (
                    step % config.log.image_every_steps == 0 or step == num_steps):
                writer.write_images(step, {"panel": panel(state, batch)})
            if step % config.checkpoint.every_steps == 0 and step != num_steps:
                save(step)
            if _should_stop(stop["signal"] is not None, multihost, step, config.log.every_steps):
                logging.warning("signal %s: saving step %d and exiting", stop["signal"], step)
                save(step, force=True)
                break
        else:
            if first_step < num_steps:
                save(num_steps, force=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ckpt.close()
        writer.flush()
    return state


def _should_stop(signalled: bool, multihost: bool, step: int, every: int) -> bool:
    """On one host, stop at once; on several, all hosts must stop at the same step (the save
    is collective), so they agree every `every` steps on whether any host was signalled."""
    if not multihost:
        return signalled
    if step % every:
        return False
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(signalled))))


def train(config, workdir: str) -> TrainState:
    """Train a depth stage (configs/struct_decoder.py, dsa_depth.py, finetune_kitti.py)."""
    validate(config)
    maybe_initialize_distributed(config)
    mesh = make_mesh(config)
    model = build_model(config)
    steps_per_epoch = max(1, pipeline.num_examples(config.data) // config.data.batch_size)
    tx = make_optimizer(config, steps_per_epoch)
    abstract = abstract_variables(model, config)
    abstract_state = jax.eval_shape(lambda v: create_state(v, config, tx), abstract)
    shardings = state_sharding(abstract_state, mesh, config.param_sharding)
    new_state = jax.jit(lambda v: create_state(v, config, tx), out_shardings=shardings)
    restored = jax.jit(lambda v, t: create_state(v, config, tx).replace(**t), out_shardings=shardings)
    step_fn = jit_train_step(make_train_step(model, config, tx, learning_rate_schedule(config, steps_per_epoch)),
                             shardings, batching.batch_sharding(mesh), replicated(mesh))
    predict = jax.jit(lambda v, x: model.apply(v, x, use_attention=config.use_attention))

    def panel(state, batch):
        k = config.log.num_images
        image = jax.device_get(batch["image"])[:k]
        out = jax.device_get(predict(state.variables(), image))
        return panels.training_panel(image, out, jax.device_get(batch["depth"])[:k])

    task = Task(
        name=config.stage, abstract_variables=abstract, abstract_state=abstract_state, shardings=shardings,
        variable_shardings=state_sharding(abstract, mesh, config.param_sharding),
        init_state=lambda: new_state(initial_variables(config, abstract, jax.random.key(config.seed))),
        state_from=restored, step_fn=step_fn,
        batches_from=lambda start: batching.prefetch_to_mesh(
            pipeline.train_iterator(config.data, start_step=start), mesh),
        num_steps=config.num_train_steps or config.num_epochs * steps_per_epoch, panel=panel)
    return run(config, workdir, task)
