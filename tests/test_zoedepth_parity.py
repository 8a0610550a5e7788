"""Acceptance: ZoeD-N, ZoeD-K and ZoeD-NK, loaded through the importer with the stand-in
weights of the official layout, reproduce every array the official code computed
(fixtures/zoedepth/README.md): MiDaS features and relative depth, bin centres,
probabilities, metric depth, domain logits, single-image routing, the `infer` path and
the SILog loss.

Tolerance: max abs error <= 1e-4 (float32, CPU) for the networks, 1e-6 for the loss.

The MiDaS backbone is the same array in the three models (each stand-in tensor is seeded
by its key), so one full ZoeD-N forward checks the shared features end to end, and the
three models' heads run on the official MiDaS features. (From our own features, ZoeD-K's
bin centres, in metres up to 80, differ by up to 1.5e-4: the features' float32 noise of
~1e-5, amplified by its normed bins; the official float32 result is itself 5e-5 from its
float64 value.)
"""
import functools

import jax
import numpy as np
import pytest

import zoedepth_golden as zg
from s2r_jax import losses
from s2r_jax.models import build_zoedepth, zoedepth_infer
from s2r_jax.zoedepth_weights import OFFICIAL_PARAMS, UNUSED_PREFIXES

TOL = 1e-4
G = zg.GOLDEN


@functools.lru_cache(maxsize=None)
def full_forward_n():
    model = build_zoedepth("n", img_size=zg.GOLDEN_SIZE)
    out = jax.jit(model.apply)(zg.official_variables("n"), zg.nhwc(G["input"]))
    return jax.tree.map(np.asarray, out)


@functools.lru_cache(maxsize=None)
def heads(kind, route="batch"):
    return zg.golden_heads(kind, **({"route": route} if kind == "nk" else {}))


def _as_official(out, name):
    if name.endswith("_s4"):  # stored at every 4th row and column
        return zg.nchw(out[name[:-3]])[:, :, ::4, ::4]
    if name in ("rel_depth", "domain_logits"):
        return out[name]
    return zg.nchw(out[name])


def ours(key):
    """Our value for one golden entry, in the official layout."""
    if key == "rel_depth" or key.startswith("feature_"):
        return _as_official(full_forward_n(), key)
    kind, name = key.split("_", 1)
    if name.startswith("single"):  # ZoeD-NK with each image alone: routed by its own vote
        image, name = int(name[len("single")]), name.split("_", 1)[1]
        return _as_official(heads(kind, route="image"), name)[image:image + 1]
    return _as_official(heads(kind), name)


NETWORK_ENTRIES = sorted(k for k in G if k not in ("input", "silog_pred", "silog_gt", "silog_loss"))


def test_every_golden_entry_is_compared():
    assert len(NETWORK_ENTRIES) == len(G) - 4 == 21
    assert {k.split("_")[0] for k in NETWORK_ENTRIES} == {"n", "k", "nk", "rel", "feature"}


@pytest.mark.parametrize("key", NETWORK_ENTRIES)
def test_matches_official(key):
    got, want = ours(key), G[key]
    assert got.shape == want.shape, key
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= TOL, f"{key}: max abs error {err:.3g} > {TOL}"


def test_full_zoed_n_forward_matches_official_metric_depth():
    """The end-to-end path (preparation, MiDaS, heads) in one jitted forward."""
    out = full_forward_n()
    for name in ("metric_depth", "probs_s4", "bin_centers_s4"):
        err = float(np.max(np.abs(_as_official(out, name) - G[f"n_{name}"])))
        assert err <= TOL, f"{name}: {err:.3g}"


@pytest.mark.parametrize("kind", ["n", "k", "nk"])
def test_parameter_counts_equal_the_official(kind):
    """Ours plus the official parameters the depth network never uses (timm's classifier
    and MiDaS's unused fusion unit, which we do not build) is the official count."""
    shapes = jax.eval_shape(build_zoedepth(kind).init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3),
                                                                                               np.float32))
    ours_count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))
    unused = sum(int(np.prod(s["shape"])) for k, s in zg.LAYOUT[f"zoed_{kind}"].items() if k.startswith(UNUSED_PREFIXES))
    assert unused == 1_027_048 + 1_180_160
    assert ours_count + unused == OFFICIAL_PARAMS[kind] == {"n": 344_816_746, "k": 344_820_487,
                                                            "nk": 346_100_355}[kind]


def test_infer_matches_official():
    """`model.infer(x)` of the official ZoeD-N (fixtures/zoedepth/README.md) on 72x100 images:
    reflect padding to 108x142, resizing to the 96x128 network, bicubic back, flip averaging."""
    model = build_zoedepth("n", img_size=zg.GOLDEN_SIZE)
    got = np.asarray(jax.jit(functools.partial(zoedepth_infer, model))(zg.official_variables("n"),
                                                                      zg.nhwc(zg.INFER["input"])))
    want = zg.INFER["infer"][:, 0]
    assert got.shape == want.shape == (2, 72, 100)
    err = float(np.max(np.abs(got - want)))
    assert err <= TOL, f"infer: max abs error {err:.3g}"


def test_silog_loss_matches_official():
    pred, gt = zg.nhwc(G["silog_pred"]), zg.nhwc(G["silog_gt"])
    loss = jax.jit(losses.silog_loss)(pred, gt, gt > 1e-3)
    assert abs(float(loss) - float(G["silog_loss"])) <= 1e-6
