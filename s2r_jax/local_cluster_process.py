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
"""
import copy
import os
import runpy
import sys

import numpy as np


def share_compilations() -> bool:
    """Key JAX's compilation cache for CPU programs by what is compiled, not by which process or
    which devices asks: the device assignment left out of the compile options (as JAX does on GPU)
    and the device kinds hashed instead of the local topology. False (and JAX left as it is, every
    process compiling for itself) if this JAX lacks the functions it replaces."""
    from jax._src import cache_key
    get = getattr(cache_key, "get", None)
    hash_topology = getattr(cache_key, "_hash_accelerator_config", None)
    hash_kinds = getattr(cache_key, "_hash_devices", None)
    if get is None or hash_topology is None or hash_kinds is None:
        return False
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
