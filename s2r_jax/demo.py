r"""The whole system on a fresh machine, no download: the README's first command.

  python -m s2r_jax.demo --workdir runs/demo [--config configs/demo.py[:quick]] [--verbose]

1. renders procedural road scenes: 'synthetic'-style training frames, a test set of
   new scenes in the same style and the *same* test scenes in the 'real' style (a pure
   style shift), and a folder of 'real'-style images as the style domain; builds them
   with the real Virtual KITTI builder;
2. pretrains the structure encoder (structure/style translation), trains stage 1
   (structure decoder + DepthNet) and stage 2 (attention + DepthNet), small widths,
   with the stage configs of configs/ and train.py's own functions;
3. trains a plain image->depth network (the same DepthNet on RGB) on the same data
   and steps;
4. evaluates both on both test sets and prints them side by side, writes a panel PNG
   (input | structure | attention | prediction | ground truth), TensorBoard logs and
   checkpoints under the workdir. Library logs go to <workdir>/log.txt.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

from s2r_jax import console, repo
from s2r_jax.data import build, procedural


def render_data(config, workdir) -> dict:
    """Procedural frames in the Virtual KITTI layout, built with the real builder (a workdir's
    existing renders are reused)."""
    d = config.data
    h, w = config.image_size
    out = {}
    for name, num, style, seed in (("train", d.train_frames, "synthetic", 0),
                                   ("test_synthetic", d.test_frames, "synthetic", 1),
                                   ("test_real", d.test_frames, "real", 1),
                                   ("style", d.style_frames, "real", 2)):
        root = os.path.join(workdir, "data", name)
        if not os.path.exists(os.path.join(root, "train.txt")):
            procedural.write_dataset(root, num, style, seed=seed, height=h, width=w, workers=0, verbose=False)
        if name == "style":
            out[name] = os.path.join(root, "rgb")
            continue
        split = "train" if name == "train" else "test"
        data_dir = os.path.join(workdir, "tfds", name)
        build.build("virtual_kitti", root, data_dir, "1.3.1", split_files={split: os.path.join(root, "train.txt")})
        out[name] = data_dir
    return out


def small_stage(c, config, data_dir, steps):
    """The demo's widths, size, batch and schedule on a stage config."""
    c.model.encoder_dim = config.encoder_dim
    if "depth_ngf" in c.model:  # the depth stages (not pretraining)
        c.model.depth_ngf, c.model.dsa_channels = config.depth_ngf, tuple(config.dsa_channels)
    c.data.data_dir, c.data.image_size, c.data.batch_size = data_dir, tuple(config.image_size), config.batch_size
    c.data.shuffle_buffer = 256
    c.num_train_steps = steps
    c.checkpoint.every_steps = max(steps // 2, 1)
    c.log.every_steps = max(steps // 4, 1)
    c.log.image_every_steps = steps
    c.optimizer.learning_rate = config.learning_rate
    return c


def train_s2r(config, workdir, data) -> dict:
    """Structure-encoder pretraining, stage 1 and stage 2 at the demo's sizes: {name: workdir}
    (a workdir's finished runs are kept: training them again trains nothing)."""
    trainer = repo.load_program("train")
    runs = {k: os.path.join(workdir, k) for k in ("ste", "stage1", "stage2")}
    console.say(f"\n=== 1/4 structure-encoder pretraining ({config.steps.ste} steps): synthetic <-> 'real'-style")
    ste = small_stage(repo.load_config("ste_pretrain"), config, data["train"], config.steps.ste)
    ste.model.style_dim, ste.model.mlp_dim, ste.model.dis_dim = 4, 32, 8
    ste.data.image_size = tuple(config.ste_image_size)
    ste.style_images = data["style"]
    trainer.train(ste, runs["ste"])

    console.say(f"\n=== 2/4 stage 1: structure decoder + DepthNet ({config.steps.stage1} steps)")
    s1 = small_stage(repo.load_config("struct_decoder"), config, data["train"], config.steps.stage1)
    s1.init_from.struct_encoder = runs["ste"]
    trainer.train(s1, runs["stage1"])

    console.say(f"\n=== 3/4 stage 2: depth-specific attention + DepthNet ({config.steps.stage2} steps)")
    s2 = small_stage(repo.load_config("dsa_depth"), config, data["train"], config.steps.stage2)
    s2.init_from.struct_encoder = s2.init_from.struct_decoder = runs["stage1"]
    trainer.train(s2, runs["stage2"])
    return runs


def _train_all(config, workdir, data) -> dict:
    trainer = repo.load_program("train")
    runs = dict(train_s2r(config, workdir, data), baseline=os.path.join(workdir, "baseline"))
    steps = config.steps.stage1 + config.steps.stage2
    console.say(f"\n=== 4/4 baseline: the same DepthNet on the RGB image ({steps} steps, as many as stages 1 + 2)")
    b = small_stage(repo.load_config("dsa_depth"), config, data["train"], steps)
    b.stage, b.model.rgb_baseline, b.train_modules, b.frozen_modules = "rgb_baseline", True, ("depth_net",), ()
    b.use_attention = False
    trainer.train(b, runs["baseline"])
    return runs


def _evaluate(config, runs, data) -> dict:
    from s2r_jax.evaluation.protocols import protocol_from_config
    evaluator = repo.load_program("eval")
    results = {}
    for test in ("test_synthetic", "test_real"):
        for model in ("stage2", "baseline"):
            e = repo.load_config("eval_vkitti")
            e.data.data_dir, e.checkpoint = data[test], runs[model]
            e.protocol, e.crop = config.protocol, config.crop
            results[(model, test)] = evaluator.evaluate_model(e, protocol_from_config(e))[0]
    return results


def _panel(config, runs, data, path):
    """input | structure map | attention map | prediction | ground truth, on the 'real' test set."""
    import jax
    import tensorflow_datasets as tfds
    from PIL import Image

    from s2r_jax.data import pipeline
    from s2r_jax.model_loader import load_model
    from s2r_jax.training import panels

    lm = load_model(runs["stage2"])
    e = repo.load_config("eval_vkitti")
    e.data.data_dir = data["test_real"]
    ds = pipeline.eval_dataset(e.data, image_size=lm.image_size, batch_size=4)
    batch = next(iter(tfds.as_numpy(ds)))
    out = jax.device_get(lm.model.apply(lm.variables, batch["image"], use_attention=True))
    gt = np.clip(batch["gt"][..., None] / lm.spec.depth_range_m * 2 - 1, -1, 1)
    rows = panels.training_panel(batch["image"], out, gt)
    Image.fromarray(np.concatenate(list(rows), axis=0)).save(path)


def _report(results, config) -> str:
    names = ("abs_rel", "rmse", "a1")
    lines = [f"protocol: {config.protocol} (crop {config.crop}); style shift = the same scenes rendered 'real'",
             f"{'model':<16}{'test set':<18}" + "".join(f"{n:>10}" for n in names)]
    for (model, test), m in results.items():
        label = "S2R-DepthNet" if model == "stage2" else "RGB baseline"
        lines.append(f"{label:<16}{test:<18}" + "".join(f"{m[n]:>10.4f}" for n in names))
    drop = {model: results[(model, "test_real")]["abs_rel"] - results[(model, "test_synthetic")]["abs_rel"]
            for model in ("stage2", "baseline")}
    lines.append(f"abs_rel change under the style shift: S2R-DepthNet {drop['stage2']:+.4f}, "
                 f"RGB baseline {drop['baseline']:+.4f} (smaller is more robust)")
    return "\n".join(lines)


def _claim_workdir(config, workdir):
    """A workdir holds one demo configuration: its data and checkpoints are reused (a re-run
    resumes), so a different configuration there would mix runs."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "demo_config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) != current:
                raise ValueError(f"{workdir} holds a demo run of another configuration; use a new --workdir")
    else:
        with open(path, "w") as f:
            json.dump(current, f, indent=2)


def run(config, workdir: str) -> dict:
    t0 = time.time()
    _claim_workdir(config, workdir)
    console.say("=== rendering procedural road scenes (Virtual KITTI layout), building them with the "
                "virtual_kitti builder")
    data = render_data(config, workdir)
    runs = _train_all(config, workdir, data)
    console.say("\n=== evaluation")
    results = _evaluate(config, runs, data)
    panel_path = os.path.join(workdir, "demo_panel.png")
    _panel(config, runs, data, panel_path)
    report = _report(results, config)
    console.say("\n" + report)
    with open(os.path.join(workdir, "demo_results.json"), "w") as f:
        json.dump({f"{m}/{t}": r for (m, t), r in results.items()}, f, indent=2)
    console.say(f"\npanel: {panel_path}; TensorBoard: tensorboard --logdir {workdir}; "
                f"checkpoints: {', '.join(runs.values())}; logs: {os.path.join(workdir, 'log.txt')}")
    console.say(f"demo finished in {(time.time() - t0) / 60:.1f} min")
    return results


def main(argv):
    del argv
    from s2r_jax.training.loop import TrainingError
    workdir = flags.FLAGS.workdir
    console.setup(console.log_file(workdir), flags.FLAGS.verbose)
    try:
        run(flags.FLAGS.config, workdir)
    except (ValueError, FileNotFoundError, TrainingError) as e:
        console.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", os.path.join(repo.ROOT, "configs", "demo.py"), "The demo's config.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", "runs/demo", "Where data, checkpoints, logs and the panel go.")
    flags.DEFINE_bool("verbose", False, "Show library logs on the terminal (they always go to WORKDIR/log.txt).")
    app.run(main)
