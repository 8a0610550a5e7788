"""Split lists: one frame per line, space-separated fields (the official format)."""
from __future__ import annotations

import os


class DataFormatError(ValueError):
    """A data file that does not have the expected format; the message names it."""


def read_list(path: str | os.PathLike, n_fields: int | tuple[int, ...]) -> list[list[str]]:
    """Lines of a split list as field lists; blank lines are skipped.

    A line with a field count not in `n_fields` raises `DataFormatError` naming the
    file, the line number and the line.
    """
    counts = (n_fields,) if isinstance(n_fields, int) else tuple(n_fields)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"split list {path}: no such file")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in counts:
                want = " or ".join(map(str, counts))
                raise DataFormatError(f"{path}:{lineno}: expected {want} space-separated fields, "
                                      f"got {len(fields)}: {line.strip()!r}")
            rows.append(fields)
    return rows
