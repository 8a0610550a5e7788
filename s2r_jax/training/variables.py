"""The stage's model variables: their shapes, the official initialisation, `init_from`.

No tensorflow here: benchmarks and other tools build training states without it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from s2r_jax import checkpoint
from s2r_jax.training.init import official_init
from s2r_jax.training.state import stage_modules


def abstract_variables(model, config) -> dict:
    """Shapes of the stage's modules' variables (nothing allocated)."""
    h, w = config.data.image_size
    image = jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32)
    full = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, use_attention=config.use_attention), image)
    mods = stage_modules(config)
    missing = [m for m in mods if m not in full["params"]]
    if missing:
        raise ValueError(f"modules {missing} are not used by this stage (use_attention={config.use_attention})")
    return {col: {m: full[col][m] for m in mods if m in full[col]} for col in ("params", "batch_stats")}


def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _load_module(path: str, module: str, expected: dict) -> dict:
    """{col: subtree} of `module` from checkpoint directory `path`, shape-checked against `expected`."""
    variables, _ = checkpoint.load_variables(path)
    if module not in variables.get("params", {}):
        raise ValueError(f"init_from.{module}: checkpoint {path} holds no '{module}' "
                         f"(it holds {sorted(variables.get('params', {}))})")
    out, problems = {}, []
    for col in ("params", "batch_stats"):
        got = flat(variables.get(col, {}).get(module, {}))
        want = flat(expected.get(col, {}).get(module, {}))
        for k, v in got.items():
            if k not in want:
                problems.append(f"{col}/{module}/{k}: not in this model")
            elif tuple(v.shape) != tuple(want[k].shape):
                problems.append(f"{col}/{module}/{k}: checkpoint {tuple(v.shape)}, model {tuple(want[k].shape)}")
        out[col] = got
    if problems:
        raise ValueError(f"init_from.{module} = {path} does not fit the configured model:\n  " + "\n  ".join(problems))
    return out


def initial_variables(config, abstract: dict, rng) -> dict:
    """Official initialisation, then every module named in `config.init_from` loaded over it
    (a partial module, e.g. only the DSA trunk from the ImageNet DRN, replaces just its part)."""
    missing = [m for m in config.frozen_modules if not config.init_from[m]]
    if missing and not config.allow_random_frozen:
        raise ValueError("frozen modules must be loaded: set " + ", ".join(f"config.init_from.{m}" for m in missing)
                         + " (a workdir or a converted checkpoint); allow_random_frozen=True is for smoke tests only")
    variables = jax.tree.map(np.asarray, official_init(abstract, rng))
    for module in stage_modules(config):
        path = config.init_from[module]
        if not path:
            continue
        loaded = _load_module(path, module, abstract)
        for col, flat in loaded.items():
            for key, value in flat.items():
                node = variables[col][module]
                *parents, leaf = key.split("/")
                for p in parents:
                    node = node[p]
                node[leaf] = np.asarray(value)
        logging.info("init_from: %s <- %s", module, path)
    return variables
