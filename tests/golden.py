"""The parity fixtures: official outputs (golden_s0_96x160.npz) and the weights behind them.

The official outputs in `fixtures/` were computed by the official PyTorch code from
deterministic stand-in weights; this regenerates those weights by the recipe the
reference documents (shared/reference/README.md): each tensor from its own NumPy
generator seeded by the CRC32 of its key, drawn according to its kind, and keys
that alias DepthNet's one PReLU take the value of the key they alias.
"""
import json
import pathlib
import zlib

import numpy as np

FIXTURES = pathlib.Path(__file__).with_name("fixtures")
LAYOUT = json.loads((FIXTURES / "state_dict_keys.json").read_text())
GOLDEN = dict(np.load(FIXTURES / "golden_s0_96x160.npz"))


def _tensor(name: str, shape: tuple, kind: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if leaf in ("running_mean", "bias"):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "PReLU":
        return (0.25 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    if kind.startswith(("BatchNorm", "InstanceNorm")):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    # Conv2d (out, in, kh, kw): fan-in in*kh*kw; ConvTranspose2d (in, out, kh, kw) at
    # stride 2: each output sums in*kh*kw/4 terms.
    fan_in = shape[0] * shape[2] * shape[3] / 4 if kind == "ConvTranspose2d" else float(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def state_dict(network: str) -> dict:
    """The stand-in state dict of one official network, {key: array}."""
    keys = LAYOUT[network]
    out = {}
    for name, spec in keys.items():
        src = spec.get("alias_of", name)
        out[name] = _tensor(src, tuple(keys[src]["shape"]), keys[src]["kind"])
    return out


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (0, 2, 3, 1))
