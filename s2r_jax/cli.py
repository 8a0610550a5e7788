"""Flag parsing shared by the command-line tools (`s2r_jax.predict`, `s2r_jax.export`), so that
a flag that means the same thing is read, and refused, the same way by each."""
from __future__ import annotations

from absl import app


def parse_pair(name: str, values) -> tuple[int, int] | None:
    """A list flag's 'H,W' -> (H, W), None if not given; a UsageError naming --`name` otherwise."""
    if not values:
        return None
    try:
        pair = tuple(int(v) for v in values)
    except ValueError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise app.UsageError(f"--{name} takes H,W (two positive integers), got {','.join(values)}")
    return pair
