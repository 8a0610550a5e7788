"""The official-state-dict importer: layout coverage, counts and its errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import golden
from s2r_jax import weights
from s2r_jax.models import S2RDepthNet

# Official parameter counts (shared/reference/README.md); DepthNet's one PReLU counts once.
OFFICIAL_COUNTS = {"struct_encoder": 5_385_856, "struct_decoder": 2_234_049, "dsa": 25_259_761,
                   "depth_net": 54_558_404}


def _count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def param_shapes():
    return jax.eval_shape(lambda: S2RDepthNet().init(jax.random.key(0), jnp.zeros((1, 96, 96, 3))))["params"]


@pytest.mark.parametrize("module", sorted(OFFICIAL_COUNTS))
def test_parameter_counts_equal_official(module, param_shapes):
    assert _count(param_shapes[module]) == OFFICIAL_COUNTS[module]
    # and the layout file agrees: parameters are its non-buffer, non-alias entries
    layout = golden.LAYOUT[module]
    n = sum(int(np.prod(s["shape"])) for k, s in layout.items()
            if "alias_of" not in s and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n == OFFICIAL_COUNTS[module]


@pytest.mark.parametrize("module", sorted(OFFICIAL_COUNTS))
def test_import_fills_every_variable(module, param_shapes):
    imported = weights.import_state_dict(module, golden.state_dict(module))
    got = jax.tree.map(lambda a: a.shape, imported["params"][module])
    want = jax.tree.map(lambda a: a.shape, param_shapes[module])
    assert got == want


def test_dataparallel_prefix_is_stripped():
    sd = golden.state_dict("depth_net")
    plain = weights.import_state_dict("depth_net", sd)
    prefixed = weights.import_state_dict("depth_net", {"module." + k: v for k, v in sd.items()})
    jax.tree.map(np.testing.assert_array_equal, plain, prefixed)


def test_all_problems_reported_at_once():
    sd = golden.state_dict("dsa")
    del sd["E.base.3.0.conv1.weight"]
    sd["D.extra.weight"] = np.zeros(3, np.float32)
    sd["D.up1.bn1.running_var"] = np.zeros(7, np.float32)
    with pytest.raises(weights.WeightImportError) as e:
        weights.import_state_dict("dsa", sd, source="dsa.pth")
    msg = str(e.value)
    assert "dsa.pth" in msg
    assert "missing keys (1)" in msg and "E.base.3.0.conv1.weight" in msg
    assert "unexpected keys (1)" in msg and "D.extra.weight" in msg
    assert "mis-shaped keys (1)" in msg and "D.up1.bn1.running_var: got (7,), expected (256,)" in msg


def test_wrong_network_is_not_accepted_silently():
    with pytest.raises(weights.WeightImportError, match="missing keys"):
        weights.import_state_dict("struct_decoder", golden.state_dict("struct_encoder"))


def test_prelu_aliases_must_agree():
    sd = golden.state_dict("depth_net")
    sd["deconv2.model.6.weight"] = sd["deconv2.model.6.weight"] + 1
    with pytest.raises(weights.WeightImportError, match="ONE PReLU"):
        weights.import_state_dict("depth_net", sd)


def test_num_batches_tracked_is_optional():
    sd = {k: v for k, v in golden.state_dict("struct_decoder").items() if not k.endswith("num_batches_tracked")}
    weights.import_state_dict("struct_decoder", sd)


def test_drn_imagenet_initialises_the_dsa_trunk_only():
    drn = golden.state_dict("drn_d_22_imagenet")
    assert "fc.weight" in drn
    imported = weights.import_state_dict("drn_d_22_imagenet", drn)
    assert set(imported["params"]["dsa"]) == {"trunk"}
    # same tensors under the DSA's key names land in the same places
    dsa = golden.state_dict("dsa")
    renamed = {k: drn["layer" + k[len("E.base."):]] for k in dsa if k.startswith("E.base.")}
    for k in dsa:
        if k.startswith("D."):
            renamed[k] = dsa[k]
    full = weights.import_state_dict("dsa", renamed)
    jax.tree.map(np.testing.assert_array_equal, imported["params"]["dsa"]["trunk"], full["params"]["dsa"]["trunk"])
    jax.tree.map(np.testing.assert_array_equal, imported["batch_stats"]["dsa"]["trunk"],
                 full["batch_stats"]["dsa"]["trunk"])


def test_merge_rejects_a_variable_given_twice():
    a = weights.import_state_dict("drn_d_22_imagenet", golden.state_dict("drn_d_22_imagenet"))
    b = weights.import_state_dict("dsa", golden.state_dict("dsa"))
    with pytest.raises(ValueError, match="given by two checkpoints"):
        weights.merge_variables(a, b)
