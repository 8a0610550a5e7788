"""s2r_jax: S2R-DepthNet (Chen et al., CVPR 2021) in JAX/Flax."""
__version__ = "0.1.0"

import os as _os

# tensorflow (tf.data, and clu's summary writers) must not print its C++ start-up notices
# over our console; set before anything imports it. An explicit setting wins. (oneDNN's
# options change only TF's own matmuls and convolutions, which s2r_jax never runs in TF;
# turning them off is what silences TF 2.21's start-up notice.)
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
