"""The README's Quickstart is what CI runs, and the library stays tensorflow-free."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _quickstart_blocks():
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    blocks = _quickstart_blocks()
    assert len(blocks) == 2 and all("\n" not in b for b in blocks)
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l and not l.startswith("#")]
    assert ci_lines[-1] == blocks[1]
    assert "pytest" in blocks[1]


def test_models_losses_converter_steps_and_benchmarks_import_without_tensorflow():
    # Make any import of tensorflow fail, as on the GPU image where it is not installed.
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"
            "import s2r_jax.models, s2r_jax.losses, s2r_jax.weights, s2r_jax.convert, s2r_jax.checkpoint, "
            "s2r_jax.summary, s2r_jax.config_schema, s2r_jax.distributed, s2r_jax.console, "
            "s2r_jax.training.depth_stage, s2r_jax.training.ste_stage, s2r_jax.training.sharding, "
            "s2r_jax.training.init, s2r_jax.training.panels, s2r_jax.data.kitti_gt, s2r_jax.data.procedural, "
            "s2r_jax.data.batching, s2r_jax.data.preprocessing, s2r_jax.data.augment, s2r_jax.data.specs, "
            "s2r_jax.benchmarks.train_step, s2r_jax.benchmarks.gt_export, s2r_jax.benchmarks.inference, "
            "s2r_jax.benchmarks.layers, s2r_jax.model_loader, s2r_jax.predict, s2r_jax.evaluation, "
            "s2r_jax.evaluation.evaluator, s2r_jax.evaluation.prediction_files, "
            "s2r_jax.export, s2r_jax.export.__main__, s2r_jax.export.to_stablehlo, s2r_jax.benchmarks.export\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
