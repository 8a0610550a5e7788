"""The benchmark scripts' own logic (their timings are never tested: docs/benchmarks.md)."""
from collections import Counter

import jax
import jax.numpy as jnp

from s2r_jax.benchmarks import layers as layer_profile
from s2r_jax.models import S2RDepthNet


def test_layer_profile_finds_every_convolution_of_the_network():
    """The per-layer profile must enumerate every convolution of the network once, as the
    official network states it: its kernels are exactly the model's conv kernels, and the
    four DepthNet transposed convolutions appear in their input-dilated form."""
    convs = layer_profile.network_convolutions(96, 160)
    found = Counter()
    for key, c in convs.items():
        found[key[1]] += c["count"]
    image = jax.ShapeDtypeStruct((1, 96, 160, 3), jnp.float32)
    variables = jax.eval_shape(S2RDepthNet().init, jax.random.key(0), image)
    kernels = Counter(tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
                      if path[-1].key == "kernel")
    assert found == kernels
    assert sum(found.values()) == 84
    transposed = [c["module"] for key, c in convs.items() if key[4] != (1, 1)]
    assert sorted(transposed) == ["depth_net/center_up/deconv", "depth_net/deconv2/deconv",
                                  "depth_net/deconv3/deconv", "depth_net/deconv4/deconv"]
