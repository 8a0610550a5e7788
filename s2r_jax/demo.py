r"""The whole system on a fresh machine, no download: the README's first command.

  python -m s2r_jax.demo --workdir runs/demo [--config configs/demo.py[:quick]] [--verbose]

S2R-DepthNet is for depth that survives a change of style (synthetic -> real). The demo
measures exactly that on procedural road scenes: its test scenes are rendered twice, in the
training ('synthetic') style and in a 'real' style (textures, sun and fog, camera response,
blur, noise) — the same geometry, a pure style shift.

1. renders the frames (training: 'synthetic'; the test scenes in both styles; 'real'-style
   images of other scenes as the style domain) and builds them with the real Virtual KITTI
   builder;
2. pretrains the structure encoder once (structure/style translation), shared by the seeds;
3. for each seed: stage 1 (structure decoder + DepthNet), stage 2 (attention + DepthNet;
   by default its DepthNet starts from stage 1's, a warm start the paper does not use, so
   that 50 steps suffice) and a plain RGB->depth baseline (the same DepthNet on the image,
   trained as many steps as S2R-DepthNet's DepthNet over both stages), with train.py's own
   functions and the stage configs of configs/;
4. evaluates every model on both test sets (eval.py's `evaluate_model`), measures how
   style-free each representation is (`s2r_jax.diagnostics.style_invariance`) and prints
   both as mean ± standard deviation over the seeds, with what they do and do not show.
   It also writes demo_results.json, a panel PNG (input | structure | attention |
   prediction | ground truth), TensorBoard logs and checkpoints under the workdir. Library
   logs go to <workdir>/log.txt.

Settings are chosen on a validation render (`--config.data.test_seed=3`), never on the
test scenes; docs/benchmarks.md records the runs.
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

MODELS = {"stage2": "S2R-DepthNet", "stage1": "  stage 1 only", "baseline": "RGB baseline"}
STAGE_NAMES = {"stage1": "stage 1", "stage2": "stage 2", "baseline": "baseline"}
TESTS = {"test_synthetic": "synthetic style", "test_real": "'real' style"}


def render_data(config, workdir) -> dict:
    """Procedural frames in the Virtual KITTI layout, built with the real builder."""
    d = config.data
    h, w = config.image_size
    out = {}
    for name, num, style, seed in (("train", d.train_frames, "synthetic", d.train_seed),
                                   ("test_synthetic", d.test_frames, "synthetic", d.test_seed),
                                   ("test_real", d.test_frames, "real", d.test_seed),
                                   ("style", d.style_frames, "real", d.style_seed)):
        root = os.path.join(workdir, "data", name)
        if not os.path.exists(os.path.join(root, "train.txt")):
            procedural.write_dataset(root, num, style, seed=seed, height=h, width=w, workers=0, verbose=False)
        out[name + "_rgb"] = os.path.join(root, "rgb")
        if name == "style":
            continue
        split = "train" if name == "train" else "test"
        data_dir = os.path.join(workdir, "tfds", name)
        build.build("virtual_kitti", root, data_dir, "1.3.1", split_files={split: os.path.join(root, "train.txt")})
        out[name] = data_dir
    return out


def small_stage(c, config, data_dir, steps, seed=0):
    """The demo's widths, size, batch, schedule and seed on a stage config."""
    c.model.encoder_dim = config.encoder_dim
    if "depth_ngf" in c.model:  # the depth stages (not pretraining)
        c.model.depth_ngf, c.model.dsa_channels = config.depth_ngf, tuple(config.dsa_channels)
    c.data.data_dir, c.data.image_size, c.data.batch_size = data_dir, tuple(config.image_size), config.batch_size
    c.data.shuffle_buffer = 256
    c.init_seed, c.data.shuffle_seed = seed, seed
    c.num_train_steps = steps
    c.checkpoint.every_steps = steps
    c.log.every_steps = max(steps // 4, 1)
    c.log.image_every_steps = steps
    c.optimizer.learning_rate = config.learning_rate
    return c


def ste_config(config, data):
    """Structure-encoder pretraining at the demo's size (configs/ste_pretrain.py, small widths)."""
    ste = small_stage(repo.load_config("ste_pretrain"), config, data["train"], config.ste.steps, config.seeds[0])
    for field in ("style_dim", "mlp_dim", "dis_dim", "decoder_res_blocks", "dis_layers", "dis_scales"):
        ste.model[field] = config.ste[field]
    ste.data.image_size = tuple(config.ste.image_size)
    ste.style_images = data["style_rgb"]
    return ste


def pretrain(config, workdir, data, trainer) -> str:
    """Structure-encoder pretraining (once, shared by the seeds): its workdir."""
    path = os.path.join(workdir, "ste")
    console.say(f"\n=== structure-encoder pretraining ({config.ste.steps} steps, once, shared by the seeds): "
                "synthetic <-> 'real'-style images of other scenes")
    trainer.train(ste_config(config, data), path)
    return path


def start_stage2_from(c, config, stage1: str):
    """A stage-2 config `c` set to start from the `stage1` workdir: its frozen structure encoder
    and decoder and, with the demo's warm start, its DepthNet."""
    c.init_from.struct_encoder = c.init_from.struct_decoder = stage1
    if config.stage2_depth_net_from_stage1:  # a warm start (not the paper's): the stage trains in fewer steps
        c.init_from.depth_net = stage1
    return c


def seed_configs(config, workdir, data, ste, seed) -> dict:
    """{"stage1": (workdir, config), "stage2": ..., "baseline": ...} of one seed (its own init and
    data order), from the stage configs of configs/ at the demo's sizes."""
    runs = {k: os.path.join(workdir, f"seed{seed}", k) for k in ("stage1", "stage2", "baseline")}
    s1 = small_stage(repo.load_config("struct_decoder"), config, data["train"], config.steps.stage1, seed)
    s1.init_from.struct_encoder = ste
    s2 = start_stage2_from(small_stage(repo.load_config("dsa_depth"), config, data["train"], config.steps.stage2,
                                       seed), config, runs["stage1"])
    b = small_stage(repo.load_config("dsa_depth"), config, data["train"], config.steps.baseline, seed)
    b.stage, b.model.rgb_baseline, b.train_modules, b.frozen_modules = "rgb_baseline", True, ("depth_net",), ()
    b.use_attention = False
    return {"stage1": (runs["stage1"], s1), "stage2": (runs["stage2"], s2), "baseline": (runs["baseline"], b)}


def train_seed(config, workdir, data, ste, seed, trainer, baseline: bool = True) -> dict:
    """Stage 1, stage 2 and (unless `baseline` is False) the RGB baseline of one seed:
    {"stage1": workdir, ...}."""
    stages = seed_configs(config, workdir, data, ste, seed)
    if not baseline:
        del stages["baseline"]
    took = []
    for name, (path, c) in stages.items():
        t0 = time.time()
        with console.quiet():  # one line per seed instead of the loop's lines
            trainer.train(c, path)
        took.append(f"{STAGE_NAMES[name]} {c.num_train_steps} steps {console.duration(time.time() - t0)}")
    console.say(f"seed {seed}: " + ", ".join(took))
    return {name: path for name, (path, _) in stages.items()}


def _evaluate(config, runs, data) -> dict:
    """{(seed, model, test set): metrics} with eval.py's evaluate_model."""
    from s2r_jax.evaluation.protocols import protocol_from_config
    evaluator = repo.load_program("eval")
    results = {}
    for seed, seed_runs in runs.items():
        for model in MODELS:
            e = repo.load_config("eval_vkitti")
            e.checkpoint, e.protocol, e.crop = seed_runs[model], config.protocol, config.crop
            with console.quiet():
                evaluate = evaluator.model_evaluation(e)[0]  # the model loaded once for both test sets
                protocol = protocol_from_config(e)
                for test in TESTS:
                    e.data.data_dir = data[test]
                    results[(seed, model, test)] = evaluate(e.data, e.ground_truth, protocol)[0]
    return results


def _invariance(config, ste, runs, data) -> dict:
    """{(column, representation): [figures per seed]} on the test scenes' two renderings."""
    import ml_collections

    from s2r_jax.checkpoint import load_variables
    from s2r_jax.diagnostics import style_invariance as si
    from s2r_jax.training import ste_stage

    a, b = si.folder_pairs(data["test_synthetic_rgb"], data["test_real_rgb"], config.image_size)
    out = {("", si.IMAGE): [si.measure(si.image_representation, a, b)[si.IMAGE]]}
    variables, meta = load_variables(ste)
    ste_cfg = ml_collections.ConfigDict(meta["config"])
    initial = ste_stage.initial_variables(ste_cfg, ste_stage.abstract_variables(ste_cfg))["params"]["struct_encoder"]
    for label, params in (("encoder at init", initial), ("after pretraining", variables["params"]["struct_encoder"])):
        f = si.measure(si.encoder_representation(config.encoder_dim, params), a, b)[si.STRUCT_CODE]
        out[("", f"{si.STRUCT_CODE}, {label}")] = [f]
    for seed_runs in runs.values():
        for model in ("stage2", "baseline"):
            for name, f in si.measure(si.load_source(seed_runs[model]).represent, a, b).items():
                if name != si.STRUCT_CODE:  # the frozen pretrained encoder's: measured above
                    out.setdefault((model, name), []).append(f)
    return out


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
    # jitted: op by op, the forward pass compiled some 300 small programs (27 s)
    apply = jax.jit(lambda variables, images: lm.model.apply(variables, images, use_attention=True))
    out = jax.device_get(apply(lm.variables, batch["image"]))
    gt = np.clip(batch["gt"][..., None] / lm.spec.depth_range_m * 2 - 1, -1, 1)
    rows = panels.training_panel(batch["image"], out, gt)
    Image.fromarray(np.concatenate(list(rows), axis=0)).save(path)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; nan for one value)."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _pm(values, digits=4, sign=False) -> str:
    m, s = mean_sd(values)
    head = f"{m:+.{digits}f}" if sign else f"{m:.{digits}f}"
    return f"{head} ± {s:.{digits}f}" if np.isfinite(s) else head


def shift_verdict(d_s2r, d_base) -> str:
    """What the paired per-seed differences show, in words."""
    diff = np.asarray(d_base) - np.asarray(d_s2r)  # > 0: S2R-DepthNet loses less
    m, s = mean_sd(diff)
    if len(diff) < 2:
        return "one seed: no spread, so no conclusion (use at least 3 seeds)"
    if abs(m) < 5e-5:  # below the printed resolution
        return "the two models lose the same abs_rel under the shift"
    if m > s:
        return (f"S2R-DepthNet loses {m:.4f} ± {s:.4f} abs_rel less than the RGB baseline under the style "
                "shift (paired by seed): the difference is larger than its spread")
    if -m > s:
        return (f"S2R-DepthNet loses {-m:.4f} ± {s:.4f} abs_rel MORE than the RGB baseline under the style "
                "shift (paired by seed): at this scale the paper's effect is not shown")
    return (f"the two models' losses under the shift differ by {m:+.4f} ± {s:.4f} abs_rel (paired by seed), "
            "within the spread: at this scale the paper's effect is not shown")


def report(results, invariance, config) -> str:
    seeds = list(config.seeds)
    names = ("abs_rel", "rmse", "a1")
    lines = [f"=== results: mean ± standard deviation over seeds {', '.join(map(str, seeds))}; "
             f"{config.data.test_frames} test scenes rendered in both styles; protocol {config.protocol} "
             f"(crop {config.crop})",
             f"{'model':<17}{'test set':<17}" + "".join(f"{n:>19}" for n in names)]
    for model, label in MODELS.items():
        for test, test_label in TESTS.items():
            cells = "".join(f"{_pm([results[(s, model, test)][n] for s in seeds]):>19}" for n in names)
            lines.append(f"{label:<17}{test_label:<17}{cells}")
    shift = {m: [results[(s, m, "test_real")]["abs_rel"] - results[(s, m, "test_synthetic")]["abs_rel"]
                 for s in seeds] for m in MODELS}
    lines.append("abs_rel change under the style shift ('real' - synthetic): "
                 + ", ".join(f"{MODELS[m].strip()} {_pm(shift[m], sign=True)}" for m in MODELS))
    lines.append("=> " + shift_verdict(shift["stage2"], shift["baseline"]))
    from s2r_jax.diagnostics import style_invariance as si
    lines += ["", "=== style invariance on the same test scenes: style/scene = how far the style moves a "
              "representation relative to how far another scene does (0 = style-free, 1 = as far)",
              f"{'representation':<44}{'S2R-DepthNet':>18}{'RGB baseline':>18}"]
    rows = [si.IMAGE, f"{si.STRUCT_CODE}, encoder at init", f"{si.STRUCT_CODE}, after pretraining",
            si.STRUCTURE_MAP, si.ATTENTION_MAP, si.DEPTH_SPECIFIC, si.DEPTHNET_CENTRE, si.DEPTH]
    for row in rows:
        cells = []
        for col in ("stage2", "baseline"):
            figs = invariance.get((col, row)) or (invariance.get(("", row)) if col == "stage2" or row == si.IMAGE
                                                  else None)
            cells.append(_pm([f["style_scene"] for f in figs], 3) if figs else "")
        lines.append(f"{row:<44}{cells[0]:>18}{cells[1]:>18}")
    lines += ["=> " + line for line in invariance_verdict(invariance)]
    return "\n".join(lines)


def invariance_verdict(invariance) -> list[str]:
    """Where the style invariance is won and lost, in words: the paper's mechanism needs the
    pretrained code to be more style-free than the image, and DepthNet's input
    (attention x structure) to stay so."""
    from s2r_jax.diagnostics import style_invariance as si

    def figure(key):
        return mean_sd([f["style_scene"] for f in invariance[key]])

    image = figure(("", si.IMAGE))[0]
    init = figure(("", f"{si.STRUCT_CODE}, encoder at init"))[0]
    code = figure(("", f"{si.STRUCT_CODE}, after pretraining"))[0]
    (smap, smap_sd), (dss, dss_sd) = figure(("stage2", si.STRUCTURE_MAP)), figure(("stage2", si.DEPTH_SPECIFIC))
    gained = code < init and code < image
    out = [f"pretraining {'made' if gained else 'did NOT make'} the structure code more style-free: style/scene "
           f"{init:.3f} at init -> {code:.3f} (the image: {image:.3f})"]
    if not np.isfinite(dss_sd):
        dss_sd = 0.0
    if dss + dss_sd < image:
        out.append(f"DepthNet's input (depth-specific structure, {dss:.3f} ± {dss_sd:.3f}) is more style-free than "
                   f"the RGB baseline's (the image, {image:.3f})")
    else:
        out.append(f"but DepthNet's input (depth-specific structure, {dss:.3f} ± {dss_sd:.3f}) is no more "
                   f"style-free than the RGB baseline's (the image, {image:.3f}): the structure map "
                   f"({smap:.3f} ± {smap_sd:.3f}) and the attention map lose what the pretrained code had")
    return out


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


def _results_json(results, invariance, config) -> dict:
    return {"seeds": list(config.seeds),
            "metrics": {f"seed{s}/{m}/{t}": r for (s, m, t), r in results.items()},
            "style_invariance": [{"model": MODELS.get(col, "-"), "representation": row,
                                  "per_seed": figs} for (col, row), figs in invariance.items()]}


def run(config, workdir: str) -> dict:
    import jax

    t0 = time.time()
    _claim_workdir(config, workdir)
    # The seeds' stages compile the same programs: compile them once (and reuse them on a re-run).
    jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    console.say("=== rendering procedural road scenes (Virtual KITTI layout): training frames, "
                f"{config.data.test_frames} test scenes in both styles, style images; building them with the "
                "virtual_kitti builder")
    data = render_data(config, workdir)
    trainer = repo.load_program("train")
    ste = pretrain(config, workdir, data, trainer)
    console.say(f"\n=== per seed: stage 1 ({config.steps.stage1} steps), stage 2 ({config.steps.stage2} steps), "
                f"the RGB baseline ({config.steps.baseline} steps)")
    runs = {seed: train_seed(config, workdir, data, ste, seed, trainer) for seed in config.seeds}
    console.say("\n=== evaluating every model on both test sets, measuring style invariance")
    results = _evaluate(config, runs, data)
    invariance = _invariance(config, ste, runs, data)
    panel_path = os.path.join(workdir, "demo_panel.png")
    _panel(config, runs[config.seeds[0]], data, panel_path)
    console.say("\n" + report(results, invariance, config))
    with open(os.path.join(workdir, "demo_results.json"), "w") as f:
        json.dump(_results_json(results, invariance, config), f, indent=2)
    console.say(f"\npanel: {panel_path}; results: {os.path.join(workdir, 'demo_results.json')}; TensorBoard: "
                f"tensorboard --logdir {workdir}; logs: {os.path.join(workdir, 'log.txt')}")
    console.say(f"demo finished in {(time.time() - t0) / 60:.1f} min")
    return results


def main(argv):
    del argv
    from s2r_jax.training.loop import TrainingError
    workdir = flags.FLAGS.workdir
    # One process: its log is log.txt (console.log_file would start jax's backend, whose
    # start-up notices would reach the terminal before the logs are routed to the file).
    console.setup(os.path.join(workdir, "log.txt"), flags.FLAGS.verbose)
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
