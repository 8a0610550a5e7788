"""Import tensorflow for the data modules only, on the CPU only.

tf.data feeds the accelerators; TensorFlow itself must not take the GPU memory
JAX needs, so every data module imports tensorflow through here.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")

__all__ = ["tf"]
