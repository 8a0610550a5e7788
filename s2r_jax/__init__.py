"""s2r_jax: S2R-DepthNet (Chen et al., CVPR 2021) in JAX/Flax."""
__version__ = "0.1.0"
