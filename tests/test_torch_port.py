"""The PyTorch twin used as a CPU speed baseline (s2r_jax.benchmarks.torch_port):
its parameter names are the official keys, and with the golden weights it reproduces
the official eval-mode outputs.

Tolerance: max abs error <= 1e-4 (float32, CPU), as for our own networks (test_parity).
"""
import functools

import numpy as np
import pytest
import torch

import golden
from s2r_jax.benchmarks import torch_port
from s2r_jax.models import MODULES

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def outputs():
    torch.set_num_threads(2)
    net = torch_port.from_state_dicts({n: golden.state_dict(n) for n in MODULES})
    with torch.no_grad():
        out = net.outputs(torch.from_numpy(golden.GOLDEN["input"]))
        finest = net(torch.from_numpy(golden.GOLDEN["input"]))
    out.update({f"depth_{i}": d for i, d in enumerate(out.pop("depth"))}, forward=finest)
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("name", ["struct_code", "structure_map", "attention_map", "depth_specific_structure",
                                  "depth_0", "depth_1", "depth_2", "depth_3"])
def test_matches_official(name):
    want = golden.GOLDEN[f"eval_{name}"]
    got = outputs()[name]
    assert got.shape == want.shape, name
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= TOL, f"{name}: max abs error {err:.3g} > {TOL}"


def test_forward_is_the_finest_depth():
    np.testing.assert_array_equal(outputs()["forward"], outputs()["depth_3"])


@pytest.mark.parametrize("network", MODULES)
def test_keys_are_the_official_layout(network):
    module = getattr(torch_port.TorchS2RDepthNet(), network)
    state = module.state_dict()
    layout = golden.LAYOUT[network]
    assert list(state) == list(layout)
    assert {k: list(v.shape) for k, v in state.items()} == {k: v["shape"] for k, v in layout.items()}


def test_depth_net_prelu_aliases():
    net = torch_port.TorchDepthNet()
    sd = golden.state_dict("depth_net")
    aliases = [k for k, v in golden.LAYOUT["depth_net"].items() if "alias_of" in v]
    assert len(aliases) == 17
    # A DataParallel prefix is accepted, a missing alias is filled from the shared slope.
    torch_port.load_official(net, {f"module.{k}": v for k, v in sd.items() if k != aliases[-1]})
    prelus = [m for _, m in net.named_modules(remove_duplicate=False) if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 18 and len({id(m) for m in prelus}) == 1  # one PReLU, used in 18 places
    assert net.conv1[3].weight.item() == pytest.approx(float(sd["conv1.3.weight"][0]))
    bad = dict(sd, **{aliases[0]: sd[aliases[0]] + 1})
    with pytest.raises(ValueError, match="alias one shared parameter"):
        torch_port.load_official(net, bad)
