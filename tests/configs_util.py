"""Loading configs/*.py in tests, and dotted overrides of their fields."""
from s2r_jax.repo import ROOT, load_config  # noqa: F401  (the same loader the demo uses)


def override(config, **fields):
    """Set fields given as {"a.b.c": value} (dots for nesting); returns config."""
    for key, value in fields.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config
