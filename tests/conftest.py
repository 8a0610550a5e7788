"""Test set-up: 8 fake CPU devices, before anything initialises a JAX backend.

The suite runs on two pytest-xdist workers, a file per worker at a time (setup.cfg's
addopts): XLA compiles on one thread, and most of the suite's time is compilation, so a
2-core machine runs two files at once at nearly twice the speed. The longest files go first
(`pytest_collection_modifyitems`), so that no long file starts last and runs alone.

A persistent compilation cache (fresh per session) lets the many identical
programs that separate training runs compile only once. Its keys are those of the local
clusters' processes (`share_compilations`): a program compiled here for 8 devices is loaded by
a 2 x 4 or 4 x 2 cluster of the multi-host tests, and the other way round.
"""
import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="s2r_jax_xla_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

from s2r_jax.local_cluster_process import share_compilations  # noqa: E402

share_compilations()  # on a JAX without the functions it replaces, the multi-host cache tests say so


import pytest  # noqa: E402

# The files that take longest (minutes each on 2 cores), longest first; the rest follow in
# their usual order.
LONGEST_FIRST = ("test_multihost.py", "test_training.py", "test_ste.py", "test_zoedepth_finetune.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def procedural_vkitti(tmp_path_factory):
    """16 procedural 'synthetic' frames at 96x160 built as virtual_kitti/1.3.1: the TFDS data_dir."""
    from s2r_jax.data import build, procedural
    d = tmp_path_factory.mktemp("proc")
    procedural.write_dataset(str(d / "raw"), 16, "synthetic", seed=0, height=96, width=160, verbose=False)
    build.build("virtual_kitti", str(d / "raw"), str(d / "tfds"), "1.3.1",
                split_files={"train": str(d / "raw" / "train.txt")})
    return str(d / "tfds")


@pytest.fixture(scope="session")
def procedural_style_images(tmp_path_factory):
    """A folder of 16 'real'-style procedural images (120x200): a style domain."""
    from s2r_jax.data import procedural
    d = tmp_path_factory.mktemp("style")
    procedural.write_dataset(str(d), 16, "real", seed=5, height=120, width=200, verbose=False)
    return str(d / "rgb")


@pytest.fixture(scope="session")
def stage2_checkpoint(procedural_vkitti, tmp_path_factory):
    """A tiny stage-2 model (configs/dsa_depth.py:local) trained 2 steps on the procedural frames: a
    workdir that evaluation and prediction tests read like any checkpoint."""
    from s2r_jax import repo
    c = repo.load_config("dsa_depth", "local")
    c.data.data_dir, c.allow_random_frozen, c.num_train_steps, c.log.image_every_steps = procedural_vkitti, True, 2, 0
    workdir = str(tmp_path_factory.mktemp("stage2") / "w")
    repo.load_program("train").train(c, workdir)
    return workdir
