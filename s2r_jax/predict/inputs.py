"""Which images to predict: files, folders and glob patterns -> sorted paths, and a distinct
output name for each."""
from __future__ import annotations

import collections
import glob
import os
from typing import Iterable, Sequence

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _folder_images(folder: str, recursive: bool) -> list[str]:
    if recursive:
        found = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
    else:
        found = [os.path.join(folder, f) for f in os.listdir(folder)]
    return [p for p in found if _is_image(p) and os.path.isfile(p)]


def expand_inputs(inputs: Iterable[str], recursive: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Files, folders and glob patterns -> (sorted image paths, [(input, reason)] errors).

    A named file is taken whatever its extension (an unreadable one fails later, naming
    it); folders and globs contribute their png/jpg/jpeg files (case-insensitive), a
    folder only its own files unless `recursive` (a glob's `**` then matches folders
    at any depth). A path that does not exist, a glob that matches nothing and a
    folder without images are errors. The same file named twice is predicted once.
    """
    paths, errors = [], []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isfile(item):
            paths.append(item)
        elif os.path.isdir(item):
            found = _folder_images(item, recursive)
            if not found:
                hint = "" if recursive else " (--recursive also searches its sub-folders)"
                errors.append((item, f"no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} images in this folder{hint}"))
            paths += found
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=recursive))
            found = []
            for m in matches:
                found += _folder_images(m, recursive) if os.path.isdir(m) else ([m] if _is_image(m) else [])
            if not found:
                errors.append((item, "no image matches this pattern" if matches else "nothing matches this pattern"))
            paths += found
        else:
            errors.append((item, "no such file or directory"))
    unique = {}
    for p in paths:
        unique.setdefault(os.path.realpath(p), p)
    return sorted(unique.values()), errors


def output_names(paths: Sequence[str]) -> list[str]:
    """A distinct output stem per input (compared case-insensitively).

    An image's stem is its file name without the extension; inputs that share one
    are all named by their folder relative to the group's common folder, joined with
    '__' (`a/x.png`, `b/c/x.png` -> `a__x`, `b__c__x`; `x.png`, `s/x.png` -> `x`,
    `s__x`); where that still clashes (one folder, `x.png` and `x.jpg`) the lower-case
    extension is appended (`x_png`, `x_jpg`); a clash left after that gets `_2`, `_3`...
    """
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = list(stems)
    groups = collections.defaultdict(list)
    for i, s in enumerate(stems):
        groups[s.casefold()].append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        dirs = [os.path.dirname(os.path.abspath(paths[i])) for i in idx]
        root = os.path.commonpath(dirs)
        for i, d in zip(idx, dirs):
            rel = os.path.relpath(d, root)
            names[i] = "__".join(([] if rel == os.curdir else rel.split(os.sep)) + [stems[i]])
        same = collections.defaultdict(list)
        for i in idx:
            same[names[i].casefold()].append(i)
        for js in same.values():
            if len(js) > 1:
                for j in js:
                    names[j] += "_" + os.path.splitext(paths[j])[1].lstrip(".").lower()
    seen = set()
    for i, name in enumerate(names):
        base, k = name, 2
        while name.casefold() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.casefold())
        names[i] = name
    return names
