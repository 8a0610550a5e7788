"""Several processes as one JAX program: joining the cluster, and what the hosts must agree on.

`initialize(config)` calls `jax.distributed.initialize()` when `config.distributed` is set
(or the documented JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables
are): on Cloud TPU, SLURM, Open MPI and Kubernetes (GKE JobSet) JAX finds the coordinator
itself; on bare machines `config.cluster` (or the variables) name it. The heartbeat
timeout bounds how long the survivors wait for a host that died: after it, every
process stops with an error instead of hanging in a collective.

`check_same_program` makes every host compare a fingerprint of its config and of the code
it runs (the s2r_jax sources and the program, train.py or eval.py), so a host with another
config or code version is an error at start rather than a silent divergence. No tensorflow
here.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

import jax
import numpy as np

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_STATE = {"initialized": False}


class ClusterError(RuntimeError):
    """The processes of a multi-host job cannot work together; the message says why."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ClusterError(f"environment variable {name}={value!r} must be an integer") from None


def _explicit_settings(cluster) -> dict:
    """coordinator_address / num_processes / process_id from the config, else the environment."""
    address = cluster.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = cluster.num_processes or _env_int("JAX_NUM_PROCESSES", 0)
    pid = cluster.process_id if cluster.process_id >= 0 else _env_int("JAX_PROCESS_ID", -1)
    if not address:
        if num or pid >= 0:
            raise ClusterError("config.cluster.num_processes / process_id (or JAX_NUM_PROCESSES / JAX_PROCESS_ID) "
                               "need config.cluster.coordinator_address (or JAX_COORDINATOR_ADDRESS) as well")
        return {}  # auto-detected: Cloud TPU, SLURM, Open MPI, Kubernetes
    if ":" not in address:
        raise ClusterError(f"coordinator address {address!r} must be host:port, e.g. 10.0.0.2:1234")
    if num < 1 or not 0 <= pid < num:
        raise ClusterError(f"with coordinator address {address!r}, give num_processes >= 1 and 0 <= process_id < "
                           f"num_processes (got {num} and {pid}; config.cluster or JAX_NUM_PROCESSES/JAX_PROCESS_ID)")
    return {"coordinator_address": address, "num_processes": num, "process_id": pid}


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _keep_on_loopback(address: str, settings: dict) -> None:
    """A cluster whose coordinator is on this machine's loopback (several processes on one
    machine: tests, a laptop) stays on it: the coordinator binds there (JAX binds every
    interface by default) and gloo's CPU collectives bind 127.0.0.1 instead of the address
    the host name resolves to."""
    settings["coordinator_bind_address"] = address
    from jax._src import xla_bridge
    make = getattr(xla_bridge._jax, "make_gloo_tcp_collectives", None)
    if make is not None and not getattr(make, "s2r_jax_loopback", False):
        def on_loopback(distributed_client, hostname=None, interface=None):
            return make(distributed_client=distributed_client, hostname=hostname or "127.0.0.1", interface=interface)
        on_loopback.s2r_jax_loopback = True
        xla_bridge._jax.make_gloo_tcp_collectives = on_loopback


def initialize(config) -> None:
    """Join the cluster when asked (config.distributed or the environment), once per process."""
    wanted = bool(config.distributed) or any(os.environ.get(v) for v in ENV)
    if not wanted or _STATE["initialized"]:
        return
    cluster = config.cluster
    settings = _explicit_settings(cluster)
    if settings and settings["coordinator_address"].rsplit(":", 1)[0] in LOOPBACK_HOSTS:
        _keep_on_loopback(settings["coordinator_address"], settings)
    jax.distributed.initialize(**settings, initialization_timeout=int(cluster.initialization_timeout_s),
                               heartbeat_timeout_seconds=int(cluster.heartbeat_timeout_s))
    _STATE["initialized"] = True


def is_host0() -> bool:
    return jax.process_index() == 0


def multihost() -> bool:
    return jax.process_count() > 1


PACKAGE_ROOT = os.path.dirname(os.path.abspath(__file__))


def _program_file() -> str | None:
    """The running program's file (train.py, eval.py), if it is one: __main__'s."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path if path and path.endswith(".py") and os.path.isfile(path) else None


def source_fingerprint(root: str = PACKAGE_ROOT, program: str | None = None) -> str:
    """A hash of the code this process runs: the .py files under `root` (s2r_jax) by their
    paths relative to it, and the program file (default: __main__'s) by its name and contents,
    so that checkouts at different paths on different hosts agree."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    program = program or _program_file()
    if program:
        digest.update(b"program " + os.path.basename(program).encode())
        with open(program, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _allgather_bytes(data: bytes, size: int = 64) -> list[bytes]:
    from jax.experimental import multihost_utils
    buf = np.zeros(size, np.uint8)
    buf[:len(data)] = np.frombuffer(data[:size], np.uint8)
    return [bytes(row) for row in np.asarray(multihost_utils.process_allgather(buf))]


_MUST_MATCH = {"config": "the same config file and overrides", "code": "the same s2r_jax version and program file"}


def check_same_program(config) -> None:
    """Every host runs the same config and the same code, or a ClusterError naming who differs
    in what (every difference, config and code, in one message)."""
    if not multihost():
        return
    shared = {k: v for k, v in json.loads(config.to_json_best_effort()).items() if k != "cluster"}  # per-host
    config_hash = hashlib.sha256(json.dumps(shared, sort_keys=True).encode())
    mine = {"config": config_hash.digest()[:16], "code": bytes.fromhex(source_fingerprint())[:16]}
    problems = []
    for what, value in mine.items():
        rows = _allgather_bytes(value, 16)
        differ = [i for i, r in enumerate(rows) if r != rows[0]]
        if differ:
            problems.append(f"process(es) {differ} run a different {what} from process 0 ({_MUST_MATCH[what]} must be "
                            "used on every host)")
    if problems:
        raise ClusterError("; ".join(problems))


def any_host(flag: bool) -> bool:
    """True on every host if `flag` is True on any (a collective: all hosts must call it)."""
    if not multihost():
        return bool(flag)
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(bool(flag)))))


def host_value(x) -> np.ndarray:
    """A replicated (or host-local) array's value on this host, without a collective."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(jax.device_get(x))


def gather(x) -> np.ndarray:
    """The whole of a global array on every host (a collective when it spans hosts)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


_BARRIERS = {"count": 0}


def barrier(name: str, timeout_s: int = 3600) -> None:
    """Wait until every host gets here (the coordination service's barrier: no device
    collective, so it cannot time out the way a collective's first rendezvous does)."""
    if not multihost():
        return
    from jax._src import distributed as jax_distributed  # the client jax.distributed.initialize made
    _BARRIERS["count"] += 1
    jax_distributed.global_state.client.wait_at_barrier(f"s2r_jax/{name}/{_BARRIERS['count']}", timeout_s * 1000)


class SyncedJit:
    """A jitted function whose compilation ends in a barrier on several hosts.

    A collective's first rendezvous (gloo's on CPU) gives the other hosts 30 s; hosts that
    finish compiling a step more than that apart would fail there. So on several hosts each
    new input signature is compiled ahead of time, then every host waits for the others, and
    only then runs the compiled step. On one host this is plain `jax.jit`.
    """

    def __init__(self, jitted, name: str):
        self.jitted, self.name, self._compiled = jitted, name, {}

    def __call__(self, *args):
        if not multihost():
            return self.jitted(*args)
        leaves, tree = jax.tree.flatten(args)
        key = (tree, tuple((x.shape, str(x.dtype), getattr(x, "sharding", None)) for x in leaves))
        if key not in self._compiled:
            self._compiled[key] = self.jitted.lower(*args).compile()
            barrier(f"compiled {self.name}")
        return self._compiled[key](*args)
