r"""Evaluate depth predictions under a published protocol: one dataset, or the zero-shot suite.

  python eval.py --config configs/eval_kitti.py --config.checkpoint=DIR --workdir out/
  python eval.py --config configs/eval_kitti.py:monodepth2 --config.checkpoint=DIR
  python eval.py --config configs/eval_kitti.py --config.predictions=preds.npz --config.gt_file=gt.npz
  python eval.py --config configs/zero_shot.py --config.checkpoint=DIR --workdir out/zero_shot

Reads top-down in the order the data flows: cluster -> protocol -> model on every device of
every host (or a predictions file made by any model) -> ground truth and predictions ->
metrics -> the table, metrics.json and per-frame rows (host 0).
"""
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from s2r_jax import config_schema, console, distributed
from s2r_jax.evaluation import metrics, prediction_files, report
from s2r_jax.evaluation.protocols import protocol_from_config


def model_evaluation(config):
    """The checkpoint's model on every device of every host, as a function
    (data, ground truth, protocol, valid mask feature) -> (means, per-frame results, names,
    this host's predictions) — what both kinds of run call per dataset."""
    from s2r_jax.evaluation.evaluator import DatasetEvaluation
    from s2r_jax.model_loader import load_model
    from s2r_jax.training.sharding import make_mesh, replicated

    mesh = make_mesh()                                                                 # devices
    model = load_model(config.checkpoint, depth_range_m=config.model_depth_range_m or None,
                       image_size=tuple(config.model_image_size) or None, dtype=config.dtype,
                       sharding=replicated(mesh))                                    # model

    def evaluate(data, ground_truth, protocol, valid_feature=None, keep_predictions=False):
        evaluation = DatasetEvaluation(data, ground_truth, protocol, mesh, batch_size=config.batch_size,  # data
                                       image_size=model.image_size, depth_range_m=model.spec.depth_range_m,
                                       dtype=config.dtype, valid_feature=valid_feature)
        r = evaluation.run(model.finest_fn, model.variables, keep_predictions=keep_predictions)  # metrics
        return r.mean, r.per_image, r.names, r.local_predictions

    source = {"checkpoint": config.checkpoint, "depth_range_m": model.spec.depth_range_m,
              "image_size": list(model.image_size), "dtype": config.dtype}
    return evaluate, source


def evaluate_model(config, protocol):
    """One dataset, predicted by the checkpoint's model."""
    evaluate, source = model_evaluation(config)
    mean, per_image, names, kept = evaluate(config.data, config.ground_truth, protocol,
                                            keep_predictions=config.save_predictions)
    return mean, per_image, names, kept, source


def evaluate_file(config, protocol):
    """Predictions made elsewhere, against the dataset's (or a ground-truth file's) ground truth."""
    from s2r_jax.evaluation.ground_truth import ground_truth_frames

    gts, names = ground_truth_frames(config)
    preds = prediction_files.load_predictions(config.predictions)
    mean, per_image = metrics.evaluate(gts, preds, protocol, progress=distributed.is_host0())
    return mean, per_image, names, [], {"predictions": config.predictions}


def evaluate_zero_shot(config):
    """Every built transfer dataset under its protocol, and mRI against the reference."""
    from s2r_jax.evaluation import zero_shot_suite

    names = zero_shot_suite.select_datasets(config)
    model_eval, source = (None, {"predictions": config.predictions})
    if config.checkpoint:
        evaluate, source = model_evaluation(config)
        model_eval = lambda data, gt, protocol, valid: evaluate(data, gt, protocol, valid)[:3]
    results = {}
    for name in names:
        console.say(f"[zero-shot] {name} ...")
        results[name] = zero_shot_suite.evaluate_dataset(name, config, model_eval)
    return results, zero_shot_suite.with_mri(results, config.reference), source


def run_zero_shot(config, workdir):
    from s2r_jax.evaluation import zero_shot_suite
    results, mri, source = evaluate_zero_shot(config)
    if distributed.is_host0():
        print(zero_shot_suite.format_table(results, mri, config.protocol))
        if workdir:
            zero_shot_suite.write_results(workdir, results, mri, config.protocol, source)
            print(f"wrote {os.path.join(workdir, 'metrics.json')}, report.md, chart.png and per-frame rows")


def run_one_dataset(config, workdir):
    protocol = protocol_from_config(config)
    evaluate = evaluate_model if config.checkpoint else evaluate_file
    mean, per_image, names, predictions, source = evaluate(config, protocol)
    source.update(dataset=config.data.dataset, split=config.data.split, ground_truth=config.ground_truth,
                  gt_file=config.gt_file)
    if workdir and predictions:
        os.makedirs(workdir, exist_ok=True)
        name = "predictions.npz" if not distributed.multihost() else f"predictions.process{jax.process_index():05d}.npz"
        prediction_files.save_predictions(os.path.join(workdir, name), *zip(*predictions))
    if distributed.is_host0():
        print(report.format_table(mean, protocol))
        if workdir:
            report.write_results(workdir, protocol, mean, per_image, names, source)
            print(f"wrote {os.path.join(workdir, 'metrics.json')} and per_image.csv")


def main(argv):
    del argv
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    try:
        config_schema.validate_evaluation(config)
        if config.dtype == "float64":
            jax.config.update("jax_enable_x64", True)  # the model computes in float64 (exactness checks)
        distributed.initialize(config)  # first: each process's log file is named after it
        console.setup(console.log_file(workdir) if workdir else None, flags.FLAGS.verbose)
        distributed.check_same_program(config)
        (run_zero_shot if config_schema.is_zero_shot(config) else run_one_dataset)(config, workdir)
    except (ValueError, FileNotFoundError, distributed.ClusterError) as e:
        console.error(str(e))
        sys.exit(1)


def define_flags():
    """Only when run as a program: importing this file (the demo, the tests) claims no flag names."""
    config_flags.DEFINE_config_file("config", None, "A configs/eval_*.py or configs/zero_shot.py file (optionally "
                                    "'file.py:variant').", lock_config=True)
    flags.DEFINE_string("workdir", None, "Where metrics.json and the per-frame rows (and predictions) go (optional).")
    flags.DEFINE_bool("verbose", False, "Show library logs on the terminal (else they go to WORKDIR/log.txt).")
    flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
