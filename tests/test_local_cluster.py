"""s2r_jax.local_cluster_process's compilation lock, on real JAX processes sharing a cache directory:
a process that misses the cache while another holds the program's lock waits and loads the entry;
one whose holder dies without writing it compiles it; a lock file left behind blocks nobody.
(The lock is what lets the multi-host tests start the pretraining launch beside the one-process
run that compiles the same step: tests/test_multihost.py.)"""
import glob
import os
import socket
import subprocess
import sys
import time

import pytest

from s2r_jax.local_cluster_process import LOCK_SUFFIX
from s2r_jax.repo import ROOT

PROGRAM = """
import logging
import jax, jax.numpy as jnp

logging.basicConfig()
logging.getLogger("s2r_jax.local_cluster_process").setLevel(logging.INFO)  # its 'waiting for' line

def f(x):
    return jnp.sin(x) @ x.T + jnp.cumsum(x, axis=0)

print(float(jax.jit(f)(jnp.ones((4, 4))).sum()))
"""


def _start(cache, script, err_file=None):
    """The program as a local cluster's process runs it (share_compilations installed), alone."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_LOG_COMPILES": "1",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "PYTHONPATH": ROOT}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    return subprocess.Popen([sys.executable, "-m", "s2r_jax.local_cluster_process", str(script)], env=env,
                            stdout=subprocess.PIPE, stderr=err_file or subprocess.PIPE, text=True)


def _finish(proc, timeout=120):
    """(stdout, stderr) of a process that must exit 0 within `timeout` seconds."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the process did not finish within {timeout} s\n{err}")
    assert proc.returncode == 0, err
    return out, err


@pytest.fixture
def entry(tmp_path_factory):
    """The program compiled once by a first process into a cache directory, then taken out of it
    (the directory is part of the key): the emptied directory, the entry's name and bytes, the key,
    the program's output."""
    d = tmp_path_factory.mktemp("lock")
    (d / "f.py").write_text(PROGRAM)
    out, _ = _finish(_start(d / "cache", d / "f.py"))
    (path,) = glob.glob(str(d / "cache" / "jit_f-*-cache"))
    name = os.path.basename(path)
    data = open(path, "rb").read()
    for f in os.listdir(d / "cache"):
        os.unlink(d / "cache" / f)
    return {"cache": d / "cache", "name": name, "bytes": data, "key": name[:-len("-cache")], "out": out,
            "script": d / "f.py"}


HOLDER = """
import fcntl, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)  # as a compiling process 0 holds it
os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}".encode(), 0)
time.sleep(300)
"""


@pytest.fixture
def reaped():
    """`reaped(proc)` -> proc, killed and reaped at the test's end if still running, however it ends."""
    procs = []
    yield lambda proc: procs.append(proc) or proc
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _hold_lock(entry, reaped):
    """A process holding the program's lock, as one compiling it does; returns it once it holds it."""
    lock = entry["cache"] / (entry["key"] + LOCK_SUFFIX)
    holder = reaped(subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)]))
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()):
        assert time.monotonic() < deadline and holder.poll() is None, "the holder did not take the lock"
        time.sleep(0.05)
    return holder


def _start_waiting(entry, err_path, reaped):
    """The program started while another process holds its lock; returns it once it says it waits."""
    err_file = open(err_path, "w")
    proc = reaped(_start(entry["cache"], entry["script"], err_file))
    err_file.close()
    deadline = time.monotonic() + 120
    while "waiting for jit_f" not in err_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("it did not wait for the lock: " + err_path.read_text()[-3000:])
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "it stopped waiting while the lock was held"
    return proc


def test_a_process_waits_for_the_program_another_is_compiling(entry, tmp_path, reaped):
    holder = _hold_lock(entry, reaped)
    try:
        proc = _start_waiting(entry, tmp_path / "err", reaped)
        # the holder finishes: its entry appears (JAX writes it while holding the lock), then its lock goes
        (entry["cache"] / entry["name"]).write_bytes(entry["bytes"])
        time.sleep(1.0)
        assert proc.poll() is None, "it did not wait for the lock to go"  # it waits on the lock, not the file
    finally:
        holder.kill()
        holder.wait()
    out, _ = _finish(proc)
    err = (tmp_path / "err").read_text()
    assert f"waiting for jit_f: {socket.gethostname()} {holder.pid} is compiling it" in err, err[-3000:]
    assert "Persistent compilation cache hit for 'jit_f'" in err, err[-3000:]
    assert out == entry["out"]


def test_a_compilation_that_dies_releases_its_waiters(entry, tmp_path, reaped):
    holder = _hold_lock(entry, reaped)
    try:
        proc = _start_waiting(entry, tmp_path / "err", reaped)
    finally:
        holder.kill()  # dies without writing the entry
        holder.wait()
    out, _ = _finish(proc)
    assert "Persistent compilation cache hit for 'jit_f'" not in (tmp_path / "err").read_text()  # compiled it,
    assert (entry["cache"] / entry["name"]).exists()  # wrote the entry,
    assert not (entry["cache"] / (entry["key"] + LOCK_SUFFIX)).exists()  # and removed its own lock
    assert out == entry["out"]


def test_a_lock_file_left_by_a_process_blocks_nobody(entry, reaped):
    lock = entry["cache"] / (entry["key"] + LOCK_SUFFIX)
    lock.write_text(f"{socket.gethostname()} 1")  # left by a process killed before it could remove it
    out, err = _finish(reaped(_start(entry["cache"], entry["script"])))
    assert "waiting for jit_f" not in err and "Persistent compilation cache hit for 'jit_f'" not in err
    assert (entry["cache"] / entry["name"]).exists() and not lock.exists()  # compiled, written, lock removed
    assert out == entry["out"]
