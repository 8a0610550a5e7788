"""`eval.py`: predictions (from a checkpoint, or a file made by any model) against
ground truth (the dataset's, or a file from `s2r_jax.data.kitti_gt`) under a protocol.

Predictions are made at the model's size and, as the official test does, upsampled to
each ground truth's size with bilinear align_corners=True before being mapped to metres
((x + 1) / 2 * max_depth). Frames are matched by order: the split's list order.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys

import numpy as np

from s2r_jax.evaluation import metrics


def protocol_from_config(config) -> metrics.Protocol:
    overrides = {k: config[k] for k in ("crop", "median_scaling") if config[k]}
    if config.min_depth:
        overrides["min_depth"] = config.min_depth
    if config.max_depth_eval:
        overrides["max_depth"] = config.max_depth_eval
    if config.flip_tta is not None:
        overrides["flip_tta"] = bool(config.flip_tta)
    return metrics.get_protocol(config.protocol, **overrides)


def _natural_key(name: str):
    """'pred_2' before 'pred_10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def load_predictions(path: str) -> list[np.ndarray]:
    """An .npz of depth maps in metres: one stacked (N, H, W) array, or one array per frame
    (in the natural order of their keys: pred_0, pred_1, ..., pred_10)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions file {path}: no such file")
    with np.load(path, allow_pickle=False) as f:
        keys = [k for k in f.files if k not in ("files", "value", "names")]
        if len(keys) == 1 and f[keys[0]].ndim == 3:
            return list(f[keys[0]])
        return [f[k] for k in sorted(keys, key=_natural_key)]


def _gt_from_file(path: str):
    from s2r_jax.data.kitti_gt import load_gt
    with np.load(path) as f:
        names = [str(n) for n in f["files"]] if "files" in f.files else None
    return load_gt(path), names


def _progress(done: int, total: int | None):
    print(f"[eval] predicted {done}" + (f"/{total}" if total else "") + " frames", file=sys.stderr, flush=True)


def _dataset_frames(config, progress: bool, model=None, flip_tta: bool = False):
    """Ground truth (and model predictions in metres at ground-truth size) from the dataset."""
    import tensorflow_datasets as tfds

    from s2r_jax.data import pipeline

    data = config.data.copy_and_resolve_references()
    if model is not None:
        with data.unlocked():
            data.image_size = model.image_size
    total = pipeline.num_examples(data)
    gts, names, preds = [], [], []
    for batch in tfds.as_numpy(pipeline.eval_dataset(data, gt=config.gt, batch_size=config.batch_size)):
        out = model.predict(batch["image"], flip_tta) if model is not None else None
        for i, (h, w) in enumerate(batch["gt_shape"]):
            gts.append(batch["gt"][i, :h, :w])
            names.append(batch["name"][i].decode())
            if out is not None:
                up = metrics.upsample_to(out[i].astype(np.float64), (h, w))
                preds.append((up + 1.0) / 2.0 * model.spec.max_depth)
        if progress and (len(gts) % (10 * config.batch_size) < config.batch_size or len(gts) == total):
            _progress(len(gts), total)
    return gts, names, preds


def run(config, workdir: str | None = None) -> dict:
    """Evaluate as configured; print the table; with `workdir`, write metrics.json and
    per_image.csv (and predictions.npz with config.save_predictions). Returns the means."""
    protocol = protocol_from_config(config)
    if bool(config.checkpoint) == bool(config.predictions):
        raise ValueError("give exactly one of config.checkpoint (a model) and config.predictions (a file)")
    model = None
    if config.checkpoint:
        from s2r_jax.model_loader import load_model
        model = load_model(config.checkpoint, max_depth=config.max_depth or None,
                           image_size=tuple(config.image_size) or None)
    if config.gt_file:
        gts, names = _gt_from_file(config.gt_file)
        if model is not None:
            _, data_names, preds = _dataset_frames(config, True, model, protocol.flip_tta)
            if names is not None and data_names != names:
                first = next(i for i, (a, b) in enumerate(zip(data_names, names)) if a != b) \
                    if len(data_names) == len(names) else min(len(data_names), len(names))
                raise ValueError(f"{config.gt_file} does not list the dataset's frames in its order "
                                 f"({len(names)} vs {len(data_names)} frames; first difference at frame {first})")
    else:
        gts, names, preds = _dataset_frames(config, model is not None, model, protocol.flip_tta)
    if config.predictions:
        preds = load_predictions(config.predictions)
    names = names or [str(i) for i in range(len(gts))]
    mean, per_image = metrics.evaluate(gts, preds, protocol)
    print(metrics.format_table(mean, protocol))
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        result = {"protocol": protocol.to_dict(), "metrics": mean,
                  "source": {"checkpoint": config.checkpoint, "predictions": config.predictions,
                             "gt_file": config.gt_file, "dataset": config.data.dataset, "split": config.data.split,
                             "gt": config.gt, "max_depth": model.spec.max_depth if model else None,
                             "image_size": list(model.image_size) if model else None}}
        with open(os.path.join(workdir, "metrics.json"), "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.join(workdir, "per_image.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "name", *metrics.METRIC_NAMES, "scale"])
            for i, (name, m) in enumerate(zip(names, per_image)):
                row = [m.get(k, "") for k in metrics.METRIC_NAMES] + [m.get("scale", "")] if m else [""] * 10
                writer.writerow([i, name, *row])
        if config.save_predictions and preds is not None:
            np.savez_compressed(os.path.join(workdir, "predictions.npz"), names=np.array(names),
                                **{f"pred_{i:05d}": p.astype(np.float32) for i, p in enumerate(preds)})
        print(f"wrote {os.path.join(workdir, 'metrics.json')} and per_image.csv")
    return mean
