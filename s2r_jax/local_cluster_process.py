"""What each process of a local cluster (`s2r_jax.local_cluster`) runs: the program (train.py or
eval.py) as `__main__`, after making XLA compilations shareable between the cluster's processes.

Why this is needed on CPU. JAX keys its persistent compilation cache by the program, the compile
options (with the global device assignment), jaxlib, XLA flags and the *accelerator config*: the
fingerprint of the topology the devices belong to. On CPU that topology is built from the asking
process's own devices (process 0 of a 2 x 4 cluster sees devices 0-3, process 1 sees 2048-2051),
so one SPMD program gets a different key on every process. JAX writes cache entries from process
0 only, so every other process recompiled every program on every relaunch; and
`JAX_SHARE_BINARY_BETWEEN_HOSTS` (process 0 compiles, the others load its executable) deadlocked,
the others waiting for keys that process 0 never writes (measured: docs/benchmarks.md, "The
multi-host tests' time").

JAX already makes the key process-invariant on GPU: it leaves the device assignment out of the
compile options it hashes, and loads an executable onto the devices at hand. For CPU programs
only, `share_compilations` does the same and hashes the kind of every device of the program
instead of the local topology (JAX's own fallback for a backend without a topology); the rest of
the key is untouched. Then process 0 compiles each mesh-wide program once and the other processes
load its executable, and any later run of the same program on as many CPU devices loads it from
the cache, whatever the split into processes: a relaunch on 4 x 2 devices, or a one-process run
on 8 (the tests key their own process's compilations the same way, tests/conftest.py).
The multi-host tests check that the parameters stay those of a one-process run (within 1e-6;
loaded across topologies they differed by 2.4e-12, the collectives' summation order).

Processes that reach the same program at the same time (a cluster started beside the
one-process run it is compared with, or beside another launch) still compiled it each, since
each saw no entry yet. `share_compilations` therefore also makes a compilation that writes the
cache hold a lock file beside the entry (`<key>.compiling`, naming its host and pid), and a
process that misses the cache while that lock is held waits for the entry and loads it. A lock
whose process is gone is taken over; one that never clears is given up after LOCK_WAIT_S.
"""
import copy
import logging
import os
import runpy
import socket
import sys
import time

import numpy as np

logger = logging.getLogger("s2r_jax.local_cluster_process")  # also when run as __main__

LOCK_SUFFIX = ".compiling"
LOCK_WAIT_S = 1800.0  # a compilation that holds its lock longer is stuck: the waiters compile it themselves


def _jax_functions(module, *names):
    """The named functions of one of JAX's internal modules, or None if this JAX lacks any."""
    found = [getattr(module, name, None) for name in names]
    return None if any(f is None for f in found) else found


def share_compilations() -> bool:
    """Key JAX's compilation cache for CPU programs by what is compiled, not by which process or
    which devices asks: the device assignment left out of the compile options (as JAX does on GPU)
    and the device kinds hashed instead of the local topology. False (and JAX left as it is, every
    process compiling for itself) if this JAX lacks the functions it replaces."""
    from jax._src import cache_key
    found = _jax_functions(cache_key, "get", "_hash_accelerator_config", "_hash_devices")
    if found is None:
        return False
    get, hash_topology, hash_kinds = found
    if getattr(get, "shares_cpu_compilations", False):
        return True  # already installed in this process

    def hash_accelerators(hash_obj, devices):
        if all(d.platform == "cpu" for d in devices.flat):
            hash_kinds(hash_obj, devices)
        else:
            hash_topology(hash_obj, devices)

    def get_without_device_assignment(module, devices, compile_options, backend, *args, **kwargs):
        if backend.platform == "cpu" and compile_options.device_assignment:
            from jax._src.lib import xla_client
            assignment = compile_options.device_assignment
            shape = (assignment.replica_count(), assignment.computation_count())
            compile_options = copy.deepcopy(compile_options)
            compile_options.device_assignment = xla_client.DeviceAssignment.create(
                np.arange(shape[0] * shape[1]).reshape(shape))
        return get(module, devices, compile_options, backend, *args, **kwargs)

    get_without_device_assignment.shares_cpu_compilations = True
    cache_key._hash_accelerator_config = hash_accelerators
    cache_key.get = get_without_device_assignment
    _compile_each_program_once()
    return True


def _lock_path(cache_key: str) -> str | None:
    """The lock file of a cache entry; None for a cache that is not a local directory."""
    from jax._src import config
    directory = config.compilation_cache_dir.value
    if not directory or not os.path.isdir(directory):
        return None
    return os.path.join(directory, cache_key + LOCK_SUFFIX)


def _lock_holder(path: str) -> str | None:
    """'host pid' of a live holder of the lock; None if there is no lock, or only a stale one
    (its process is gone: the lock is removed)."""
    try:
        with open(path) as f:
            holder = f.read()
    except FileNotFoundError:
        return None
    host, _, pid = holder.partition(" ")
    if not holder:  # being written; left empty by a process that died at once, if it stays so
        return "another process" if _age(path) < 10 else _remove(path)
    if not pid.strip().isdigit() or host != socket.gethostname():
        return holder  # a process on another machine sharing the directory: trusted until LOCK_WAIT_S
    try:
        os.kill(int(pid), 0)
        return holder
    except ProcessLookupError:
        return _remove(path)
    except PermissionError:  # alive, another user's
        return holder


def _age(path: str) -> float:
    try:
        return time.time() - os.path.getmtime(path)
    except FileNotFoundError:
        return 0.0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _wait_while_locked(path: str, module_name: str, deadline: float) -> bool:
    """Wait while a live process holds the lock (until `deadline`); True if one held it."""
    holder = _lock_holder(path)
    if holder is None:
        return False
    logger.info("waiting for %s: %s is compiling it (lock %s)", module_name, holder, path)
    while _lock_holder(path) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _take_lock(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}")
    return True


def _compile_each_program_once() -> bool:
    """Install the compilation lock (module docstring) on JAX's cache reads and writes; False
    (nothing installed) if this JAX lacks the functions it wraps."""
    from jax._src import compiler, distributed
    found = _jax_functions(compiler, "_cache_read", "_compile_and_write_cache", "_compile_and_share_module")
    if found is None:
        return False
    read, compile_and_write, share = found
    if getattr(read, "waits_for_compilations", False):
        return True

    def cache_read(module_name, cache_key, compile_options, backend, executable_devices):
        found = read(module_name, cache_key, compile_options, backend, executable_devices)
        path = _lock_path(cache_key)
        if found[0] is None and path and _wait_while_locked(path, module_name, time.monotonic() + LOCK_WAIT_S):
            found = read(module_name, cache_key, compile_options, backend, executable_devices)
        return found

    def compile_and_write_cache(backend, computation, executable_devices, compile_options, host_callbacks,
                                module_name, cache_key):
        path = _lock_path(cache_key)
        if path is None or distributed.global_state.process_id != 0:  # JAX writes entries from process 0 only
            return compile_and_write(backend, computation, executable_devices, compile_options, host_callbacks,
                                     module_name, cache_key)
        deadline = time.monotonic() + LOCK_WAIT_S
        while not _take_lock(path):  # another process started compiling it since this one read the cache
            if time.monotonic() > deadline:
                return compile_and_write(backend, computation, executable_devices, compile_options, host_callbacks,
                                         module_name, cache_key)
            if _wait_while_locked(path, module_name, deadline):
                executable, _ = read(module_name, cache_key, compile_options, backend, executable_devices)
                if executable is not None:
                    compiler.log_persistent_cache_hit(module_name, cache_key)
                    return executable
        try:
            return compile_and_write(backend, computation, executable_devices, compile_options, host_callbacks,
                                     module_name, cache_key)
        finally:
            _remove(path)

    def compile_and_share_module(backend, computation, executable_devices, compile_options, host_callbacks,
                                 global_client, module_name, cache_key, first_process_id):
        # The first process publishes what it compiles, but not what it loads from the cache: had an
        # entry been written between this process's read and the first one's, this one would wait
        # forever. So it waits for either.
        path = _lock_path(cache_key)
        if (path and distributed.global_state.process_id != first_process_id
                and cache_key not in share.modules_cache):
            deadline = time.monotonic() + LOCK_WAIT_S
            while time.monotonic() < deadline:
                try:
                    global_client.key_value_try_get_bytes(cache_key)
                    break  # published: JAX's own path below takes it
                except Exception:  # not yet published
                    pass
                if _lock_holder(path) is None:
                    executable, _ = read(module_name, cache_key, compile_options, backend, executable_devices)
                    if executable is not None:
                        compiler.log_persistent_cache_hit(module_name, cache_key)
                        share.modules_cache[cache_key] = executable
                        return executable
                time.sleep(0.1)
        return share(backend, computation, executable_devices, compile_options, host_callbacks, global_client,
                     module_name, cache_key, first_process_id)

    cache_read.waits_for_compilations = True
    compile_and_share_module.modules_cache = share.modules_cache  # JAX's function reads it by its global name
    compiler._cache_read = cache_read
    compiler._compile_and_write_cache = compile_and_write_cache
    compiler._compile_and_share_module = compile_and_share_module
    return True


def main() -> None:
    program, args = sys.argv[1], sys.argv[2:]
    if not share_compilations():
        print("local_cluster_process: this JAX's cache key lacks the functions share_compilations replaces; "
              "every process compiles for itself", file=sys.stderr)
        import jax
        jax.config.update("jax_share_binary_between_hosts", False)  # it would wait for keys never written
    sys.argv = [program, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(program)))
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
