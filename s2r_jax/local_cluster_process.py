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

JAX already makes the key process-invariant on GPU (it strips the device assignment there), and a
TPU topology is the whole slice. For CPU devices only, `share_compilations` hashes the kind of
every device of the program instead, which is what JAX itself falls back to for a backend
without a topology; the rest of the key is untouched. Then process 0 compiles each mesh-wide
program once, the other processes load its executable, and a relaunch on the same topology
loads them all from the cache. (A program on one process's own devices still has a key of its
own, through its device assignment, and JAX writes only process 0's.)
The multi-host tests check that the parameters stay exactly those of a one-process run.
"""
import os
import runpy
import sys


def share_compilations() -> bool:
    """Make the CPU accelerator part of JAX's cache key the same on every process; False (and JAX
    left as it is, every process compiling for itself) if this JAX lacks the functions it replaces."""
    from jax._src import cache_key
    hash_topology = getattr(cache_key, "_hash_accelerator_config", None)
    hash_kinds = getattr(cache_key, "_hash_devices", None)
    if hash_topology is None or hash_kinds is None:
        return False

    def hash_accelerators(hash_obj, devices):
        if all(d.platform == "cpu" for d in devices.flat):
            hash_kinds(hash_obj, devices)
        else:
            hash_topology(hash_obj, devices)

    cache_key._hash_accelerator_config = hash_accelerators
    return True


def main() -> None:
    program, args = sys.argv[1], sys.argv[2:]
    if not share_compilations():
        print("local_cluster_process: this JAX's cache key has no _hash_accelerator_config; every process "
              "compiles for itself", file=sys.stderr)
        import jax
        jax.config.update("jax_share_binary_between_hosts", False)  # it would wait for keys never written
    sys.argv = [program, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(program)))
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
