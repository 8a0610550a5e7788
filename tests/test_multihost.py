"""Several hosts for real: train.py and eval.py on 2 and 4 processes joined by jax.distributed
over 127.0.0.1 (gloo collectives, CPU devices per process), against one process with 8 devices.

Everything that must be exact computes in float64 (JAX_ENABLE_X64 and model.dtype float64):
then a run's parameters depend on its topology only through summation order (~1e-12), while
a data, sharding or collective mistake changes them at ~1e-3.
"""
import glob
import os
import re
import signal

import jax
import numpy as np
import pytest

from configs_util import load_config
from s2r_jax import checkpoint, repo
from s2r_jax.local_cluster import Cluster

STEPS = 10
COMMON = ["--config.allow_random_frozen=True", "--config.model.dtype=float64", "--config.log.every_steps=2",
          "--config.log.image_every_steps=0", "--config.checkpoint.keep=10"]


def _train_args(data_dir, workdir, *more):
    return ["--config", "configs/struct_decoder.py:local", "--workdir", str(workdir),
            f"--config.data.data_dir={data_dir}", f"--config.num_train_steps={STEPS}", *COMMON, *more]


def _max_diff(a, b) -> float:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _variables(workdir, step=None):
    return checkpoint.load_variables(workdir, step)[0]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One compilation cache for every launch of the module: relaunches of a program compile once."""
    return str(tmp_path_factory.mktemp("xla_cache"))


@pytest.fixture(scope="module")
def reference(procedural_vkitti, tmp_path_factory):
    """The same stage-1 run in this one process on 8 devices, a checkpoint every 2 steps."""
    c = load_config("struct_decoder", "local")
    c.data.data_dir, c.allow_random_frozen, c.num_train_steps = procedural_vkitti, True, STEPS
    c.model.dtype, c.log.every_steps, c.log.image_every_steps = "float64", 2, 0
    c.checkpoint.every_steps, c.checkpoint.keep = 2, 10
    workdir = str(tmp_path_factory.mktemp("reference") / "w")
    with jax.enable_x64(True):
        repo.load_program("train").train(c, workdir)
    return workdir


@pytest.fixture(scope="module")
def fsdp_run(procedural_vkitti, tmp_path_factory, cache_dir):
    """2 processes x 4 devices, FSDP parameters, 4 steps, with image panels."""
    d = tmp_path_factory.mktemp("fsdp")
    args = _train_args(procedural_vkitti, d / "w", "--config.param_sharding=fsdp", "--config.num_train_steps=4",
                       "--config.checkpoint.every_steps=2", "--config.log.image_every_steps=4")
    with Cluster("train.py", args, 2, 4, str(d / "logs"), cache_dir) as cluster:
        codes = cluster.wait(900)
        outputs = [cluster.output(i) for i in range(2)]
    assert codes == [0, 0], outputs
    return {"workdir": str(d / "w"), "outputs": outputs}


def test_two_processes_train_as_one_and_only_host_0_writes_logs(fsdp_run, reference):
    """2 x 4 devices with FSDP equals 1 x 8 replicated: the data of a step, the collectives and
    the collective checkpoint do not depend on the topology."""
    assert _max_diff(_variables(fsdp_run["workdir"]), _variables(reference, 4)) <= 1e-6
    # the 2-process checkpoint restores onto one device of this process (eval, predict, init_from)
    one = _variables(fsdp_run["workdir"])
    assert {tuple(x.sharding.device_set)[0] for x in jax.tree.leaves(one)} == {jax.local_devices()[0]}
    host0, host1 = fsdp_run["outputs"]
    assert "step 4/4" in host0 and "of 2 processes" in host0 and "step " not in host1
    events = glob.glob(os.path.join(fsdp_run["workdir"], "events.out.tfevents.*"))
    assert len(events) == 1  # host 0 only
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(events[0], size_guidance={"tensors": 0})
    acc.Reload()
    assert "panel" in acc.Tags()["tensors"] and "loss" in acc.Tags()["tensors"]  # panels gathered to host 0


def test_a_killed_host_a_preempted_host_and_resuming_on_other_topologies(procedural_vkitti, reference, tmp_path,
                                                                         cache_dir):
    """One run through three launches, ending equal to the uninterrupted one-process run:
    1. 2 x 4 devices; kill -9 of process 1 after a checkpoint: process 0 stops with an error
       naming the lost task within the heartbeat timeout (never hangs);
    2. relaunched on 4 x 2 devices, it resumes from the last complete checkpoint; SIGTERM to
       process 2 only: all four save the same step and exit 0;
    3. relaunched on 2 x 4 devices, it finishes."""
    workdir = tmp_path / "w"
    args = _train_args(procedural_vkitti, workdir, "--config.checkpoint.every_steps=2")
    with Cluster("train.py", args, 2, 4, str(tmp_path / "l1"), cache_dir, heartbeat_s=5) as cluster:
        cluster.wait_for(lambda: os.path.isdir(workdir / "4"), timeout=900)
        cluster.signal(1, signal.SIGKILL)
        codes = cluster.wait(120)  # heartbeat 5 s: the survivor is stopped well within this
        err = cluster.output(0, "err")
    assert codes[0] != 0 and codes[1] == -signal.SIGKILL
    assert re.search(r"Task 1 heartbeat timeout|stopped sending heartbeats\):\s*1\b", err), err[-3000:]
    killed_at = checkpoint.Checkpointer(workdir).latest_step()  # only complete steps are listed
    assert killed_at is not None and killed_at >= 4
    with Cluster("train.py", args, 4, 2, str(tmp_path / "l2"), cache_dir) as cluster:
        cluster.wait_for(lambda: f"resumed from {workdir} at step {killed_at}" in cluster.output(0), timeout=900)
        cluster.wait_for(lambda: re.search(r"^step \d+/", cluster.output(0), re.M) is not None, timeout=900)
        cluster.signal(2, signal.SIGTERM)
        assert cluster.wait(300) == [0, 0, 0, 0], cluster.output(0, "err")[-3000:]
        said = cluster.output(0)
    stopped = checkpoint.Checkpointer(workdir).latest_step()
    assert killed_at < stopped < STEPS and stopped % 2 == 0, said  # the hosts agree at log steps
    assert f"saving step {stopped} and exiting" in said
    with Cluster("train.py", args, 2, 4, str(tmp_path / "l3"), cache_dir) as cluster:
        assert cluster.wait(900) == [0, 0], cluster.output(0, "err")[-3000:]
    assert _max_diff(_variables(workdir), _variables(reference, STEPS)) <= 1e-6


def test_evaluation_on_two_processes_equals_one(procedural_vkitti, fsdp_run, tmp_path, cache_dir):
    """eval.py on 2 x 4 devices: each host scores its rows of every batch, the per-frame metrics
    are gathered, and the means and per-frame rows equal the one-process evaluation."""
    common = [f"--config.checkpoint={fsdp_run['workdir']}", f"--config.data.data_dir={procedural_vkitti}",
              "--config.data.split=train", "--config.crop=none", "--config.dtype=float64", "--config.batch_size=8"]
    with Cluster("eval.py", ["--config", "configs/eval_vkitti.py", f"--workdir={tmp_path / 'two'}", *common], 2, 4,
                 str(tmp_path / "logs"), cache_dir) as cluster:
        assert cluster.wait(900) == [0, 0], cluster.output(0, "err")[-3000:]
    evaluator = repo.load_program("eval")
    from s2r_jax.evaluation.protocols import protocol_from_config
    c = load_config("eval_vkitti")
    c.checkpoint, c.data.data_dir, c.data.split, c.crop = fsdp_run["workdir"], procedural_vkitti, "train", "none"
    c.dtype = "float64"
    with jax.enable_x64(True):
        mean, per_image, names, _, _ = evaluator.evaluate_model(c, protocol_from_config(c))
    import json
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    for k in ("abs_rel", "rmse", "a1", "frames"):
        assert two[k] == pytest.approx(mean[k], rel=1e-9), k
    rows = (tmp_path / "two" / "per_image.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == names and len(rows) == 16
    assert float(rows[5].split(",")[2]) == pytest.approx(per_image[5]["abs_rel"], rel=1e-9)


def test_pretraining_on_two_processes_equals_one(procedural_vkitti, procedural_style_images, tmp_path, cache_dir):
    """Structure-encoder pretraining through train.py, with its style-image stream split between
    the hosts, equals the one-process run; and stage 1 takes the encoder it trained."""
    common = [f"--config.data.data_dir={procedural_vkitti}", f"--config.style_images={procedural_style_images}",
              "--config.num_train_steps=2", "--config.model.dtype=float64", "--config.log.every_steps=1",
              "--config.log.image_every_steps=0"]
    with Cluster("train.py", ["--config", "configs/ste_pretrain.py:local", "--workdir", str(tmp_path / "two"),
                              *common], 2, 4, str(tmp_path / "logs"), cache_dir) as cluster:
        assert cluster.wait(900) == [0, 0], cluster.output(0, "err")[-3000:]
    c = load_config("ste_pretrain", "local")
    c.data.data_dir, c.style_images, c.num_train_steps = procedural_vkitti, procedural_style_images, 2
    c.model.dtype, c.log.every_steps, c.log.image_every_steps = "float64", 1, 0
    with jax.enable_x64(True):
        ste = repo.load_program("train").train(c, str(tmp_path / "one"))
    assert int(ste.step) == 2
    assert _max_diff(_variables(tmp_path / "two"), _variables(tmp_path / "one")) <= 1e-6
    s1 = load_config("struct_decoder", "local")
    s1.data.data_dir, s1.num_train_steps, s1.log.image_every_steps = procedural_vkitti, 1, 0
    s1.init_from.struct_encoder = str(tmp_path / "one")
    stage1 = repo.load_program("train").train(s1, str(tmp_path / "stage1"))
    assert _max_diff(jax.device_get(ste.gen_params["struct_encoder"]),
                     jax.device_get(stage1.frozen["params"]["struct_encoder"])) == 0.0


def test_hosts_with_another_config_stop_at_start(procedural_vkitti, tmp_path, cache_dir):
    args = _train_args(procedural_vkitti, tmp_path / "w")
    with Cluster("train.py", args, 2, 1, str(tmp_path / "logs"), cache_dir,
                 extra={1: ["--config.data.shuffle_seed=1"]}) as cluster:
        assert cluster.wait(300) == [1, 1]
        for i in range(2):
            assert "process(es) [1] run a different config from process 0" in cluster.output(i, "err")
    assert not os.path.exists(tmp_path / "w" / "2")  # nothing was trained
