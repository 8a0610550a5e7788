"""s2r_jax.distributed without a cluster: the explicit cluster settings and their errors, and the
code fingerprint the hosts compare at start (tests/test_multihost.py runs both on real clusters)."""
import shutil

import ml_collections
import pytest

from s2r_jax import distributed
from s2r_jax.distributed import ClusterError


def _cluster(address="", num=0, pid=-1):
    return ml_collections.ConfigDict(dict(coordinator_address=address, num_processes=num, process_id=pid,
                                          initialization_timeout_s=300, heartbeat_timeout_s=100))


@pytest.fixture(autouse=True)
def no_cluster_environment(monkeypatch):
    for name in distributed.ENV:
        monkeypatch.delenv(name, raising=False)


def test_settings_from_the_config_or_the_environment(monkeypatch):
    assert distributed._explicit_settings(_cluster()) == {}  # left to JAX's auto-detection
    assert distributed._explicit_settings(_cluster("10.0.0.2:1234", 4, 3)) == {
        "coordinator_address": "10.0.0.2:1234", "num_processes": 4, "process_id": 3}
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.9:99")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    assert distributed._explicit_settings(_cluster()) == {
        "coordinator_address": "10.0.0.9:99", "num_processes": 2, "process_id": 0}
    # the config wins over the environment, field by field
    assert distributed._explicit_settings(_cluster("10.0.0.2:1234", 0, 1)) == {
        "coordinator_address": "10.0.0.2:1234", "num_processes": 2, "process_id": 1}


@pytest.mark.parametrize("cluster, env, message", [
    (_cluster("", 2, 0), {}, "need config.cluster.coordinator_address"),
    (_cluster(), {"JAX_PROCESS_ID": "1"}, "need config.cluster.coordinator_address"),
    (_cluster("10.0.0.2", 2, 0), {}, "coordinator address '10.0.0.2' must be host:port"),
    (_cluster("10.0.0.2:1234", 2, 2), {}, r"0 <= process_id < num_processes \(got 2 and 2"),
    (_cluster("10.0.0.2:1234", 0, 0), {}, r"give num_processes >= 1 .*\(got 0 and 0"),
    (_cluster("10.0.0.2:1234"), {"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
     "environment variable JAX_NUM_PROCESSES='two' must be an integer"),
])
def test_bad_settings_are_named(monkeypatch, cluster, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ClusterError, match=message):
        distributed._explicit_settings(cluster)


def test_code_fingerprint(tmp_path):
    """Equal for the same sources wherever they lie; changed by any .py file's contents and by the
    program file; blind to files that are not Python."""
    here = tmp_path / "a" / "s2r_jax"
    shutil.copytree(distributed.PACKAGE_ROOT, here, ignore=shutil.ignore_patterns("__pycache__"))
    program = tmp_path / "train.py"
    program.write_text("print('train')\n")
    reference = distributed.source_fingerprint(str(here), str(program))
    assert distributed.source_fingerprint(distributed.PACKAGE_ROOT, str(program)) == reference
    (here / "notes.txt").write_text("not code")
    assert distributed.source_fingerprint(str(here), str(program)) == reference
    program.write_text("print('train')\n# another version\n")
    assert distributed.source_fingerprint(str(here), str(program)) != reference
    program.write_text("print('train')\n")
    other_name = tmp_path / "eval.py"
    other_name.write_text("print('train')\n")
    assert distributed.source_fingerprint(str(here), str(other_name)) != reference
    with open(here / "training" / "loop.py", "a") as f:
        f.write("\n")
    assert distributed.source_fingerprint(str(here), str(program)) != reference
