"""The training loop every stage shares: restore or initialise, then step, log, evaluate, save.

One program on every host. It resumes from the latest checkpoint in the workdir (the
data pipeline then starts at the restored step, in the same global order), saves
asynchronously every `checkpoint.every_steps` and at the end, evaluates every
`eval.every_steps` (keeping the best checkpoint in `workdir/best`), saves and exits
cleanly on SIGTERM (every host at the same step), and stops at the first NaN/Inf step
naming it (the last good checkpoint stays the latest). Scalars are averaged over each
log interval and written by host 0; the terminal gets one progress line per interval.
"""
from __future__ import annotations

import json
import os
import signal
from typing import Callable, Iterator

import jax
import numpy as np

from s2r_jax import checkpoint, console, distributed
from s2r_jax.training import sharding
from s2r_jax.training.depth_stage import flat

BEST = "best"  # the subdirectory holding the best checkpoint by config.eval.best_metric


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a workdir of another configuration)."""


def _check_workdir_holds(ckpt: checkpoint.Checkpointer, step: int, abstract_variables: dict, stage: str) -> None:
    saved_stage = ckpt.restore_meta(step).get("stage")
    if saved_stage not in (None, stage):
        raise TrainingError(f"{ckpt.directory} holds a checkpoint of stage {saved_stage!r}, not {stage!r}: use "
                            f"another workdir (to start from it, set config.init_from.<module>={ckpt.directory})")
    saved = ckpt.variables_shapes(step)
    want = {k: tuple(v.shape) for k, v in flat(abstract_variables).items()}
    diff = sorted(set(saved) ^ set(want)) + sorted(k for k in set(saved) & set(want) if saved[k] != want[k])
    if diff:
        detail = "\n  ".join(f"{k}: checkpoint {saved.get(k)}, config {want.get(k)}" for k in diff[:20])
        raise TrainingError(f"{ckpt.directory} holds a checkpoint (step {step}) of a different configuration "
                            f"({len(diff)} variables differ); use another workdir or the matching config:\n  {detail}")


def _with_sharding(abstract, sharding):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, sharding)


def train_item(state) -> dict:
    """What a checkpoint's `train` item holds: the state minus the model variables (works on
    states, abstract states and trees of shardings alike)."""
    return {k: v for k, v in vars(state).items() if k not in state.VARIABLE_FIELDS}


def restore_or_initialize(ckpt: checkpoint.Checkpointer, stage: str, make_state: Callable, state_shardings,
                          abstract_variables: dict, initial_variables: Callable[[], dict]):
    """The state of the latest checkpoint in the workdir, or a fresh one from `initial_variables()`.

    `make_state(variables) -> state` splits model variables into a train state; the
    restored arrays are read straight onto `state_shardings` (any mesh, any number of hosts).
    """
    latest = ckpt.latest_step()
    if latest is None:
        return jax.jit(make_state, out_shardings=state_shardings)(initial_variables())
    _check_workdir_holds(ckpt, latest, abstract_variables, stage)
    abstract_state = jax.eval_shape(make_state, abstract_variables)
    variables, item = ckpt.restore_train(
        latest, _with_sharding(abstract_variables, state_shardings.variables()),
        _with_sharding(train_item(abstract_state), train_item(state_shardings)))
    restore = jax.jit(lambda v, t: make_state(v).replace(**t), out_shardings=state_shardings)
    state = restore(variables, item)
    console.say(f"resumed from {ckpt.directory} at step {latest}")
    return state


class _BestCheckpoint:
    """Keeps the variables of the best evaluation so far in `workdir/best` (survives resuming)."""

    def __init__(self, workdir: str, metric: str):
        from s2r_jax.config_schema import LOWER_IS_BETTER
        self.metric, self.lower = metric, metric in LOWER_IS_BETTER
        self.ckpt = checkpoint.Checkpointer(os.path.join(workdir, BEST), max_to_keep=1, async_save=False)
        step = self.ckpt.latest_step()
        self.value = self.ckpt.restore_meta(step)["best"]["value"] if step is not None else None

    def offer(self, step: int, value: float, variables, meta: dict) -> bool:
        better = self.value is None or (value < self.value if self.lower else value > self.value)
        if better:
            self.value = value
            self.ckpt.save(step, variables, {**meta, "best": {"metric": self.metric, "value": value, "step": step}},
                           force=True)
        return better


def interval_means(metrics: list[dict]) -> dict[str, float]:
    """The mean of each metric over the steps of a log interval, computed on the host. The
    values stay on the devices until the log step, so steps are not synchronised; averaging them
    with JAX operations outside the step (as clu's metric collections do) instead compiled a
    dozen small programs in every process of every run (3.5 s of a 2-step run on 2 cores:
    docs/benchmarks.md, "The multi-host tests' time")."""
    values = [{k: distributed.host_value(v) for k, v in m.items()} for m in metrics]
    return {k: float(np.mean([np.mean(np.asarray(v[k], np.float64)) for v in values])) for k in values[0]}


def train(config, workdir: str, ckpt: checkpoint.Checkpointer, state, train_step: Callable, batches: Iterator,
          num_steps: int, *, panel: Callable | None = None, evaluate: Callable | None = None):
    """Run `train_step` from the state's step to `num_steps`, with logs, evaluation and checkpoints.

    `panel(state, batch) -> uint8 image` and `evaluate(state) -> {metric: value}` are
    called on every host (they gather across hosts); host 0 writes what they return.
    """
    train_step = distributed.SyncedJit(train_step, "train step")  # plain jit on one host
    first_step = int(distributed.host_value(state.step))
    if first_step >= num_steps:
        console.say(f"{workdir} is at step {first_step}, at or past num_train_steps={num_steps}: nothing to train")
        ckpt.close()
        return state
    # clu's writers import tensorflow (4 s of CPU per process): imported here, once there is a
    # run to log, not when train.py starts (a host that stops at start, e.g. a mismatched
    # config, never pays it)
    from clu import metric_writers, periodic_actions
    writer = metric_writers.create_default_writer(workdir, just_logging=not distributed.is_host0())
    if first_step == 0:
        writer.write_hparams({k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                              for k, v in flat(config.to_dict()).items()})
    meta = {"written_by": "s2r_jax.train", "stage": config.stage, "config": json.loads(config.to_json_best_effort())}
    eval_every = config.eval.every_steps if evaluate is not None else 0
    best = _BestCheckpoint(workdir, config.eval.best_metric) if eval_every else None
    hooks = [periodic_actions.Profile(logdir=workdir, num_profile_steps=5)] if (
        config.log.profile and distributed.is_host0()) else []
    progress = console.Progress(first_step, num_steps)
    console.say(f"training {config.stage}: steps {first_step + 1}..{num_steps} on {jax.device_count()} device(s)"
                + (f" of {jax.process_count()} processes" if distributed.multihost() else "") + f"; workdir {workdir}")
    if config.param_sharding == "fsdp":  # what it split, not what it was asked: see config.fsdp_min_size
        console.say("fsdp: {} of {} arrays of the train state split over the mesh".format(*sharding.split_arrays(state)))

    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))

    def check_finite(step):
        bad = int(distributed.host_value(state.bad_step))
        if bad >= 0:
            ckpt.wait_until_finished()
            raise TrainingError(f"loss or gradient became NaN/Inf at step {bad}; stopped at step {step}. "
                                f"The latest checkpoint ({ckpt.latest_step()}) precedes it.")

    def save(step, force=False):
        check_finite(step)
        if ckpt.latest_step() != step:
            ckpt.save(step, state.variables(), meta, train_item(state), force=force)

    def run_evaluation(step):
        results = evaluate(state)
        writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
        improved = best.offer(step, results[best.metric], state.variables(), meta)
        shown = " ".join(f"{k} {results[k]:.4f}" for k in ("abs_rel", "rmse", "a1") if k in results)
        console.say(f"eval at step {step}: {shown}" + (f" (best {best.metric} so far)" if improved else ""))

    interval = []  # the metrics of the steps since the last log
    try:
        for step in range(first_step + 1, num_steps + 1):
            batch = next(batches)
            state, metrics = train_step(state, batch)
            interval.append(metrics)
            for hook in hooks:
                hook(step)
            if step % config.log.every_steps == 0 or step == num_steps:
                check_finite(step)
                scalars, interval = interval_means(interval), []
                writer.write_scalars(step, scalars)
                shown = {k: scalars[k] for k in ("loss", "loss_gen", "loss_dis") if k in scalars}
                console.say(progress.line(step, shown))
            if panel and config.log.image_every_steps and (
                    step % config.log.image_every_steps == 0 or step == num_steps):
                writer.write_images(step, {"panel": panel(state, batch)})
            if eval_every and (step % eval_every == 0 or step == num_steps):
                check_finite(step)
                run_evaluation(step)
            if step % config.checkpoint.every_steps == 0 and step != num_steps:
                save(step)
            if _should_stop(stop["signal"] is not None, step, config.log.every_steps):
                console.say(f"signal {stop['signal'] or 'on another host'}: saving step {step} and exiting")
                save(step, force=True)
                break
        else:
            save(num_steps, force=True)
            console.say(f"finished {config.stage} at step {num_steps}: checkpoints in {workdir}; "
                        f"TensorBoard: tensorboard --logdir {workdir}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        ckpt.close()
        if best is not None:
            best.ckpt.close()
        writer.flush()
    return state


def _should_stop(signalled: bool, step: int, every: int) -> bool:
    """On one host, stop at once; on several, all must stop at the same step (the save is
    collective), so they agree every `every` steps on whether any host was signalled."""
    if not distributed.multihost():
        return signalled
    if step % every:
        return False
    return distributed.any_host(signalled)
