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
cache hold a lock beside the entry: an exclusive `flock` on `<key>.compiling` (which names its
host and pid, for the log). A process that misses the cache while the lock is held waits for
it, then reads the entry; a compiling process that finds the lock held waits too, and reads
the cache again once it holds it. The kernel releases the lock when its process exits, however
it ends, so a crashed compilation blocks nobody; one that holds it past LOCK_WAIT_S is given up
(the waiters compile). The cache directory must be local: a path that is not a directory
(gs://...) gets no lock, and on NFS `flock` is emulated with per-process locks.
"""
import copy
import fcntl
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


def _held_by_another(fd: int) -> bool:
    """Whether another open file holds the lock (a process that exits, or dies, releases it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a filesystem without flock: no lock
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _same_file(fd: int, path: str) -> bool:
    """Whether `path` still names the open file `fd` (a lock file is unlinked by its last holder)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _say_waiting(module_name: str, fd: int, path: str) -> None:
    try:  # the holder's 'host pid', once it has written it
        holder = os.pread(fd, 200, 0).decode(errors="replace") or "another process"
    except OSError:
        holder = "another process"
    logger.info("waiting for %s: %s is compiling it (lock %s)", module_name, holder, path)


def _wait_while_locked(path: str, module_name: str, deadline: float) -> bool:
    """Wait while another process holds the lock (until `deadline`); True if there was a lock
    file (its compilation may have written the entry since it was looked for)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # none (or unreadable: no lock)
        return False
    try:
        if _held_by_another(fd):
            _say_waiting(module_name, fd, path)
            while _held_by_another(fd) and time.monotonic() < deadline:
                time.sleep(0.1)
        return True
    finally:
        os.close(fd)


def _take(path: str, module_name: str, deadline: float) -> int | None:
    """An open file holding the lock at `path` (the file `path` names), waiting while another
    process holds it; None past `deadline`, or where the directory allows no lock."""
    said = False
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                return fd
        except BlockingIOError:  # another process compiles it
            if not said:
                _say_waiting(module_name, fd, path)
                said = True
            time.sleep(0.1)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)  # held elsewhere, or a file its last holder had unlinked: open the path again
    return None


def _compile_each_program_once() -> bool:
    """Install the compilation lock (module docstring) on JAX's cache reads and writes; False
    (nothing installed) if this JAX lacks the functions it wraps."""
    from jax._src import compiler, config, distributed
    found = _jax_functions(compiler, "_cache_read", "_compile_and_write_cache", "_compile_and_share_module")
    if found is None:
        return False
    read, compile_and_write, share = found
    if getattr(read, "waits_for_compilations", False):
        return True

    timed_out = set()  # keys whose lock was held past LOCK_WAIT_S: compiled here at once

    def cache_read(module_name, cache_key, compile_options, backend, executable_devices):
        found = read(module_name, cache_key, compile_options, backend, executable_devices)
        path = _lock_path(cache_key)
        if found[0] is None and path:
            deadline = time.monotonic() + LOCK_WAIT_S
            if _wait_while_locked(path, module_name, deadline):
                found = read(module_name, cache_key, compile_options, backend, executable_devices)
                if time.monotonic() >= deadline:
                    timed_out.add(cache_key)
        return found

    def compile_and_write_cache(backend, computation, executable_devices, compile_options, host_callbacks,
                                module_name, cache_key):
        compile_here = lambda: compile_and_write(backend, computation, executable_devices, compile_options,
                                                 host_callbacks, module_name, cache_key)
        path = _lock_path(cache_key)
        if path is None or distributed.global_state.process_id != 0 or cache_key in timed_out:
            return compile_here()  # JAX writes entries from process 0 only
        fd = _take(path, module_name, time.monotonic() + LOCK_WAIT_S)
        if fd is None:
            return compile_here()  # stuck, or no lock possible here: compile without it
        try:
            # whoever held it before (or wrote the entry since this process read) may have written it
            executable, _ = read(module_name, cache_key, compile_options, backend, executable_devices)
            if executable is not None:
                compiler.log_persistent_cache_hit(module_name, cache_key)
                return executable
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}".encode(), 0)
            return compile_here()
        finally:
            if _same_file(fd, path):
                os.unlink(path)  # while holding it: a process that opens the path later finds the entry
            os.close(fd)  # releases it

    def compile_and_share_module(backend, computation, executable_devices, compile_options, host_callbacks,
                                 global_client, module_name, cache_key, first_process_id):
        # The first process publishes what it compiles, but not what it loads from the cache: had an
        # entry been written between this process's read and the first one's, this one would wait
        # for it until JAX's timeout. So it waits for either, within that timeout.
        path = _lock_path(cache_key)
        if (path and distributed.global_state.process_id != first_process_id
                and cache_key not in share.modules_cache):
            deadline = time.monotonic() + config.share_binary_between_hosts_timeout_ms.value / 1000
            while time.monotonic() < deadline:
                try:
                    global_client.key_value_try_get_bytes(cache_key)
                    break  # published: JAX's own path below takes it
                except Exception as e:
                    if "not found" not in str(e).lower():
                        raise
                _wait_while_locked(path, module_name, deadline)  # while one compiles it: its entry comes last
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
