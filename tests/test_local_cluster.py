"""s2r_jax.local_cluster_process's compilation lock, on real JAX processes sharing a cache directory:
a process that misses the cache while another holds the program's lock waits and loads the entry,
and a lock whose process is gone is taken over. (The lock is what lets the multi-host tests start
a cluster beside the one-process run that compiles the same step: tests/test_multihost.py.)"""
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


def test_a_process_waits_for_the_program_another_is_compiling(entry, tmp_path):
    cache = entry["cache"]
    lock = cache / (entry["key"] + LOCK_SUFFIX)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # 'compiling' the program
    try:
        lock.write_text(f"{socket.gethostname()} {holder.pid}")
        with open(tmp_path / "err", "w") as err_file:
            proc = _start(cache, entry["script"], err_file)
            deadline = time.monotonic() + 120
            while "waiting for jit_f" not in (tmp_path / "err").read_text():
                assert proc.poll() is None, "it did not wait: " + (tmp_path / "err").read_text()[-3000:]
                assert time.monotonic() < deadline, "it did not reach the program within 120 s"
                time.sleep(0.2)
            time.sleep(1.0)
            assert proc.poll() is None  # still waiting while the holder lives
            # the holder finishes: its entry appears (written whole, then renamed), then its lock goes
            (cache / "incoming").write_bytes(entry["bytes"])
            os.rename(cache / "incoming", cache / entry["name"])
            lock.unlink()
            out, _ = _finish(proc)
    finally:
        holder.kill()
        holder.wait()
    err = (tmp_path / "err").read_text()
    assert f"waiting for jit_f: {socket.gethostname()} {holder.pid} is compiling it" in err, err[-3000:]
    assert "Persistent compilation cache hit for 'jit_f'" in err, err[-3000:]
    assert out == entry["out"]


def test_a_lock_left_by_a_dead_process_is_taken_over(entry):
    cache = entry["cache"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    lock = cache / (entry["key"] + LOCK_SUFFIX)
    lock.write_text(f"{socket.gethostname()} {gone.pid}")
    out, err = _finish(_start(cache, entry["script"]))
    assert "Persistent compilation cache hit for 'jit_f'" not in err  # it compiled the program itself,
    assert (cache / entry["name"]).exists() and not lock.exists()  # wrote the entry, left no lock
    assert out == entry["out"]
