"""The ZoeDepth parity fixtures (fixtures/zoedepth/, README there) and the weights behind them.

`fixtures/zoedepth/golden_weights.py` is the reference's data-generation code, as given:
every stand-in tensor is seeded by its key's name, so the MiDaS backbone (`core.*`) is
the same array in all three models and is generated once per session here (~8 s).
"""
import functools
import importlib.util
import pathlib

import jax
import numpy as np

from s2r_jax.models import build_zoedepth
from s2r_jax.zoedepth_weights import export_zoedepth, flax_shapes, import_zoedepth

FIXTURES = pathlib.Path(__file__).with_name("fixtures") / "zoedepth"
GOLDEN = dict(np.load(FIXTURES / "golden_96x128.npz"))
INFER = dict(np.load(FIXTURES / "infer_golden_n.npz"))
GOLDEN_SIZE = (96, 128)  # the goldens' img_size: the official models were built at 96x128
MIDAS_KEYS = ("out_conv", "l4_rn", "r4", "r3", "r2", "r1")

_spec = importlib.util.spec_from_file_location("zoedepth_golden_weights", FIXTURES / "golden_weights.py")
reference_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_weights)
LAYOUT = reference_weights.KEYS  # {'zoed_n' | 'zoed_k' | 'zoed_nk': {key: spec}}

# A model of the official layout small enough for behaviour tests (all sizes are fields).
TINY = dict(img_size=(64, 64), embed_dim=32, depth=2, num_heads=2, taps=(0, 0, 1, 1), pretrain_grid=(3, 3),
            reassemble_features=(8, 16, 16, 32), features=16, midas_out_features=8, bin_embedding_dim=16)


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (0, 2, 3, 1))


def nchw(a) -> np.ndarray:
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


@functools.lru_cache(maxsize=None)
def _backbone() -> dict:
    keys = {k: s for k, s in LAYOUT["zoed_n"].items() if k.startswith("core.")}
    return reference_weights.golden_state_dict(keys)


def state_dict(kind: str, heads_only: bool = False) -> dict:
    """The stand-in state dict of ZoeD-`kind`; with `heads_only`, the backbone as zeros of its
    shape (for tests that feed the golden MiDaS features to the heads)."""
    keys = LAYOUT[f"zoed_{kind}"]
    sd = reference_weights.golden_state_dict({k: s for k, s in keys.items() if not k.startswith("core.")})
    if heads_only:
        sd.update({k: np.zeros(s["shape"], s["dtype"]) for k, s in keys.items() if k.startswith("core.")})
    else:
        sd.update(_backbone())
    return sd


@functools.lru_cache(maxsize=None)
def official_variables(kind: str, heads_only: bool = False) -> dict:
    """Our variables for the stand-in weights, through the importer (`midas` dropped with heads_only)."""
    variables = import_zoedepth(state_dict(kind, heads_only), kind)
    if heads_only:
        variables["params"].pop("midas")
    return jax.device_put(variables)


@functools.lru_cache(maxsize=None)
def heads_fn(kind: str, **overrides):
    """The model's jitted `heads` (everything after MiDaS) at the goldens' size; cached, so
    tests share its compilations."""
    model = build_zoedepth(kind, img_size=GOLDEN_SIZE, **overrides)
    return jax.jit(functools.partial(model.apply, method="heads"))


def golden_heads(kind: str, variables=None, **overrides) -> dict:
    """The model's outputs from the official MiDaS features, as NumPy."""
    variables = official_variables(kind, heads_only=True) if variables is None else variables
    return jax.tree.map(np.asarray, heads_fn(kind, **overrides)(variables, golden_midas()))


def golden_midas() -> dict:
    """The official MiDaS outputs (the same for the three models), as `MidasDPT` returns them."""
    out = {k: nhwc(GOLDEN[f"feature_{k}"]) for k in MIDAS_KEYS}
    out["rel_depth"] = GOLDEN["rel_depth"]
    return out


def random_variables(shapes, seed: int = 0) -> dict:
    """NumPy draws on abstract parameter shapes (a Flax init of a model with ~200 random
    initialisers compiles slowly): kernels scaled by 1/sqrt(fan-in), norm scales near 1."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)
        if name == "scale":
            return (1 + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
        return (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def tiny_variables(kind: str, seed: int = 0, **overrides) -> dict:
    """Random variables of the TINY model."""
    return {"params": random_variables(flax_shapes(kind, **dict(TINY, **overrides)), seed)}


def tiny_state_dict(kind: str, seed: int = 0, **overrides) -> dict:
    """An official-layout state dict of the TINY model (random weights), via the exporter."""
    return export_zoedepth(tiny_variables(kind, seed, **overrides), kind, depth=TINY["depth"])
