r"""The metric-bins S2R-DepthNet against the tanh head, on the demo's procedural data.

  python -m s2r_jax.benchmarks.metric_bins_s2r --workdir runs/metric_bins [--config configs/demo.py[:quick]]

Renders the demo's procedural road scenes (or reuses a demo workdir's), pretrains the
structure encoder and trains stage 1 as the demo does, then trains, from the same stage 1
(DepthNet included when the demo's `stage2_depth_net_from_stage1` is set) and for the same
steps, batch and learning rate, (a) stage 2 with DepthNet's tanh head
(configs/dsa_depth.py: multi-scale L1 on depth / 80 m) and (b) the metric-bins variant
(configs/metric_bins_s2r.py: ZoeDepth's metric bins head on DepthNet's decoder, SILog in
metres; head widths as its `:local` variant). Both are evaluated on the synthetic-style
test scenes and on the same scenes rendered 'real' (a style shift), under the metric
protocol (no scaling) and the median-scaled one (S2R-DepthNet's test.py), whole frames.
Prints a table and writes `metric_bins_results.json` to the workdir. Not a timed
benchmark: what each head reaches at the demo's sizes and length.
"""
from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

from s2r_jax import console, demo, repo

PROTOCOLS = ("metric", "s2r_official")
METRICS = ("abs_rel", "rmse", "a1")


def train_metric_bins(config, workdir: str, data: dict, stage1: str) -> str:
    """The metric-bins variant from `stage1`, at the demo's sizes and stage-2 length."""
    run = os.path.join(workdir, "metric_bins")
    c = demo.small_stage(repo.load_config("metric_bins_s2r", "local"), config, data["train"], config.steps.stage2)
    c = demo.start_stage2_from(c, config, stage1)  # as the demo starts the tanh head's stage 2
    console.say(f"\n=== metric-bins head on DepthNet, SILog in metres ({config.steps.stage2} steps)")
    repo.load_program("train").train(c, run)
    return run


def evaluate(runs: dict, data: dict) -> dict:
    """{(model, test set, protocol): metrics} under each protocol, whole frames."""
    from s2r_jax.evaluation.protocols import protocol_from_config
    evaluator = repo.load_program("eval")
    results = {}
    for test in ("test_synthetic", "test_real"):
        for model, path in runs.items():
            for protocol in PROTOCOLS:
                e = repo.load_config("eval_vkitti")
                e.data.data_dir, e.checkpoint, e.protocol, e.crop = data[test], path, protocol, "none"
                results[(model, test, protocol)] = evaluator.evaluate_model(e, protocol_from_config(e))[0]
    return results


def report(results: dict) -> str:
    lines = [f"{'head':<14}{'test set':<16}{'protocol':<14}" + "".join(f"{n:>10}" for n in METRICS)]
    for (model, test, protocol), m in results.items():
        lines.append(f"{model:<14}{test:<16}{protocol:<14}" + "".join(f"{m[n]:>10.4f}" for n in METRICS))
    return "\n".join(lines)


def main(argv):
    del argv
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    console.setup(console.log_file(workdir), flags.FLAGS.verbose)
    t0 = time.time()
    try:
        data = demo.render_data(config, workdir)
        trainer = repo.load_program("train")
        ste = demo.pretrain(config, workdir, data, trainer)
        s2r = demo.train_seed(config, workdir, data, ste, config.seeds[0], trainer, baseline=False)
        runs = {"tanh": s2r["stage2"], "metric_bins": train_metric_bins(config, workdir, data, s2r["stage1"])}
        console.say("\n=== evaluation")
        results = evaluate(runs, data)
    except (ValueError, FileNotFoundError) as e:
        console.error(str(e))
        sys.exit(1)
    console.say("\n" + report(results))
    with open(os.path.join(workdir, "metric_bins_results.json"), "w") as f:
        json.dump({"/".join(k): v for k, v in results.items()}, f, indent=2)
    console.say(f"\nfinished in {(time.time() - t0) / 60:.1f} min; results in "
                f"{os.path.join(workdir, 'metric_bins_results.json')}")


if __name__ == "__main__":
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", os.path.join(repo.ROOT, "configs", "demo.py"), "The demo's config.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", "runs/metric_bins", "Where data, checkpoints, logs and the results go.")
    flags.DEFINE_bool("verbose", False, "Show library logs on the terminal (they always go to WORKDIR/log.txt).")
    app.run(main)
