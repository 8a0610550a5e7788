"""The zero-shot suite: one model (or predictions made by any model) on every transfer dataset
that is built, each under its published protocol, mRI against a reference, and the report.

`python eval.py --config configs/zero_shot.py --config.checkpoint=DIR` runs it. The datasets
and their protocols are data (`zero_shot.DATASETS`); each is evaluated by the same
`DatasetEvaluation` as eval.py's single datasets (tf.data streaming, every device of every
host, per-frame results gathered), or from a predictions file with `metrics.evaluate`.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from s2r_jax.data.specs import GroundTruth
from s2r_jax.evaluation import metrics, prediction_files, zero_shot
from s2r_jax.evaluation.protocols import METRIC_NAMES

TABLE_METRICS = ("a1", "abs_rel", "rmse")  # delta_1, REL, RMSE: ZoeDepth's tables (the rest in metrics.json)


def data_config(name: str, config) -> dict:
    """The `data` group eval.py's pipeline reads, for zero-shot dataset `name`."""
    import ml_collections
    spec = zero_shot.get_dataset(name)
    dataset, _, tfds_config = spec.tfds_name.partition("/")
    return ml_collections.ConfigDict(dict(dataset=dataset, tfds_config=tfds_config, data_dir=config.data_dir,
                                          split=spec.split, num_examples=config.num_examples))


def ground_truth(name: str) -> GroundTruth:
    spec = zero_shot.get_dataset(name)
    return GroundTruth(spec.depth_feature, spec.depth_scale, sparse=False, png16=False)


def is_built(data_cfg) -> bool:
    from s2r_jax.data import pipeline
    try:
        return pipeline.builder(data_cfg).is_prepared()
    except Exception:  # noqa: BLE001 - an unknown or unreadable dataset is simply not built
        return False


def select_datasets(config) -> list[str]:
    """The datasets to evaluate: those asked for (each must be built: an error names the ones
    that are not), or every one of `zero_shot.DATASETS` built in `config.data_dir`."""
    if config.datasets:
        names = list(config.datasets)
        for name in names:
            zero_shot.get_dataset(name)  # a clear error for an unknown name
        missing = [n for n in names if not is_built(data_config(n, config))]
        if missing:
            raise FileNotFoundError(f"zero-shot dataset(s) {missing} are not built in {config.data_dir or 'TFDS default'}"
                                    "; build them with python -m s2r_jax.data.build (docs/zero_shot.md)")
        return names
    names = [n for n in zero_shot.DATASETS if is_built(data_config(n, config))]
    if not names:
        raise FileNotFoundError(f"no zero-shot dataset is built in {config.data_dir or 'TFDS default'} "
                                f"(known: {', '.join(zero_shot.DATASETS)}); see docs/zero_shot.md")
    return names


def evaluate_dataset(name: str, config, evaluate_model: Callable | None) -> dict:
    """{'metrics', 'per_image', 'names', 'protocol'} of one dataset, from the model or a predictions file."""
    spec = zero_shot.get_dataset(name)
    protocol = spec.protocol(config.protocol)
    data = data_config(name, config)
    valid = spec.valid_feature if spec.uses_mask(config.protocol) else None
    if evaluate_model is not None:
        mean, per_image, names = evaluate_model(data, ground_truth(name), protocol, valid)
    else:
        from s2r_jax.evaluation.ground_truth import dataset_frames
        gts, names = dataset_frames(data, ground_truth(name), valid)
        path = os.path.join(config.predictions, f"{name}.npz")
        if not os.path.exists(path) and os.path.isdir(os.path.join(config.predictions, name)):
            path = os.path.join(config.predictions, name)
        preds = prediction_files.load_predictions(path)
        mean, per_image = metrics.evaluate(gts, preds, protocol, progress=False)
    return {"metrics": mean, "per_image": per_image, "names": names, "protocol": protocol}


def with_mri(results: dict, reference: str) -> dict:
    """Each dataset's mRI_theta against `reference` (a published method or a metrics file), and
    mRI_D per metric over the datasets the reference covers."""
    out = {"reference": reference, "per_dataset": {}, "over_datasets": {}}
    if not reference:
        return out
    refs = {}
    for name, r in results.items():
        try:
            refs[name] = zero_shot.reference_metrics(reference, name)
        except ValueError as e:
            out["per_dataset"][name] = {"error": str(e)}
            continue
        out["per_dataset"][name] = {"mri": zero_shot.mean_relative_improvement(r["metrics"], refs[name]),
                                    "reference_metrics": {m: refs[name][m] for m in zero_shot.MRI_METRICS}}
    if refs:
        covered = {n: results[n]["metrics"] for n in refs}
        out["over_datasets"] = {m: zero_shot.mean_relative_improvement_over_datasets(covered, refs, m)
                                for m in zero_shot.MRI_METRICS}
    return out


def format_table(results: dict, mri: dict, protocol_key: str) -> str:
    """One line per dataset: delta_1, REL, RMSE, frames and mRI_theta."""
    head = f"{'dataset':<16}{'protocol':<24}" + "".join(f"{m:>9}" for m in TABLE_METRICS) + f"{'frames':>8}{'mRI':>9}"
    lines = [f"zero-shot transfer, protocol '{protocol_key}'" + (f", mRI vs {mri['reference']}" if mri["reference"]
                                                                else ""), head]
    for name, r in results.items():
        m = r["metrics"]
        row = mri["per_dataset"].get(name, {})
        lines.append(f"{name:<16}{r['protocol'].name:<24}" + "".join(f"{m[k]:>9.4f}" for k in TABLE_METRICS)
                     + f"{int(m['frames']):>8}" + (f"{row['mri']:>+9.3f}" if "mri" in row else f"{'-':>9}"))
    if mri["over_datasets"]:
        lines.append("mRI over datasets: " + ", ".join(f"{k} {v:+.3f}" for k, v in mri["over_datasets"].items()))
    return "\n".join(lines)


def markdown_report(results: dict, mri: dict, protocol_key: str, source: dict) -> str:
    lines = ["# Zero-shot transfer", "", f"Model: `{source.get('checkpoint') or source.get('predictions')}`. "
             f"Protocol set: `{protocol_key}`." + (f" mRI_θ against {mri['reference']}"
                                                   f"{' (' + zero_shot.PUBLISHED_SOURCE + ')' if not os.path.isfile(mri['reference']) else ''}."
                                                   if mri["reference"] else ""), "",
             "| dataset | δ1 ↑ | REL ↓ | RMSE ↓ | frames | mRI_θ ↑ |", "| --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        m, row = r["metrics"], mri["per_dataset"].get(name, {})
        lines.append(f"| {zero_shot.get_dataset(name).title} | {m['a1']:.3f} | {m['abs_rel']:.3f} | {m['rmse']:.3f} "
                     f"| {int(m['frames'])} | {row['mri']:+.3f} |" if "mri" in row else
                     f"| {zero_shot.get_dataset(name).title} | {m['a1']:.3f} | {m['abs_rel']:.3f} | {m['rmse']:.3f} "
                     f"| {int(m['frames'])} | – |")
    lines += ["", "## Protocols", ""]
    lines += [f"- **{zero_shot.get_dataset(n).title}** (`{r['protocol'].name}`): {r['protocol'].description}"
              for n, r in results.items()]
    lines += ["", f"All metrics ({', '.join(METRIC_NAMES)}) are in metrics.json; per-frame rows in "
              "per_image_<dataset>.csv."]
    return "\n".join(lines) + "\n"


def bar_chart(path: str, results: dict, mri: dict) -> None:
    """A PNG bar chart: delta_1 and REL per dataset (ours; the reference's as a thin outline)."""
    from PIL import Image, ImageDraw
    names = list(results)
    panel_w, bar_w, height, top, bottom = 90 * max(len(names), 1), 26, 320, 30, 70
    img = Image.new("RGB", (2 * panel_w + 60, height), "white")
    draw = ImageDraw.Draw(img)
    for p, (metric, label, colour) in enumerate((("a1", "delta_1 (higher is better)", (47, 110, 186)),
                                                 ("abs_rel", "REL (lower is better)", (214, 96, 39)))):
        x0 = 30 + p * (panel_w + 30)
        values = [results[n]["metrics"][metric] for n in names]
        refs = [mri["per_dataset"].get(n, {}).get("reference_metrics", {}).get(metric) for n in names]
        vmax = max([v for v in values + refs if v is not None] + [1e-6])
        draw.text((x0, 8), label, fill="black")
        draw.line((x0, height - bottom, x0 + panel_w, height - bottom), fill="black")
        for i, (n, v, r) in enumerate(zip(names, values, refs)):
            cx = x0 + 45 + 90 * i
            scale = (height - top - bottom) / vmax
            draw.rectangle((cx - bar_w // 2, height - bottom - v * scale, cx + bar_w // 2, height - bottom), fill=colour)
            if r is not None:
                draw.rectangle((cx - bar_w // 2 - 4, height - bottom - r * scale, cx + bar_w // 2 + 4,
                                height - bottom), outline="black")
            draw.text((cx - 40, height - bottom + 6), n[:14], fill="black")
            draw.text((cx - 16, height - bottom - v * scale - 14), f"{v:.3f}", fill="black")
    tmp = path + ".partial.png"
    img.save(tmp)
    os.replace(tmp, path)


def write_results(workdir: str, results: dict, mri: dict, protocol_key: str, source: dict) -> None:
    """metrics.json ({'datasets': {name: {'protocol', 'metrics'}}, 'mri', 'source'}), report.md,
    chart.png and per_image_<dataset>.csv."""
    from s2r_jax.evaluation.report import write_per_image, write_text_atomically
    os.makedirs(workdir, exist_ok=True)
    payload = {"protocol_set": protocol_key, "source": source, "mri": mri,
               "datasets": {n: {"protocol": r["protocol"].to_dict(), "metrics": r["metrics"]}
                            for n, r in results.items()}}
    write_text_atomically(os.path.join(workdir, "metrics.json"), json.dumps(payload, indent=2, default=float))
    write_text_atomically(os.path.join(workdir, "report.md"), markdown_report(results, mri, protocol_key, source))
    bar_chart(os.path.join(workdir, "chart.png"), results, mri)
    for name, r in results.items():
        write_per_image(os.path.join(workdir, f"per_image_{name}.csv"), r["per_image"], r["names"])

