r"""Style invariance: how much each representation of a model changes when only the style does.

  python -m s2r_jax.diagnostics.style_invariance --checkpoint runs/demo/stage2 \
      --checkpoint runs/demo/baseline --data procedural --num_frames 64
  python -m s2r_jax.diagnostics.style_invariance --checkpoint runs/stage2 \
      --data /data/vkitti/rgb/0001/clone,/data/vkitti/rgb/0001/fog --random_encoder

S2R-DepthNet rests on a structure map that keeps a scene's structure and drops its style
(Chen et al. 2021, Sec. 3.1: the structure encoder is trained to give a domain-invariant
code). This measures it. Given N scenes, each seen in two styles (the procedural data's
'synthetic' and 'real' renderings of one geometry; a Virtual KITTI world's `clone` and its
`fog`, `rain` or `sunset` variation; photos and restyled copies), every representation f of
every checkpoint is compared between the two renderings of each scene:

  corr         the mean over scenes of the Pearson correlation of f(a_i) and f(b_i), all
               elements flattened: 1 = the style changes f at most by a gain and an offset.
  style/scene  E_i |f(a_i) - f(b_i)|^2 / E_{i!=j} |f(x_i) - f(x_j)|^2, x either rendering
               (the mean of the two): how far the style moves f relative to how far a
               different scene moves it. 0 = style-free; 1 = the style moves f as far as
               swapping the scene for another one does; above 1, further.

The first is blind to a change of gain; the second is the one to read across
representations (it is scale-free and counts every change).

Representations: the input image (the reference: how big the style change is in pixels);
of S2R-DepthNet the structure code, the structure map, the attention map and the
depth-specific structure (attention x structure); of every depth model DepthNet's encoder
features (`conv2`, at 1/2 resolution), its bottleneck (`center_up`, 1/8) and the predicted
depth (finest output). A structure-encoder pretraining checkpoint gives its structure code;
`--random_encoder` adds an encoder drawn from MUNIT's initialisation, the baseline that
pretraining has to beat.

No tensorflow: images are read with Pillow (the official test's preprocessing) or rendered
by the procedural module.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Callable, Iterable, Sequence

import numpy as np

IMAGE = "image (input)"
STRUCT_CODE = "structure code"
STRUCTURE_MAP = "structure map"
ATTENTION_MAP = "attention map"
DEPTH_SPECIFIC = "depth-specific structure"
DEPTHNET_CONV2 = "DepthNet conv2 features"
DEPTHNET_CENTRE = "DepthNet bottleneck"
DEPTH = "predicted depth"
_OUTPUTS = ((STRUCT_CODE, "struct_code"), (STRUCTURE_MAP, "structure_map"), (ATTENTION_MAP, "attention_map"),
            (DEPTH_SPECIFIC, "depth_specific_structure"))
_FEATURES = {("depth_net", "conv2"): DEPTHNET_CONV2, ("depth_net", "center_up"): DEPTHNET_CENTRE}
_ORDER = (STRUCT_CODE, STRUCTURE_MAP, ATTENTION_MAP, DEPTH_SPECIFIC, DEPTHNET_CONV2, DEPTHNET_CENTRE, DEPTH)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of (n, d) arrays (nan for a constant row)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(a * b, 1) / np.sqrt(np.sum(a * a, 1) * np.sum(b * b, 1))


class PairStatistics:
    """Running sums over scene pairs for one representation (float64), so that any number
    of scenes is measured batch by batch without holding every map."""

    def __init__(self):
        self.n, self.corr_sum, self.pair_sq = 0, 0.0, 0.0
        self.sums: list = [None, None]  # per rendering: the sum of f
        self.squares = [0.0, 0.0]       # per rendering: the sum of |f|^2

    def add(self, fa, fb) -> None:
        """`fa[i]` and `fb[i]`: the representation of scene i in the two styles."""
        fa = np.asarray(fa, np.float64).reshape(len(fa), -1)
        fb = np.asarray(fb, np.float64).reshape(len(fb), -1)
        if fa.shape != fb.shape:
            raise ValueError(f"the two renderings' representations differ in shape: {fa.shape} and {fb.shape}")
        self.n += len(fa)
        self.pair_sq += float(np.sum(np.square(fa - fb)))
        self.corr_sum += float(np.sum(_pearson(fa, fb)))
        for k, f in enumerate((fa, fb)):
            self.sums[k] = f.sum(0) if self.sums[k] is None else self.sums[k] + f.sum(0)
            self.squares[k] += float(np.sum(f * f))

    def figures(self) -> dict:
        """{'corr', 'style_scene', 'frames'} (see the module docstring)."""
        n = self.n
        if n < 2:
            raise ValueError(f"style invariance needs at least 2 scenes (the scene term compares scenes), got {n}")
        # E_{i!=j} |f_i - f_j|^2 = 2n / (n - 1) * E_i |f_i - mean f|^2, for each rendering
        spread = [self.squares[k] / n - float(np.sum(np.square(self.sums[k] / n))) for k in range(2)]
        scene = n / (n - 1) * (spread[0] + spread[1])
        pair = self.pair_sq / n
        return {"corr": self.corr_sum / n, "style_scene": pair / scene if scene > 0 else float("nan"), "frames": n}


def measure(represent: Callable[[np.ndarray], dict], images_a: np.ndarray, images_b: np.ndarray,
            batch_size: int = 8) -> dict:
    """{representation: figures} of `represent(images) -> {name: (n, ...) array}` over the
    scene pairs (images_a[i], images_b[i])."""
    if len(images_a) != len(images_b):
        raise ValueError(f"{len(images_a)} images in one style and {len(images_b)} in the other: they must pair up")
    stats: dict = {}
    for i in range(0, len(images_a), batch_size):
        ra, rb = represent(images_a[i:i + batch_size]), represent(images_b[i:i + batch_size])
        for name in ra:
            stats.setdefault(name, PairStatistics()).add(ra[name], rb[name])
    return {name: s.figures() for name, s in stats.items()}


def image_representation(images) -> dict:
    return {IMAGE: np.asarray(images)}


def depth_model_representation(model, variables, use_attention: bool) -> Callable[[np.ndarray], dict]:
    """`represent(images)` of S2R-DepthNet or the RGB baseline: its named outputs, DepthNet's
    features and the finest depth, jitted."""
    import jax

    def run(variables, images):
        out, state = model.apply(variables, images, use_attention=use_attention, mutable=["intermediates"],
                                 capture_intermediates=lambda m, method: method == "__call__" and m.path in _FEATURES)
        found = {name: out[key] for name, key in _OUTPUTS if key in out}
        inter = state["intermediates"]
        for (top, sub), name in _FEATURES.items():
            found[name] = inter[top][sub]["__call__"][0]
        found[DEPTH] = out["depth"][-1]
        return found

    run = jax.jit(run)  # returns its dict sorted by key: put it back in the order above

    def represent(images):
        out = run(variables, images)
        return {k: np.asarray(out[k]) for k in _ORDER if k in out}

    return represent


def encoder_representation(encoder_dim: int, params) -> Callable[[np.ndarray], dict]:
    """`represent(images)` of a structure encoder alone: its structure code."""
    import jax

    from s2r_jax.models.structure_encoder import StructureEncoder

    encoder = StructureEncoder(encoder_dim)
    run = jax.jit(lambda p, x: encoder.apply({"params": p}, x))
    return lambda images: {STRUCT_CODE: np.asarray(run(params, images))}


def random_encoder_params(encoder_dim: int, image_size: Sequence[int], seed: int = 0):
    """A structure encoder drawn from MUNIT's initialisation (what pretraining starts from)."""
    import jax
    import jax.numpy as jnp

    from s2r_jax.models.structure_encoder import StructureEncoder
    from s2r_jax.training.init import munit_init

    h, w = image_size
    abstract = jax.eval_shape(StructureEncoder(encoder_dim).init, jax.random.key(0),
                              jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    return munit_init({"params": {"struct_encoder": abstract["params"]}}, jax.random.key(seed))["params"][
        "struct_encoder"]


@dataclasses.dataclass
class Source:
    """A checkpoint as something to measure: a label, its representation function, its size."""

    label: str
    represent: Callable[[np.ndarray], dict]
    image_size: tuple | None  # the size the model runs at; None: any (an encoder alone)
    encoder_dim: int


def load_source(path: str) -> Source:
    """A depth-stage checkpoint (ours or converted), or a structure-encoder pretraining one."""
    from s2r_jax.checkpoint import load_variables
    from s2r_jax.model_loader import load_model

    variables, meta = load_variables(path)
    config = meta.get("config") or {}
    if config.get("stage") == "ste_pretrain":
        dim = int(config["model"]["encoder_dim"])
        return Source(path, encoder_representation(dim, variables["params"]["struct_encoder"]), None, dim)
    loaded = load_model(path)
    return Source(path, depth_model_representation(loaded.model, loaded.variables, loaded.use_attention),
                  loaded.image_size, int(loaded.spec.model["encoder_dim"]))


def procedural_pairs(num: int, image_size: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`num` procedural scenes rendered in the 'synthetic' and the 'real' style (the same
    geometry, frame i drawn from (seed, i)), as model inputs in [-1, 1]."""
    from s2r_jax.data import preprocessing, procedural

    h, w = (int(s) for s in image_size)
    out = []
    for style in ("synthetic", "real"):
        out.append(np.stack([preprocessing.normalise(procedural.render_frame((seed, i), h, w, style)[0])
                             for i in range(num)]))
    return out[0], out[1]


def folder_pairs(folder_a: str, folder_b: str, image_size: Sequence[int], num: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The images of two folders (searched recursively, sorted by path), the i-th of one paired
    with the i-th of the other, as model inputs (the official test's preprocessing)."""
    from s2r_jax.data import preprocessing
    from s2r_jax.predict.inputs import expand_inputs

    lists = []
    for folder in (folder_a, folder_b):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--data: {folder} is not a directory")
        paths, errors = expand_inputs([folder], recursive=True)
        if errors:
            raise FileNotFoundError(f"--data: {errors[0][0]}: {errors[0][1]}")
        lists.append(paths)
    if len(lists[0]) != len(lists[1]):
        raise ValueError(f"--data: {folder_a} holds {len(lists[0])} images and {folder_b} {len(lists[1])}; the "
                         "two folders must hold the same scenes, one image each, in the same sorted order")
    n = min(num, len(lists[0])) if num else len(lists[0])

    def load(path):
        with open(path, "rb") as f:
            return preprocessing.model_input(preprocessing.decode_rgb(f.read()), image_size)

    return tuple(np.stack([load(p) for p in paths[:n]]) for paths in lists)


def measure_sources(sources: Iterable[Source], images_a: np.ndarray, images_b: np.ndarray,
                    batch_size: int = 8) -> list[tuple[str, str, dict]]:
    """[(source label, representation, figures)]: the input image first, then each source's."""
    rows = [("-", name, f) for name, f in measure(image_representation, images_a, images_b, batch_size).items()]
    for source in sources:
        for name, f in measure(source.represent, images_a, images_b, batch_size).items():
            rows.append((source.label, name, f))
    return rows


LEGEND = ("corr: mean correlation between a scene's two renderings (1 = unchanged up to gain/offset); "
          "style/scene: squared change\nfrom the style over that from another scene (0 = style-free, 1 = the style "
          "matters as much as the scene)")


def format_table(rows: Sequence[tuple[str, str, dict]], label_width: int | None = None) -> str:
    width = label_width or max(12, *(len(r[0]) + 2 for r in rows))
    lines = [f"{'model':<{width}}{'representation':<27}{'corr':>8}{'style/scene':>13}"]
    for label, name, f in rows:
        lines.append(f"{label:<{width}}{name:<27}{f['corr']:>8.3f}{f['style_scene']:>13.3f}")
    return "\n".join(lines)


def _main(argv):
    del argv
    from absl import flags

    from s2r_jax import console
    from s2r_jax.model_loader import check_model_size

    f = flags.FLAGS
    console.setup(None, f.verbose)
    try:
        sources = [load_source(path) for path in f.checkpoint]
        sizes = [s.image_size for s in sources if s.image_size is not None]
        size = check_model_size([int(s) for s in f.image_size]) if f.image_size else (sizes[0] if sizes else (192, 640))
        if f.random_encoder:
            dim = sources[0].encoder_dim
            sources.append(Source(f"random encoder (dim {dim})",
                                  encoder_representation(dim, random_encoder_params(dim, size)), None, dim))
        if f.data == "procedural":
            what = f"procedural scenes (seed {f.seed}), 'synthetic' vs 'real' style"
            images_a, images_b = procedural_pairs(f.num_frames, size, f.seed)
        else:
            folders = f.data.split(",")
            if len(folders) != 2:
                raise ValueError(f"--data: 'procedural' or two folders 'A,B', got {f.data!r}")
            what = f"{folders[0]} vs {folders[1]}"
            images_a, images_b = folder_pairs(*folders, size, f.num_frames)
        rows = measure_sources(sources, images_a, images_b, f.batch_size)
    except (ValueError, FileNotFoundError) as e:
        console.error(str(e))
        sys.exit(1)
    print(f"style invariance over {len(images_a)} scenes at {size[0]}x{size[1]}: {what}")
    print(LEGEND)
    print(format_table(rows))
    if f.output:
        with open(f.output + ".tmp", "w") as out:
            json.dump({"data": what, "image_size": list(size), "rows": [
                {"model": label, "representation": name, **figures} for label, name, figures in rows]}, out, indent=2)
        os.replace(f.output + ".tmp", f.output)
        print(f"wrote {f.output}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_multi_string("checkpoint", None, "A checkpoint directory: a depth stage's workdir (S2R-DepthNet or "
                              "the RGB baseline), one written by s2r_jax.convert, or a structure-encoder "
                              "pretraining workdir (its structure code). Repeat to compare.")
    flags.DEFINE_string("data", "procedural", "The same scenes in two styles: 'procedural' (renders --num_frames "
                        "scenes in the 'synthetic' and 'real' styles), or two folders 'A,B' whose images pair up in "
                        "sorted order (e.g. a Virtual KITTI world's rgb/0001/clone,rgb/0001/fog).")
    flags.DEFINE_integer("num_frames", 64, "Scenes to measure (0 with folders: all of them).")
    flags.DEFINE_integer("seed", 7, "procedural: frame i is drawn from (seed, i); the demo trains on seed 0 and "
                         "tests on seed 1.")
    flags.DEFINE_list("image_size", None, "H,W to run the models at (default: the first depth checkpoint's "
                      "training size, else 192,640).")
    flags.DEFINE_integer("batch_size", 8, "Images per forward pass.")
    flags.DEFINE_bool("random_encoder", False, "Also measure a structure encoder fresh from MUNIT's initialisation "
                      "(the width of the first checkpoint's): what pretraining has to improve on.")
    flags.DEFINE_string("output", None, "Also write the figures to this JSON file.")
    flags.DEFINE_bool("verbose", False, "Show library logs.")
    flags.mark_flags_as_required(["checkpoint"])
    app.run(_main)
