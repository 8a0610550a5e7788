"""A tiny S2R-DepthNet checkpoint with random weights, as a training run writes it."""
import jax
import jax.numpy as jnp
import numpy as np

from s2r_jax.checkpoint import Checkpointer
from s2r_jax.models import S2RDepthNet


def random_variables(model_kwargs: dict, size, seed: int = 0) -> dict:
    """Random variables of `S2RDepthNet(**model_kwargs)`. Shapes from `eval_shape` and values
    from NumPy: compiling `model.init` takes ~25 s on a CPU. He-normal kernels, so that the
    depth varies with the image, and non-trivial BatchNorm statistics, so that the eval-mode
    BatchNorm (and its folding by converters) is exercised too."""
    model = S2RDepthNet(**dict(model_kwargs, dtype=jnp.float32))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *size, 3)))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = path[-1].key
        if name == "kernel":  # He-normal over the fan-in (HWIO)
            x = rng.standard_normal(s.shape) * (2.0 / np.prod(s.shape[:-1])) ** 0.5
        elif name in ("var", "scale"):
            x = 1 + 0.1 * rng.random(s.shape)
        elif name == "prelu":
            x = np.full(s.shape, 0.25)
        else:  # bias, mean
            x = 0.1 * rng.standard_normal(s.shape)
        return x.astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def write_tiny_checkpoint(directory, model_kwargs: dict, size, depth_range_m: float = 80.0) -> str:
    """A stage-2 training checkpoint (step 0) of the tiny network at input size `size`."""
    model = dict(dict(shared_prelu=True, align_corners=True, dtype="float32"), **model_kwargs)
    config = {"stage": "dsa_depth", "model": model, "use_attention": True,
              "data": {"image_size": list(size), "depth_range_m": depth_range_m}}
    with Checkpointer(directory) as c:
        c.save(0, random_variables(model_kwargs, size), meta={"written_by": "s2r_jax.train", "config": config})
    return str(directory)
