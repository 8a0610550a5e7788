"""The checkpoint module's save path: what it costs, that it round-trips, that a killed save is never read."""
import glob
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from s2r_jax import checkpoint
from s2r_jax.repo import ROOT


def test_saving_small_replicated_arrays_compiles_nothing(tmp_path):
    """Orbax's default replica-parallel save slices every replicated array per replica, one
    compiled `slice` per shape: hundreds of compilations for a network's small arrays, longer
    than the save. Slices under `MIN_REPLICA_SLICE_BYTES` are not split, so nothing compiles."""
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    tree = {"params": {f"layer{i}": {"kernel": jax.device_put(jnp.full((3, 3, i + 1, 8), float(i)), replicated)}
                       for i in range(12)}}
    jax.block_until_ready(tree)
    compiled = []

    def listener(event, seconds, **kwargs):
        if event.endswith("backend_compile_duration"):
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with checkpoint.Checkpointer(tmp_path / "w") as ckpt:
            ckpt.save(1, tree, {"written_by": "test"}, force=True)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiled == []
    restored, _ = checkpoint.load_variables(tmp_path / "w")
    for i in range(12):
        np.testing.assert_array_equal(np.asarray(restored["params"][f"layer{i}"]["kernel"]),
                                      np.full((3, 3, i + 1, 8), float(i), np.float32))


SAVER = """
import sys
import numpy as np
from s2r_jax import checkpoint

# saves steps 1, 2, ... of 64 MiB of random numbers (seeded by the step: incompressible, so
# writing takes a while), each asynchronously (a save waits for the one before), until killed
with checkpoint.Checkpointer(sys.argv[1], max_to_keep=2) as ckpt:
    for step in range(1, 40):
        w = np.random.default_rng(step).random((4096, 4096), np.float32)
        ckpt.save(step, {"params": {"w": w}}, {"step": step})
"""


def _bytes_under(path) -> int:
    """Bytes of the files under `path`, which orbax may be renaming meanwhile (those are skipped)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


def _kill_while_saving(workdir) -> list[str]:
    """Start SAVER, SIGKILL it once a step being written after a complete one holds 1 MiB of
    data; the temporary step directories left after the kill (none if the save completed meanwhile)."""
    os.makedirs(workdir)
    err_path = workdir + ".err"  # beside it
    with open(err_path, "w") as err:
        saver = subprocess.Popen([sys.executable, "-c", SAVER, workdir], env={
            **os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}, stderr=err)
    deadline, in_flight = time.monotonic() + 120, False
    try:
        while not in_flight:
            if time.monotonic() > deadline or saver.poll() is not None:
                raise AssertionError("no save seen in flight: " + open(err_path).read()[-3000:])
            if os.path.isdir(os.path.join(workdir, "1")):
                in_flight = any(_bytes_under(d) >= 1 << 20
                                for d in glob.glob(os.path.join(workdir, "*.orbax-checkpoint-tmp*")))
            time.sleep(0.002)
    finally:
        saver.kill()
        saver.wait()
    return sorted(glob.glob(os.path.join(workdir, "*.orbax-checkpoint-tmp*")))


def test_a_save_killed_midway_is_never_restored(tmp_path):
    """SIGKILL of a process while it writes a checkpoint's data (a preempted or lost host) leaves
    that step under orbax's temporary name; the directory's latest step is then the last complete one,
    and it restores whole. (The multi-host tests kill a host between saves.)"""
    for attempt in range(3):  # the kill can land just after a save completed, before the next began
        workdir = str(tmp_path / f"w{attempt}")
        half_written = _kill_while_saving(workdir)
        if half_written:
            break
    assert half_written and _bytes_under(half_written[0]) >= 1 << 20
    partial_step = int(os.path.basename(half_written[0]).split(".")[0])
    with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
        latest = ckpt.latest_step()
    assert latest == partial_step - 1 and latest >= 1
    variables, meta = checkpoint.load_variables(workdir)
    assert meta == {"step": latest}
    np.testing.assert_array_equal(np.asarray(variables["params"]["w"]),
                                  np.random.default_rng(latest).random((4096, 4096), np.float32))
