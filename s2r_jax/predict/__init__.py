"""Depth for your own images: `python -m s2r_jax.predict` (see `__main__` for the command).

`inputs` (which files, their output names), `intrinsics` (point-cloud cameras),
`writers` (PNG, 16-bit PNG, .npy, PLY) and `predictor` (the model with the official
preprocessing, batched prediction while threads read and write files).
"""
from s2r_jax.predict.inputs import IMAGE_EXTENSIONS, expand_inputs, output_names
from s2r_jax.predict.intrinsics import KITTI_IMAGE_SIZE, KITTI_INTRINSICS, Intrinsics, back_project, \
    intrinsics_from_flags
from s2r_jax.predict.predictor import PredictError, Predictor, ZoeDepthPredictor, load_predictor, predict_paths
from s2r_jax.predict.writers import colourise_depth, depth_to_png16, write_outputs, write_ply

__all__ = ["IMAGE_EXTENSIONS", "KITTI_IMAGE_SIZE", "KITTI_INTRINSICS", "Intrinsics", "PredictError", "Predictor",
           "back_project", "colourise_depth", "depth_to_png16", "expand_inputs", "intrinsics_from_flags",
           "ZoeDepthPredictor", "load_predictor", "output_names", "predict_paths", "write_outputs", "write_ply"]
