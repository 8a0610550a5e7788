r"""A real multi-process JAX cluster on one machine: K processes of train.py or eval.py joined
by jax.distributed over 127.0.0.1, each with its own CPU devices and gloo collectives. The
tests and the multi-host benchmark use it; so can you, to try a multi-host run on a laptop:

  python -m s2r_jax.local_cluster --num_processes 2 --devices_per_process 4 --       train.py --config configs/struct_decoder.py:local --workdir /tmp/mh --config.allow_random_frozen=True

Only the loopback interface is used (a free port on 127.0.0.1 for the coordinator; gloo
binds 127.0.0.1 too, see s2r_jax.distributed), every process runs in its own session under
a hard timeout, and every child is killed and reaped on exit, whatever happens. Each
process's output goes to LOGDIR/process<i>.out and .err.
"""
import os
import signal
import socket
import subprocess
import sys
import time

from s2r_jax.repo import ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`program` (train.py or eval.py) with `args` on `num_processes` processes of
    `devices_per_process` CPU devices each; per-process extra args in `extra[i]`, and another
    program file in `programs[i]` (a host with another code version, for tests). With a
    `cache_dir`, process 0 compiles every mesh-wide program once and the others load its
    executable (s2r_jax.local_cluster_process says why that needs help on CPU); a relaunch on the
    same topology reads them from `cache_dir`."""

    def __init__(self, program: str, args: list[str], num_processes: int, devices_per_process: int, logdir: str,
                 cache_dir: str = "", extra: dict | None = None, heartbeat_s: int = 10, x64: bool = True,
                 log_compiles: bool = False, programs: dict | None = None):
        port = free_port()
        os.makedirs(logdir, exist_ok=True)
        self.logdir, self.procs, self.started = logdir, [], time.monotonic()
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices_per_process),
               "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if x64:
            env["JAX_ENABLE_X64"] = "1"
        if cache_dir:  # process 0 compiles each program once for all; relaunches read the cache
            env.update(JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
                       JAX_SHARE_BINARY_BETWEEN_HOSTS="1")
        if log_compiles:  # every compilation and persistent-cache hit, in process<i>.err
            env["JAX_LOG_COMPILES"] = "1"
        try:
            for i in range(num_processes):
                # through local_cluster_process: it makes the processes' compilation cache keys agree
                cmd = [sys.executable, "-m", "s2r_jax.local_cluster_process",
                       os.path.join(ROOT, (programs or {}).get(i, program)), *args,
                       "--config.distributed=True",
                       f"--config.cluster.coordinator_address=127.0.0.1:{port}",
                       f"--config.cluster.num_processes={num_processes}", f"--config.cluster.process_id={i}",
                       f"--config.cluster.heartbeat_timeout_s={heartbeat_s}", *(extra or {}).get(i, [])]
                with open(os.path.join(logdir, f"process{i}.out"), "w") as out, \
                        open(os.path.join(logdir, f"process{i}.err"), "w") as err:
                    self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT,
                                                       start_new_session=True))
        except BaseException:  # a process that could not start: none of those started is left running
            self.kill_all()
            raise

    def output(self, i: int, stream: str = "out") -> str:
        with open(os.path.join(self.logdir, f"process{i}.{stream}")) as f:
            return f.read()

    def wait(self, timeout: float) -> list[int]:
        """Return codes of all processes; kills everything and fails past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill_all()
                logs = "\n".join(f"--- process {i}\n{self.output(i)[-2000:]}\n{self.output(i, 'err')[-2000:]}"
                                 for i in range(len(self.procs)))
                raise AssertionError(f"the cluster did not finish within {timeout} s\n{logs}")
        return [p.returncode for p in self.procs]

    def wait_for(self, condition, timeout: float, poll: float = 0.2) -> None:
        """Wait until `condition()` holds (fails past `timeout`, or if a process ended first)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.kill_all()
                raise AssertionError(f"condition not met within {timeout} s")
            if any(p.poll() is not None for p in self.procs):
                raise AssertionError(f"a process ended before the condition held: "
                                     f"{[p.returncode for p in self.procs]}\n{self.output(0, 'err')[-3000:]}")
            time.sleep(poll)

    def signal(self, i: int, signum: int) -> None:
        self.procs[i].send_signal(signum)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill_all()


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--devices_per_process", type=int, default=4)
    parser.add_argument("--logdir", default="local_cluster_logs", help="process<i>.out / .err go here")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before every process is killed")
    parser.add_argument("--cache_dir", default="", help="XLA compilation cache shared by the processes and by "
                        "relaunches (default: LOGDIR/xla_cache)")
    parser.add_argument("program", help="train.py or eval.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the program's flags")
    a = parser.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    cache_dir = a.cache_dir or os.path.join(a.logdir, "xla_cache")
    with Cluster(a.program, args, a.num_processes, a.devices_per_process, a.logdir, cache_dir, x64=False) as cluster:
        codes = cluster.wait(a.timeout)
        print(cluster.output(0), end="")
    print(f"return codes: {codes}; logs in {a.logdir}")
    sys.exit(max(abs(c) for c in codes))


if __name__ == "__main__":
    main()
