"""A model evaluated over a dataset split, on a mesh of one or many hosts.

Every evaluation batch is a global batch: each host reads its rows of it (the same
rows-of-a-global-batch scheme as training), the jitted model predicts the whole batch
over the mesh, and each host takes back its own rows. For each of its frames the host
brings the prediction to the ground truth's size with the official align_corners resize
(in the prediction's dtype, as the official float32 test does), maps it to metres as the
official test does ((x + 1) / 2 * range) and computes the frame's metrics. The per-frame
metrics are then gathered to every host, so the means do not depend on how many hosts
evaluated (tested: 2 processes equal 1).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from s2r_jax import console, distributed
from s2r_jax.data import batching
from s2r_jax.evaluation import metrics
from s2r_jax.evaluation.crops import image_crop, input_window
from s2r_jax.evaluation.protocols import METRIC_NAMES, Protocol
from s2r_jax.evaluation.resize import upsample_to

_FIELDS = METRIC_NAMES + ("scale", "valid_pixels")
_NAME_BYTES = 256


@dataclasses.dataclass
class EvalResult:
    mean: dict              # the metric means, 'frames', 'frames_skipped' (and scale statistics)
    per_image: list         # per frame, in split order: a metrics dict, or None without valid ground truth
    names: list             # per frame, in split order
    local_predictions: list  # (index, name, metres at ground-truth size) of this host's frames, if kept


class DatasetEvaluation:
    """Evaluates `predict(variables, images) -> finest depth (N, H, W, 1) in [-1, 1]` on a dataset split.

    `data_cfg`: {dataset, tfds_config, data_dir, split, num_examples}; `ground_truth`: a name
    of the dataset's spec or a `specs.GroundTruth`, with `valid_feature` a stored validity
    mask; `image_size` and `depth_range_m`: the model's input size and the metres of a tanh
    output of +1; `dtype`: the dtype of the images fed to the model (float64 for exactness
    checks). The model is shown the part of each image the protocol's crop names
    (`crops.image_crop`: the KB crop for ZoeDepth's KITTI protocol).
    """

    def __init__(self, data_cfg, ground_truth, protocol: Protocol, mesh, *, batch_size: int,
                 image_size, depth_range_m: float, dtype: str = "float32", progress: bool = True,
                 valid_feature: str | None = None):
        batching.check_divisible(batch_size, mesh, "the evaluation batch size")
        self.data_cfg, self.ground_truth, self.protocol, self.mesh = data_cfg, ground_truth, protocol, mesh
        self.batch_size, self.image_size = batch_size, tuple(int(s) for s in image_size)
        self.depth_range_m, self.progress, self.valid_feature = float(depth_range_m), progress, valid_feature
        self.input_dtype = "float64" if dtype == "float64" else "float32"
        self.image_crop = image_crop(protocol.crop)

    def _predictor(self, predict: Callable):
        flip = self.protocol.flip_tta

        def finest(variables, images):
            out = predict(variables, images)
            if flip:  # mean with the prediction of the mirrored image, mirrored back
                out = (out + predict(variables, images[:, :, ::-1])[:, :, ::-1]) / 2
            return out

        return distributed.SyncedJit(jax.jit(finest, out_shardings=batching.batch_sharding(self.mesh)), "evaluation")

    def _frame(self, raw: np.ndarray, gt: np.ndarray, index: int):
        """One host-side frame: (metrics or None, metres at the evaluated size)."""
        raw = raw[..., 0]
        if raw.dtype != np.float64:
            raw = raw.astype(np.float32)  # bf16 outputs are resized in float32
        if self.protocol.crop == "make3d_c1":
            up = raw  # its protocol resizes by nearest neighbour (metrics.evaluate_frame); metres commute with it
        else:
            top, bottom, left, right = input_window(gt.shape, self.protocol.crop)
            up = upsample_to(raw, (bottom - top, right - left))
        metres = (up + 1.0) / 2.0 * up.dtype.type(self.depth_range_m)
        result = metrics.evaluate_frame(gt, metres, self.protocol, index=index,
                                        pred_is_kb_cropped=self.image_crop == "kb")
        return result, metres

    def run(self, predict: Callable, variables, keep_predictions: bool = False) -> EvalResult:
        """Predict and evaluate every frame; a collective: every host must call it."""
        import tensorflow_datasets as tfds

        from s2r_jax.data import pipeline

        total = pipeline.num_examples(self.data_cfg)
        rows = batching.host_rows(self.mesh, self.batch_size)
        dataset = pipeline.eval_dataset(self.data_cfg, ground_truth=self.ground_truth, image_size=self.image_size,
                                        batch_size=self.batch_size, rows=rows, image_crop=self.image_crop,
                                        dtype=self.input_dtype, valid_feature=self.valid_feature)
        finest = self._predictor(predict)
        table = np.full((total, len(_FIELDS)), np.nan)
        present = np.zeros(total, bool)
        names = np.zeros((total, _NAME_BYTES), np.uint8)
        kept, done = [], 0
        for batch in tfds.as_numpy(dataset):
            images = batching.global_batch({"image": batch["image"]}, self.mesh, self.batch_size)["image"]
            raw = batching.local_rows(finest(variables, images))
            for i in np.flatnonzero(batch["real"]):
                index = int(batch["index"][i])
                h, w = batch["gt_shape"][i]
                result, metres = self._frame(raw[i], batch["gt"][i, :h, :w], index)
                name = batch["name"][i]
                names[index, :min(len(name), _NAME_BYTES)] = np.frombuffer(name[:_NAME_BYTES], np.uint8)
                if result is not None:
                    table[index] = [result[k] for k in _FIELDS]
                    present[index] = True
                if keep_predictions:
                    kept.append((index, name.decode(), metres.astype(np.float32)))
            done += self.batch_size
            if self.progress and (done // self.batch_size) % 10 == 0:
                console.say(f"[eval] {min(done, total)}/{total} frames")
        table, present, names = _gather_frames(table, present, names)
        per_image = [dict(zip(_FIELDS, row)) if ok else None for row, ok in zip(table, present)]
        for d in per_image:
            if d is not None:
                d["valid_pixels"] = int(d["valid_pixels"])
        name_list = [bytes(n).rstrip(b"\0").decode() for n in names]
        return EvalResult(metrics.summarise(per_image, self.protocol), per_image, name_list, kept)


def _gather_frames(table: np.ndarray, present: np.ndarray, names: np.ndarray):
    """Combine the hosts' per-frame rows: each frame was evaluated by exactly one host."""
    if not distributed.multihost():
        return table, present, names
    from jax.experimental import multihost_utils
    tables, presents, all_names = (np.asarray(multihost_utils.process_allgather(x)) for x in (table, present, names))
    owner = np.argmax(presents, axis=0)  # the host that had ground truth for the frame (0 when none had)
    frames = np.arange(table.shape[0])
    named = np.argmax(all_names.any(axis=2), axis=0)  # the host that read the frame
    return tables[owner, frames], presents.any(axis=0), all_names[named, frames]
