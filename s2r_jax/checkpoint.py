"""Orbax checkpoints: the one place the project talks to `CheckpointManager`.

A checkpoint directory holds numbered steps; each step has the items
- `variables`: the model's Flax variables, `{'params': {module: ...}, 'batch_stats': ...}`
  keyed by the S2RDepthNet submodules it covers (a converted official checkpoint may
  hold any subset of them);
- `meta`: JSON (what wrote it, the configuration, the sources converted);
- `train` (training checkpoints only): step, optimizer state and the rest of the
  training state that `variables` does not hold.
Everything that only needs weights (eval, predict, `init_from`) reads `variables`,
whatever wrote the directory.

Saves are asynchronous: call `wait_until_finished()` (or `close()`) before exit.
Restores build `ShapeDtypeStruct(..., sharding=)` targets from the saved metadata,
so a checkpoint restores onto any mesh or a single device.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

VARIABLES = "variables"
META = "meta"
TRAIN = "train"

# [ours] Orbax's replica-parallel saving (on by default off GPUs) splits every replicated
# array between its replicas, each writing one slice: one eager `slice` per array and
# replica, each compiled on first use -- hundreds of compilations per process for a
# network of hundreds of small arrays, which on the CPU took longer than the save itself.
# Slices under 1 MiB per replica gain nothing from being written in parallel, so only
# arrays above that are split; the rest are written whole by their first replica
# (on many hosts, the host that holds it). Same on-disk format either way.
MIN_REPLICA_SLICE_BYTES = 1 << 20


def _register_array_handler() -> None:
    absl_logger = logging.getLogger("absl")  # orbax warns that it replaces its own default handler
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(min_slice_bytes_for_replica_parallel=MIN_REPLICA_SLICE_BYTES),
            override=True)
    finally:
        absl_logger.setLevel(level)


_register_array_handler()


class CheckpointError(ValueError):
    """A directory that is not (or does not hold) what the caller asked for."""


class Checkpointer:
    """A `CheckpointManager` over `directory` with the project's item layout."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = None,
                 async_save: bool = True, read_only: bool = False):
        self.directory = os.path.abspath(os.fspath(directory))
        if read_only and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory} does not exist")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, read_only=read_only,
            create=not read_only)
        handlers = {VARIABLES: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler(),
                    TRAIN: ocp.StandardCheckpointHandler()}
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def save(self, step: int, variables: Any, meta: dict | None = None, train: Any = None,
             force: bool = False) -> bool:
        items = {VARIABLES: ocp.args.StandardSave(variables), META: ocp.args.JsonSave(meta or {})}
        if train is not None:
            items[TRAIN] = ocp.args.StandardSave(train)
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        return step

    def variables_shapes(self, step: int | None = None) -> dict:
        """{path: shape} of the saved variables, without reading them."""
        metadata = self._manager.item_metadata(self._step(step))[VARIABLES]
        flat = jax.tree_util.tree_flatten_with_path(metadata)[0]
        return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(m.shape) for path, m in flat}

    def restore_train(self, step: int, variables_target: Any, train_target: Any) -> tuple[Any, Any]:
        """Restore `variables` and `train` onto the given abstract targets (with shardings)."""
        args = ocp.args.Composite(**{VARIABLES: ocp.args.StandardRestore(variables_target),
                                     TRAIN: ocp.args.StandardRestore(train_target)})
        out = self._manager.restore(step, args=args)
        return out[VARIABLES], out[TRAIN]

    def restore_meta(self, step: int | None = None) -> dict:
        step = self._step(step)
        return self._manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]

    def restore_variables(self, step: int | None = None,
                          sharding: Callable[[tuple[str, ...], Any], jax.sharding.Sharding] | jax.sharding.Sharding | None = None):
        """The `variables` item of `step` (default: latest).

        `sharding` is one Sharding for every array or a function (path, metadata) ->
        Sharding; by default every array is placed whole on the first local device.
        """
        step = self._step(step)
        metadata = self._manager.item_metadata(step)[VARIABLES]
        if metadata is None:
            raise CheckpointError(f"step {step} in {self.directory} holds no '{VARIABLES}' item")
        default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

        def target(path, meta):
            if callable(sharding):
                s = sharding(tuple(str(getattr(k, "key", k)) for k in path), meta)
            else:
                s = sharding or default
            return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=s)

        targets = jax.tree_util.tree_map_with_path(target, metadata)
        args = ocp.args.Composite(**{VARIABLES: ocp.args.StandardRestore(targets)})
        return self._manager.restore(step, args=args)[VARIABLES]

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_variables(directory: str | os.PathLike, step: int | None = None, sharding=None):
    """Variables of the latest (or given) step of a checkpoint directory, and its meta."""
    with Checkpointer(directory, read_only=True) as ckpt:
        step = ckpt._step(step)
        return ckpt.restore_variables(step, sharding), ckpt.restore_meta(step)
