"""The official initialisation of each module, as the official training code does it.

- DepthNet: `utils.init_weights(net, 'normal')`: every conv and transposed-conv kernel
  N(0, 0.02), their biases 0, BatchNorm scales N(1, 0.02), shifts 0; PReLU 0.25.
- DSA trunk (DRN-D-22): N(0, sqrt(2 / (kh * kw * out_channels))), BatchNorm 1 / 0 —
  the DRN constructor's rule (overwritten when the ImageNet weights are loaded).
- Everything else: PyTorch's defaults — conv kernels and biases U(-b, b) with
  b = 1 / sqrt(fan_in), BatchNorm 1 / 0.

Flax's per-parameter initialisers compile one RNG computation per parameter, which
takes XLA ~10 s on CPU for this network. Here XLA draws a single normal and a single
uniform stream (a program that compiles in well under a second) and NumPy cuts, scales and
shifts every variable from them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PRELU_INIT = 0.25


def _rule(path: tuple[str, ...], leaf: str, module: dict, collection: str):
    """(kind, scale, offset) for one variable: value = offset + scale * draw(kind).

    `module` is the variable's module (its sibling variables): a module with a
    'scale' is a BatchNorm, one with a 'kernel' a convolution.
    """
    top = path[0]
    if collection == "batch_stats":
        return ("const", 0.0, 0.0 if leaf == "mean" else 1.0)
    if leaf.startswith("prelu"):
        return ("const", 0.0, PRELU_INIT)
    if "scale" in module:  # BatchNorm
        if leaf == "scale" and top == "depth_net":
            return ("normal", 0.02, 1.0)
        return ("const", 0.0, 1.0 if leaf == "scale" else 0.0)
    kh, kw, cin, cout = module["kernel"].shape
    if top == "depth_net":
        return ("normal", 0.02, 0.0) if leaf == "kernel" else ("const", 0.0, 0.0)
    if top == "dsa" and path[1] == "trunk" and leaf == "kernel":
        return ("normal", float(np.sqrt(2.0 / (kh * kw * cout))), 0.0)
    return ("uniform", float(1.0 / np.sqrt(kh * kw * cin)), 0.0)


def _flatten(tree, prefix=()):
    """(path, module dict) for every module holding arrays."""
    leaves = {k: v for k, v in tree.items() if not isinstance(v, dict)}
    if leaves:
        yield prefix, leaves
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + (k,))


def _munit_rule(path: tuple[str, ...], leaf: str, module: dict, collection: str):
    """MUNIT's init for structure-encoder pretraining: generator 'kaiming' (N(0, sqrt(2 / fan_in))),
    discriminators 'gaussian' (N(0, 0.02)), biases 0, LayerNorm gamma U(0, 1) and beta 0."""
    if leaf.endswith("_ln_gamma"):
        return ("uniform", 0.5, 0.5)
    if leaf.endswith("_ln_beta") or leaf == "bias":
        return ("const", 0.0, 0.0)
    if path[0] == "discriminators":
        return ("normal", 0.02, 0.0)
    fan_in = int(np.prod(module["kernel"].shape[:-1]))
    return ("normal", float(np.sqrt(2.0 / fan_in)), 0.0)


def official_init(abstract_variables: dict, rng: jax.Array) -> dict:
    """Concrete variables for `abstract_variables` (e.g. from `jax.eval_shape(model.init, ...)`)
    with the official S2R-DepthNet rules."""
    return draw_init(abstract_variables, rng, _rule)


def munit_init(abstract_variables: dict, rng: jax.Array) -> dict:
    """Concrete variables for the pretraining networks, with MUNIT's rules."""
    return draw_init(abstract_variables, rng, _munit_rule)


def draw_init(abstract_variables: dict, rng: jax.Array, rule) -> dict:
    """Every variable as `offset + scale * draw`, all draws from one normal and one uniform
    stream; NumPy float32 arrays."""
    specs = []
    for col in ("params", "batch_stats"):
        for path, module in _flatten(abstract_variables.get(col, {})):
            for leaf, value in module.items():
                kind, scale, offset = rule(path, leaf, module, col)
                specs.append((col, path + (leaf,), tuple(value.shape), kind, scale, offset))
    sizes = {k: sum(int(np.prod(s[2])) for s in specs if s[3] == k) for k in ("normal", "uniform")}

    # Only the two streams are drawn in XLA; the slicing, scaling and shifting happen in NumPy.
    # One XLA program holding every variable's slice as an output took 3-14 s to compile on
    # CPU (one per network shape, in every process). XLA fused `offset + scale * x` into one
    # multiply-add (rounded once); float64 holds the float32 product exactly, so rounding its
    # sum to float32 gives the same bits (checked on every stage's network).
    @jax.jit
    def streams(rng):
        kn, ku = jax.random.split(rng)
        return (jax.random.normal(kn, (sizes["normal"],), jnp.float32),
                jax.random.uniform(ku, (sizes["uniform"],), jnp.float32, -1.0, 1.0))

    drawn = dict(zip(("normal", "uniform"), (np.asarray(x) for x in streams(rng))))
    taken = {"normal": 0, "uniform": 0}
    values = []
    for _, _, shape, kind, scale, offset in specs:
        if kind == "const":
            values.append(np.full(shape, offset, np.float32))
            continue
        n, start = int(np.prod(shape)), taken[kind]
        taken[kind] += n
        x = drawn[kind][start:start + n].reshape(shape).astype(np.float64)
        values.append((np.float64(np.float32(offset)) + np.float64(np.float32(scale)) * x).astype(np.float32))
    variables: dict = {}
    for (col, path, *_), value in zip(specs, values):
        node = variables.setdefault(col, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    return variables
