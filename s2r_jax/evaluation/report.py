"""What an evaluation prints and writes: the table, metrics.json, per_image.csv. NumPy only."""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Dict, Union

from s2r_jax.evaluation.protocols import METRIC_NAMES, Protocol, as_protocol


def format_table(mean: Dict[str, float], protocol: Union[Protocol, str]) -> str:
    """A terminal table: the protocol's settings, then one row of metric means."""
    protocol = as_protocol(protocol)
    lines = [protocol.summary()]
    if "frames" in mean:
        lines.append(f"frames: {int(mean['frames'])} evaluated, "
                     f"{int(mean.get('frames_skipped', 0))} without valid ground truth")
    if "scale_median" in mean:
        lines.append(f"median scale: {mean['scale_median']:.4f} (std {mean.get('scale_std', float('nan')):.4f})")
    names = [k for k in METRIC_NAMES if k in mean]
    lines.append(" ".join(f"{k:>9}" for k in names))
    lines.append(" ".join(f"{mean[k]:9.4f}" for k in names))
    return "\n".join(lines)


def write_results(workdir: str, protocol: Protocol, mean: Dict[str, float], per_image, names, source: dict) -> None:
    """metrics.json (the protocol, the means, where predictions and ground truth came from) and
    per_image.csv (one row per frame, empty where a frame had no valid ground truth)."""
    os.makedirs(workdir, exist_ok=True)
    result = {"protocol": protocol.to_dict(), "metrics": mean, "source": source}
    write_text_atomically(os.path.join(workdir, "metrics.json"), json.dumps(result, indent=2))
    write_per_image(os.path.join(workdir, "per_image.csv"), per_image, names)


def write_per_image(path: str, per_image, names) -> None:
    """One CSV row per frame: index, name, the metrics and the median scale."""
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["index", "name", *METRIC_NAMES, "scale"])
    for i, (name, m) in enumerate(zip(names, per_image)):
        values = [m.get(k, "") for k in METRIC_NAMES] + [m.get("scale", "")] if m else [""] * (len(METRIC_NAMES) + 1)
        writer.writerow([i, name, *values])
    write_text_atomically(path, rows.getvalue())


def write_text_atomically(path: str, text: str) -> None:
    with open(path + ".partial", "w", newline="") as f:
        f.write(text)
    os.replace(path + ".partial", path)
