"""Several hosts for real: train.py and eval.py on 2 and 4 processes joined by jax.distributed
over 127.0.0.1 (gloo collectives, CPU devices per process), against one process with 8 devices.

Everything that must be exact computes in float64 (JAX_ENABLE_X64 and model.dtype float64):
then a run's parameters depend on its topology only through summation order (~1e-12), while
a data, sharding or collective mistake changes them at ~1e-3.

Five launches, 12 processes: stage 1 killed on 2 x 4 and finished on 4 x 2, evaluation on
2 x 4, pretraining on 2 x 4 stopped by SIGTERM, and a 2 x 1 launch with mismatched configs.
Each process pays its imports and traces its programs (about 20 s of CPU on 2 cores), so the
file keeps launches few rather than steps few.
"""
import glob
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest

import golden
from configs_util import load_config, override
from s2r_jax import checkpoint, repo, weights
from s2r_jax.local_cluster import Cluster
from s2r_jax.training.sharding import split_arrays

STEPS = 3  # checkpoint 2 by 2 x 4 processes (then one is killed), step 3 resumed on 4 x 2
# Narrower than the `:local` smoke run (widths 8): a float64 step then takes a third of the
# time, and these tests run a few dozen of them on every topology.
NARROW = {"encoder_dim": 4, "depth_ngf": 4}
# What every stage-1 run here sets, the launches (as --config. flags) and the one-process
# reference (through configs_util.override) alike. log.every_steps=1: the hosts agree at every
# step on whether any was signalled (loop._should_stop), so the 4-process relaunch runs that
# collective at its one step. fsdp_min_size 1024: under fsdp, 78 of the train state's 374 arrays
# are split over the 8 devices (the configs' 2**18 would split none of this narrow network's).
STAGE1 = {"allow_random_frozen": True, "model.dtype": "float64", "log.every_steps": 1, "checkpoint.keep": 10,
          "checkpoint.every_steps": 2, "fsdp_min_size": 1024, **{f"model.{k}": v for k, v in NARROW.items()}}
# narrow and shallow pretraining (1 residual block per decoder, one 2-layer discriminator scale):
# the step compiles in about a third less time than with MUNIT's depths, and compiling is most
# of the pretraining test
PRETRAIN_NARROW = {"encoder_dim": 4, "style_dim": 2, "mlp_dim": 8, "dis_dim": 4, "decoder_res_blocks": 1,
                   "dis_layers": 2, "dis_scales": 1}
# 32 x 48 frames and style images (the translation networks take any size): a float64
# step costs a third of the `:local` run's 64 x 96
PRETRAIN_SIZE = (32, 48)
PRETRAIN_STEPS = 5  # the SIGTERM stops it at step 2 or 3 (4 at worst), before: see pretraining_run
# What every pretraining run here sets, the launch and the one-process reference alike
PRETRAIN = {"model.dtype": "float64", "data.image_size": PRETRAIN_SIZE, "log.every_steps": 1,
            "log.image_every_steps": 0, **{f"model.{k}": v for k, v in PRETRAIN_NARROW.items()}}


def _flags(fields: dict) -> list[str]:
    """The --config. flags that set `fields` ({"a.b": value}) as configs_util.override does."""
    return [f"--config.{k}={v}" for k, v in fields.items()]


def _train_args(data_dir, workdir, *more):
    return ["--config", "configs/struct_decoder.py:local", "--workdir", str(workdir),
            f"--config.data.data_dir={data_dir}", f"--config.num_train_steps={STEPS}", *_flags(STAGE1), *more]


def _max_diff(a, b) -> float:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _variables(workdir, step=None):
    return checkpoint.load_variables(workdir, step)[0]


def _writers(workdir, step) -> list[int]:
    """The processes that wrote data into checkpoint `step`'s variables: orbax's OCDBT format
    keeps each process's writes in its own `ocdbt.process_<i>/d/` (process 0 alone writes the
    replicated arrays under checkpoint.MIN_REPLICA_SLICE_BYTES)."""
    found = glob.glob(os.path.join(workdir, str(step), "variables", "ocdbt.process_*", "d", "*"))
    return sorted({int(re.search(r"ocdbt\.process_(\d+)", f).group(1)) for f in found})


@pytest.fixture(scope="session")
def cache_dir():
    """This test process's compilation cache (tests/conftest.py), shared with every cluster launch:
    whichever compiles a program first (this process, or a cluster's process 0), every later run
    of it on 8 CPU devices loads it, whatever the split into processes."""
    return jax.config.jax_compilation_cache_dir


def _mismatched_launch(d, cache_dir, clusters):
    """Stage 1 on 2 x 1 devices, process 1 with another data.shuffle_seed and another version of
    train.py (a copy with one more line). Its data_dir does not exist: the hosts must stop at the
    config check, before anything reads data (had the check let them go on, they would fail on
    the missing data with another error, which the test tells apart), so the launch needs no
    procedural data and starts with the file."""
    other_version = d / "other_version" / "train.py"
    other_version.parent.mkdir()
    other_version.write_text((Path(repo.ROOT) / "train.py").read_text() + "# another version\n")
    with Cluster("train.py", _train_args(d / "no_data", d / "w"), 2, 1, str(d / "logs"), cache_dir,
                 extra={1: ["--config.data.shuffle_seed=1"]}, programs={1: str(other_version)}) as cluster:
        clusters.append(cluster)
        codes = cluster.wait(300)
        return {"codes": codes, "errs": [cluster.output(i, "err") for i in range(2)]}


@pytest.fixture(scope="session", autouse=True)
def mismatched_launch(tmp_path_factory, cache_dir):
    """The launch that needs nothing from the others and stops at start runs in a thread (which
    only waits on its 2 processes) from the file's start, while this process builds the procedural
    frames and the one-process stage-1 reference traces and compiles, mostly on one core. (Session
    scope: pytest sets up session fixtures, the procedural frames among them, before module ones.)
    Its processes are killed, at the latest, when the session ends. (Launches that train do not
    run side by side: busy collectives lose more to the contention than the overlap gains,
    docs/benchmarks.md.)"""
    clusters = []
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(_mismatched_launch, tmp_path_factory.mktemp("mismatched"), cache_dir, clusters)
        for cluster in clusters:
            cluster.kill_all()


@pytest.fixture(scope="module")
def reference(procedural_vkitti, tmp_path_factory):
    """The same stage-1 run in this one process on 8 devices, a checkpoint every 2 steps. It compiles
    the FSDP step that every launch of `interrupted_run` loads from the cache. (FSDP equals
    replicated in one process: tests/test_training.py; replicated across processes: the
    pretraining test below.)"""
    c = override(load_config("struct_decoder", "local"), **STAGE1, **{
        "data.data_dir": procedural_vkitti, "num_train_steps": STEPS, "log.image_every_steps": 0,
        "param_sharding": "fsdp"})
    workdir = str(tmp_path_factory.mktemp("reference") / "w")
    with jax.enable_x64(True):
        state = repo.load_program("train").train(c, workdir)
    return {"workdir": workdir, "split": split_arrays(state)}


@pytest.fixture(scope="module")
def interrupted_run(procedural_vkitti, tmp_path_factory, cache_dir, reference):
    """One FSDP stage-1 run of STEPS steps through two launches, as a preempted job lives:
    1. 2 x 4 devices; kill -9 of process 1 once checkpoint 2 is complete;
    2. relaunched on 4 x 2 devices, it resumes and finishes (with an image panel at the last step).
    Both launches load the training step that `reference` compiled. Returns what each launch did;
    the tests below check it. (SIGTERM is the pretraining launch's.)"""
    d = tmp_path_factory.mktemp("interrupted")
    workdir = d / "w"
    args = _train_args(procedural_vkitti, workdir, "--config.param_sharding=fsdp",
                       f"--config.log.image_every_steps={STEPS}")
    run = {"workdir": str(workdir), "host0_pids": [], "errs": []}
    with Cluster("train.py", args, 2, 4, str(d / "l1"), cache_dir, heartbeat_s=5, log_compiles=True) as killed:
        run["host0_pids"].append(killed.procs[0].pid)
        killed.wait_for(lambda: os.path.isdir(workdir / "2"), timeout=600)
        killed.signal(1, signal.SIGKILL)
        run["killed_at"] = checkpoint.Checkpointer(workdir).latest_step()  # only complete steps are listed
        # Relaunched at once, while the survivor waits out the heartbeat timeout (its cores are
        # idle meanwhile): it can write nothing more, its next checkpoint needing step 3, which
        # needs process 1; and the relaunch reads the workdir only after its imports.
        with Cluster("train.py", args, 4, 2, str(d / "l2"), cache_dir, log_compiles=True) as finishing:
            run["host0_pids"].append(finishing.procs[0].pid)
            run["killed_codes"] = killed.wait(120)  # heartbeat 5 s: the survivor is stopped well within this
            run["killed_err"], run["killed_output"] = killed.output(0, "err"), killed.output(0)
            run["errs"] += [killed.output(i, "err") for i in range(2)]
            run["finished_codes"] = finishing.wait(600)
            run["finished_outputs"] = [finishing.output(i) for i in range(4)]
            run["finished_errs"] = [finishing.output(i, "err") for i in range(4)]
            run["finished_err"] = run["finished_errs"][0]
            run["errs"] += run["finished_errs"]
    assert run["killed_at"] == 2, run  # killed within 0.2 s of checkpoint 2, before step 3's could complete
    return run


def test_a_killed_host_stops_the_others_naming_it(interrupted_run):
    codes, err = interrupted_run["killed_codes"], interrupted_run["killed_err"]
    assert codes[0] != 0 and codes[1] == -signal.SIGKILL
    assert re.search(r"Task 1 heartbeat timeout|stopped sending heartbeats\):\s*1\b", err), err[-3000:]


def test_two_processes_train_as_one_through_kill_and_resume(interrupted_run, reference):
    """2 x 4 devices with FSDP equals 1 x 8 at the first checkpoint, and the run killed and
    resumed on 4 x 2 ends equal to the uninterrupted one: the data of a step, the collectives
    and the collective checkpoints do not depend on the topology. Each launch split as many
    arrays as the one-process run (by the same shape rule), and every host wrote its shards."""
    run = interrupted_run
    assert run["finished_codes"] == [0, 0, 0, 0], run["finished_err"][-3000:]
    assert f"resumed from {run['workdir']} at step {run['killed_at']}" in run["finished_outputs"][0]  # 2 x 4's on 4 x 2
    split, arrays = reference["split"]  # 78 of 374 here (see STAGE1)
    assert split > 0
    said = f"fsdp: {split} of {arrays} arrays of the train state split over the mesh"
    assert said in run["killed_output"] and said in run["finished_outputs"][0]
    assert _writers(run["workdir"], 2) == [0, 1]  # by 2 x 4
    assert _writers(run["workdir"], STEPS) == [0, 1, 2, 3]  # by 4 x 2
    at_kill = _variables(run["workdir"], 2)  # written by 2 x 4, restored here onto one device
    assert _max_diff(at_kill, _variables(reference["workdir"], 2)) <= 1e-6
    final = _variables(run["workdir"])
    assert _max_diff(final, _variables(reference["workdir"], STEPS)) <= 1e-6
    # the multi-process checkpoints restore onto one device of this process (eval, predict, init_from)
    for variables in (at_kill, final):
        assert {tuple(x.sharding.device_set)[0] for x in jax.tree.leaves(variables)} == {jax.local_devices()[0]}
    # and convert back to the official PyTorch state dicts (`convert --to_official`) of the networks
    # stage 1 trains (the `:local` DSA trunk has no official layout: tests/test_convert.py)
    for network in ("struct_encoder", "struct_decoder"):
        exported = weights.export_state_dict(network, at_kill)
        expected = weights.export_state_dict(network, _variables(reference["workdir"], 2))
        assert set(exported) == set(golden.LAYOUT[network])
        assert exported.keys() == expected.keys()
        assert max(float(np.max(np.abs(exported[k] - expected[k]))) for k in exported) <= 1e-6


def test_no_launch_compiles_the_step(interrupted_run):
    """All 6 processes of the two launches (2 x 4, 4 x 2) load the training step that the
    one-process reference compiled on 8 devices, process 0 (which writes the cache) and the others
    alike. On CPU that needs the cache keys made independent of the process and of the device
    assignment (s2r_jax.local_cluster_process); the parameters equal the reference's (above)."""
    assert len(interrupted_run["errs"]) == 6
    for i, err in enumerate(interrupted_run["errs"]):
        assert "Persistent compilation cache hit for 'jit_step'" in err, f"process {i} of the launches compiled the step"


def test_only_host_0_writes_logs_and_gathered_panels(interrupted_run):
    host0, *others = interrupted_run["finished_outputs"]
    assert f"step {STEPS}/{STEPS}" in host0 and "of 4 processes" in host0
    assert all("step " not in out for out in others), others
    events = sorted(glob.glob(os.path.join(interrupted_run["workdir"], "events.out.tfevents.*")))
    # one file per launch, each written by that launch's process 0 (the pid is in the name)
    assert sorted(int(e.split(".")[-3]) for e in events) == sorted(interrupted_run["host0_pids"]), events
    from tensorboard.backend.event_processing import event_accumulator
    last = next(e for e in events if int(e.split(".")[-3]) == interrupted_run["host0_pids"][-1])
    acc = event_accumulator.EventAccumulator(last, size_guidance={"tensors": 0})
    acc.Reload()
    assert "panel" in acc.Tags()["tensors"] and "loss" in acc.Tags()["tensors"]  # panels gathered to host 0


def test_evaluation_on_two_processes_equals_one(procedural_vkitti, interrupted_run, tmp_path, cache_dir):
    """eval.py on 2 x 4 devices: each host scores its rows of every batch, the per-frame metrics
    are gathered, and the means and per-frame rows equal the one-process evaluation."""
    common = [f"--config.checkpoint={interrupted_run['workdir']}", f"--config.data.data_dir={procedural_vkitti}",
              "--config.data.split=train", "--config.crop=none", "--config.dtype=float64", "--config.batch_size=8"]
    with Cluster("eval.py", ["--config", "configs/eval_vkitti.py", f"--workdir={tmp_path / 'two'}", *common], 2, 4,
                 str(tmp_path / "logs"), cache_dir) as cluster:
        assert cluster.wait(900) == [0, 0], cluster.output(0, "err")[-3000:]
    evaluator = repo.load_program("eval")
    from s2r_jax.evaluation.protocols import protocol_from_config
    c = load_config("eval_vkitti")
    c.checkpoint, c.data.data_dir, c.data.split, c.crop = interrupted_run["workdir"], procedural_vkitti, "train", "none"
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


def _pretraining_args(data_dir, style_images, workdir):
    return ["--config", "configs/ste_pretrain.py:local", "--workdir", str(workdir),
            f"--config.data.data_dir={data_dir}", f"--config.style_images={style_images}",
            f"--config.num_train_steps={PRETRAIN_STEPS}", *_flags(PRETRAIN)]


def _sigterm_after_step_2(cluster: Cluster) -> list[int]:
    """SIGTERM to process 1 once host 0 has logged step 2 (its progress line); the return codes."""
    cluster.wait_for(lambda: re.search(r"^step 2/", cluster.output(0), re.M) is not None, timeout=600)
    cluster.signal(1, signal.SIGTERM)
    return cluster.wait(300)


@pytest.fixture(scope="module")
def pretraining_run(procedural_vkitti, procedural_style_images, tmp_path_factory, cache_dir):
    """Structure-encoder pretraining on 2 x 4 devices, replicated; SIGTERM to process 1 only,
    once host 0 has logged step 2 (every host has then finished a step, so its handler is set).
    The hosts agree at a log step (every step here) on whether any was signalled: at step 2 if
    process 1 had not yet reached step 2's agreement when the signal came, else at step 3 (at 4
    if this busy process sent the signal a step late).
    (Signalled after step 1, it stopped at step 1 in one run of four: one step would leave
    the second step's rows of the style stream unchecked.)

    The same run in this one process on 8 devices, with a checkpoint at each of steps 1..4,
    trains meanwhile, from the launch on. Whichever reaches the training step first, this process
    (usually: the cluster's are still importing) or the cluster's process 0, compiles it; the
    others wait for it and load it (the lock of s2r_jax.local_cluster_process), so it is compiled
    once, and the reference no longer runs after the cluster's steps. It runs in the main thread
    (training sets a SIGTERM handler); a helper thread signals and waits on the cluster."""
    d = tmp_path_factory.mktemp("pretraining")
    c = override(load_config("ste_pretrain", "local"), **PRETRAIN, **{
        "data.data_dir": procedural_vkitti, "style_images": procedural_style_images, "num_train_steps": 4,
        "checkpoint.every_steps": 1, "checkpoint.keep": 10})
    args = _pretraining_args(procedural_vkitti, procedural_style_images, d / "two")
    with ThreadPoolExecutor(1) as pool, Cluster("train.py", args, 2, 4, str(d / "logs"), cache_dir) as cluster:
        codes = pool.submit(_sigterm_after_step_2, cluster)
        with jax.enable_x64(True):
            repo.load_program("train").train(c, str(d / "one"))
        run = {"workdir": str(d / "two"), "reference": str(d / "one"), "codes": codes.result(timeout=600),
               "out": cluster.output(0), "err": cluster.output(0, "err")}
    run["stopped"] = checkpoint.Checkpointer(run["workdir"]).latest_step()
    return run


def test_sigterm_to_one_host_saves_the_same_step_on_all(pretraining_run):
    run = pretraining_run
    assert run["codes"] == [0, 0], run["err"][-3000:]
    said = run["out"]  # host 0's: it was not signalled, and stops because process 1 was
    assert run["stopped"] in (2, 3, 4), said  # agreed at the step process 1 saw the signal at
    assert f"signal on another host: saving step {run['stopped']} and exiting" in said
    assert "finished ste_pretrain" not in said


def test_pretraining_on_two_processes_equals_one(pretraining_run):
    """Structure-encoder pretraining through train.py, with its style-image stream split between
    the hosts, equals the one-process run at the step it stopped at; and stage 1 takes the encoder
    it trained."""
    run = pretraining_run
    assert run["codes"] == [0, 0], run["err"][-3000:]
    assert run["stopped"] in (2, 3, 4)
    two = _variables(run["workdir"])
    assert _max_diff(two, _variables(run["reference"], run["stopped"])) <= 1e-6
    assert _writers(run["workdir"], run["stopped"]) == [0]  # replicated, each array under 1 MiB: process 0 wrote all
    # stage 1's init_from.struct_encoder reads the 2-process pretraining checkpoint
    from s2r_jax.training import depth_stage
    s1 = load_config("struct_decoder", "local")
    s1.model.encoder_dim, s1.allow_random_frozen = PRETRAIN_NARROW["encoder_dim"], True
    s1.init_from.struct_encoder = run["workdir"]
    initial = depth_stage.initial_variables(s1, depth_stage.abstract_variables(depth_stage.build_model(s1.model), s1))
    assert _max_diff(jax.device_get(two["params"]["struct_encoder"]), initial["params"]["struct_encoder"]) == 0.0


def test_hosts_with_another_config_or_code_stop_at_start(mismatched_launch):
    run = mismatched_launch.result(timeout=600)
    assert run["codes"] == [1, 1]
    for err in run["errs"]:  # the check's error, not the missing data's (see _mismatched_launch)
        assert "process(es) [1] run a different config from process 0" in err, err[-3000:]
        assert "process(es) [1] run a different code from process 0" in err, err[-3000:]
