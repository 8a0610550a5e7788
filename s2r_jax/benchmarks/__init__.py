"""Timing scripts: `python -m s2r_jax.benchmarks.<name>` prints one JSON line and a table."""
