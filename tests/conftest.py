"""Test set-up: 8 fake CPU devices, before anything initialises a JAX backend.

A persistent compilation cache (fresh per session) lets the many identical
programs that separate training runs compile only once.
"""
import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="s2r_jax_xla_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
