"""The repository around the package: its configs/*.py files and its train.py / eval.py.

The demo and the tests run the same configs and the same top-level programs a user runs,
so they load them from the checkout (the package is installed with `pip install -e .`).
"""
from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_module(path: str, name: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found; s2r_jax's configs and programs live in its repository "
                                "checkout (install it with pip install -e .)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str, arg: str | None = None):
    """`get_config(arg)` of configs/<name>.py."""
    return _load_module(os.path.join(ROOT, "configs", f"{name}.py"), f"s2r_jax_config_{name}").get_config(arg)


def load_program(name: str):
    """The top-level program train.py or eval.py as a module (its flags are defined on import)."""
    import sys
    key = f"s2r_jax_program_{name}"
    if key not in sys.modules:
        sys.modules[key] = _load_module(os.path.join(ROOT, f"{name}.py"), key)
    return sys.modules[key]
