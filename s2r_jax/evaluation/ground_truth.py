"""Ground truth for evaluating a predictions file: a built dataset's, or a file's from
`python -m s2r_jax.data.kitti_gt` (which also lists the frames, so order is checked)."""
from __future__ import annotations

import numpy as np


def _from_file(path: str):
    from s2r_jax.data.kitti_gt import load_gt
    with np.load(path) as f:
        names = [str(n) for n in f["files"]] if "files" in f.files else None
    gts = load_gt(path)
    return gts, names or [str(i) for i in range(len(gts))]


def dataset_frames(data_cfg, ground_truth="", valid_feature: str | None = None):
    """(ground-truth maps in metres, frame names) of a built dataset, in its stored order.
    `ground_truth`: a name of the dataset's spec or a `specs.GroundTruth`; `valid_feature`: a
    stored mask of valid pixels (0 outside it)."""
    import tensorflow_datasets as tfds

    from s2r_jax.data import pipeline
    from s2r_jax.data.specs import GroundTruth, dataset_spec

    gt = ground_truth if isinstance(ground_truth, GroundTruth) else dataset_spec(data_cfg.dataset).ground_truth(
        ground_truth)
    pipeline.num_examples(data_cfg)  # a clear error when the dataset is not built
    ds = pipeline.builder(data_cfg).as_dataset(split=pipeline.split_name(data_cfg), shuffle_files=False,
                                               decoders={"image": tfds.decode.SkipDecoding()})
    gts, names = [], []
    for ex in tfds.as_numpy(ds):
        depth = np.asarray(ex[gt.feature], np.float32)
        depth = depth.reshape(depth.shape[:2]) * np.float32(gt.unit_m)
        if valid_feature:
            depth = np.where(np.asarray(ex[valid_feature], bool).reshape(depth.shape), depth, np.float32(0))
        gts.append(depth)
        names.append(ex["name"].decode())
    return gts, names


def ground_truth_frames(config) -> tuple[list[np.ndarray], list[str]]:
    """(ground-truth maps in metres, frame names), in split order, for an `eval.py` config."""
    if config.gt_file:
        return _from_file(config.gt_file)
    return dataset_frames(config.data, config.ground_truth)
