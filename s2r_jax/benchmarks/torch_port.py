"""A PyTorch twin of s2r_jax's eval-mode S2R-DepthNet, for CPU speed baselines only.

Written from our Flax modules (s2r_jax/models) and the official state-dict layout
(s2r_jax/weights.py), not from the official code: the same layers, padding, resizes
and BatchNorm running statistics, in NCHW, with parameter and buffer names equal to
the official keys, so each official network's state dict loads with
`load_state_dict(strict=True)`. Its purpose is to time inference on the CPU with
PyTorch's (oneDNN) convolutions on weights identical to ours; tests/test_torch_port.py
checks it against the official golden outputs. Not part of the library API; torch is
imported here (and lazily by s2r_jax.convert for .pth files), nowhere else.

    net = from_state_dicts({"struct_encoder": sd_enc, "struct_decoder": sd_dec, "dsa": sd_dsa,
                            "depth_net": sd_depth})
    with torch.no_grad():
        depth = net(image_nchw)  # (N, 1, H, W) tanh, as S2RDepthNet.apply(v, x)["depth"][-1]
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2r_jax.models.depth_specific_attention import DRN_D22_CHANNELS
from s2r_jax.weights import strip_prefix

BN_EPS = 1e-5  # layers.BatchNorm and instance_norm


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """layers.resize_bilinear with align_corners=True (a no-op at the same size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)


def _conv(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1,
          bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=bias)


# --------------------------------------------------------------------------- structure encoder
class _ConvINBlock(nn.Module):
    """structure_encoder.ConvINBlock: reflect pad, conv (bias), InstanceNorm, LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int):
        super().__init__()
        self.pad = pad
        self.conv = _conv(cin, cout, k, stride)

    def forward(self, x):
        x = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
        return F.leaky_relu(F.instance_norm(x, eps=BN_EPS), 0.2)


class _ResBlock(nn.Module):
    """structure_encoder.ResBlock: (pad, conv, IN, lrelu, pad, conv, IN) + x."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = _conv(c, c, 3)
        self.conv2 = _conv(c, c, 3)

    def forward(self, x):
        y = F.leaky_relu(F.instance_norm(self.conv1(F.pad(x, (1,) * 4, mode="reflect")), eps=BN_EPS), 0.2)
        return F.instance_norm(self.conv2(F.pad(y, (1,) * 4, mode="reflect")), eps=BN_EPS) + x


class _ResBlocks(nn.Module):
    def __init__(self, c: int, n: int):
        super().__init__()
        self.model = nn.Sequential(*(_ResBlock(c) for _ in range(n)))

    def forward(self, x):
        return self.model(x)


class TorchStructureEncoder(nn.Module):
    """Official keys `conv.conv.*`, `conv{1,2}.conv.*`, `resblock.model.{i}.conv{1,2}.*`."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.conv = _ConvINBlock(3, dim, 7, 1, 3)
        self.conv1 = _ConvINBlock(dim, 2 * dim, 4, 2, 1)
        self.conv2 = _ConvINBlock(2 * dim, 4 * dim, 4, 2, 1)
        self.resblock = _ResBlocks(4 * dim, 4)

    def forward(self, x):
        return self.resblock(self.conv2(self.conv1(self.conv(x))))


# --------------------------------------------------------------------------- up-projection decoders
class _UpProjection(nn.Module):
    """layers.UpProjection: resize, relu(bn1_2(conv1_2(relu(bn1(conv1))))) + bn2(conv2), relu."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _conv(cin, cout, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.conv1_2 = _conv(cout, cout, 3, padding=1, bias=False)
        self.bn1_2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.conv2 = _conv(cin, cout, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x, size):
        x = _resize(x, size)
        b1 = self.bn1_2(self.conv1_2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(b1 + self.bn2(self.conv2(x)))


class TorchStructureDecoder(nn.Module):
    """Official keys `up{1,2}.*`, `conv.*`; output: sigmoid structure map (N, 1, 4h, 4w)."""

    def __init__(self, features: int = 256):
        super().__init__()
        self.up1 = _UpProjection(features, features // 2)
        self.up2 = _UpProjection(features // 2, features // 4)
        self.conv = _conv(features // 4, 1, 3)

    def forward(self, code):
        h, w = code.shape[-2:]
        x = self.up2(self.up1(code, (2 * h, 2 * w)), (4 * h, 4 * w))
        return torch.sigmoid(self.conv(F.pad(x, (1,) * 4, mode="reflect")))


# --------------------------------------------------------------------------- depth-specific attention
def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """depth_specific_attention.ConvBNReLU (keys `.0` conv, `.1` bn)."""
    return nn.Sequential(_conv(cin, cout, k, stride, dilation * (k // 2), dilation, bias=False),
                         nn.BatchNorm2d(cout, eps=BN_EPS), nn.ReLU())


class _BasicBlock(nn.Module):
    """depth_specific_attention.BasicBlock (projection shortcut as `downsample.{0,1}`)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        d = dilation
        self.conv1 = _conv(cin, cout, 3, stride, d, d, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.conv2 = _conv(cout, cout, 3, 1, d, d, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _DRNTrunk(nn.Module):
    """depth_specific_attention.DRNTrunk: `base.{0..8}` (DRN-D-22 without avgpool/fc)."""

    def __init__(self, channels: Sequence[int] = DRN_D22_CHANNELS):
        super().__init__()
        ch = tuple(channels)
        levels = [_conv_bn_relu(3, ch[0], 7), _conv_bn_relu(ch[0], ch[0]), _conv_bn_relu(ch[0], ch[1], stride=2)]
        cin = ch[1]
        for level, stride, dil in ((3, 2, 1), (4, 2, 1), (5, 1, 2), (6, 1, 4)):
            cout = ch[level - 1]
            levels.append(nn.Sequential(_BasicBlock(cin, cout, stride, dil), _BasicBlock(cout, cout, 1, dil)))
            cin = cout
        levels.append(_conv_bn_relu(cin, ch[6], dilation=2))
        levels.append(_conv_bn_relu(ch[6], ch[7], dilation=1))
        self.base = nn.Sequential(*levels)

    def forward(self, x):
        sizes = {}
        for i, level in enumerate(self.base):
            x = level(x)
            if i in (2, 3):
                sizes[i] = x.shape[-2:]
        return x, sizes[3], sizes[2]  # 1/8 features, 1/4 size, 1/2 size


class _DSADecoder(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.up1 = _UpProjection(features, features // 2)
        self.up2 = _UpProjection(features // 2, features // 4)
        self.up3 = _UpProjection(features // 4, features // 8)
        self.conv = _conv(features // 8, 1, 3)

    def forward(self, x, sizes):
        for up, size in zip((self.up1, self.up2, self.up3), sizes):
            x = up(x, size)
        return torch.sigmoid(self.conv(F.pad(x, (1,) * 4, mode="reflect")))


class TorchDepthSpecificAttention(nn.Module):
    """Official keys `E.base.*` (trunk), `D.*` (decoder); output: sigmoid attention map (N, 1, H, W)."""

    def __init__(self, channels: Sequence[int] = DRN_D22_CHANNELS):
        super().__init__()
        self.E = _DRNTrunk(channels)
        self.D = _DSADecoder(tuple(channels)[7])

    def forward(self, image):
        x, quarter, half = self.E(image)
        return self.D(x, (quarter, half, image.shape[-2:]))


# --------------------------------------------------------------------------- depth net
class _ReflectPad(nn.Module):
    """A parameter-free `nn.ReflectionPad2d` stand-in that keeps the official Sequential indices."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x, (self.pad,) * 4, mode="reflect")


class _EncoderBlock(nn.Module):
    """depth_net.EncoderBlock: `model.{0..5}` = conv, bn, prelu, conv, bn, prelu (zero padding)."""

    def __init__(self, cin: int, middle: int, cout: int, prelu: nn.PReLU):
        super().__init__()
        self.model = nn.Sequential(_conv(cin, middle, 3, padding=1, bias=False), nn.BatchNorm2d(middle, eps=BN_EPS),
                                   prelu, _conv(middle, cout, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(cout, eps=BN_EPS), prelu)

    def forward(self, x):
        return self.model(x)


class _InceptionBlock(nn.Module):
    """depth_net.InceptionBlock: `layer{k}.1` (dilation 2k+1), norm1, nonlinearity, `branch1x1.1`, norm2."""

    def __init__(self, c: int, prelu: nn.PReLU, width: int = 3):
        super().__init__()
        self.width = width
        for k in range(width):
            d = 2 * k + 1
            setattr(self, f"layer{k}", nn.Sequential(_ReflectPad(d), _conv(c, c, 3, dilation=d, bias=False)))
        self.norm1 = nn.BatchNorm2d(width * c, eps=BN_EPS)
        self.norm2 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.nonlinearity = prelu
        self.branch1x1 = nn.Sequential(_ReflectPad(1), _conv(width * c, c, 3, bias=False))

    def forward(self, x):
        y = torch.cat([getattr(self, f"layer{k}")(x) for k in range(self.width)], 1)
        y = self.norm2(self.branch1x1(self.nonlinearity(self.norm1(y))))
        return self.nonlinearity(y + x)


class _DecoderUpBlock(nn.Module):
    """depth_net.DecoderUpBlock: `model.{1..6}` = conv, bn, prelu, ConvTranspose x2 (bias), bn, prelu."""

    def __init__(self, cin: int, middle: int, cout: int, prelu: nn.PReLU):
        super().__init__()
        self.model = nn.Sequential(_ReflectPad(1), _conv(cin, middle, 3, bias=False),
                                   nn.BatchNorm2d(middle, eps=BN_EPS), prelu,
                                   nn.ConvTranspose2d(middle, cout, 3, stride=2, padding=1, output_padding=1),
                                   nn.BatchNorm2d(cout, eps=BN_EPS), prelu)

    def forward(self, x):
        return self.model(x)


class _OutputBlock(nn.Module):
    """depth_net.OutputBlock: `model.1` = reflect-padded conv to one channel (no bias), tanh."""

    def __init__(self, cin: int, k: int):
        super().__init__()
        self.model = nn.Sequential(_ReflectPad(k // 2), _conv(cin, 1, k, bias=False), nn.Tanh())

    def forward(self, x):
        return self.model(x)


class TorchDepthNet(nn.Module):
    """depth_net.DepthNet (shared PReLU). Returns four tanh maps, coarse (1/8) to fine.

    As in the official network, ONE `nn.PReLU` is built and placed in every block, so
    `state_dict()` lists it under all 18 official PReLU keys (`conv1.3.weight` and its
    17 aliases); `load_official` checks the aliases agree before loading.
    """

    def __init__(self, ngf: int = 64, in_channels: int = 1, skip_weight: float = 0.1):
        super().__init__()
        g, self.w = ngf, skip_weight
        prelu = nn.PReLU()
        self.conv1 = nn.Sequential(_ReflectPad(3), _conv(in_channels, g, 7, bias=False),
                                   nn.BatchNorm2d(g, eps=BN_EPS), prelu)
        self.conv2 = _EncoderBlock(g, 2 * g, 2 * g, prelu)
        self.conv3 = _EncoderBlock(2 * g, 4 * g, 4 * g, prelu)
        self.conv4 = _EncoderBlock(4 * g, 8 * g, 8 * g, prelu)
        self.center = nn.Sequential(*(_InceptionBlock(8 * g, prelu) for _ in range(3)),
                                    _DecoderUpBlock(8 * g, 8 * g, 4 * g, prelu))
        self.deconv4 = _DecoderUpBlock(8 * g, 8 * g, 2 * g, prelu)
        self.deconv3 = _DecoderUpBlock(4 * g + 1, 4 * g, g, prelu)
        self.deconv2 = _DecoderUpBlock(2 * g + 1, 2 * g, g // 2, prelu)
        self.output4 = _OutputBlock(8 * g, 3)
        self.output3 = _OutputBlock(4 * g + 1, 3)
        self.output2 = _OutputBlock(2 * g + 1, 3)
        self.output1 = _OutputBlock(g // 2 + 1, 7)

    def forward(self, x) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        if h % 16 or w % 16 or h < 96 or w < 96:
            raise ValueError(f"DepthNet input: image size {h}x{w} must be multiples of 16, at least 96.")
        pool, up = (lambda t: F.avg_pool2d(t, 2)), (lambda t: F.interpolate(t, scale_factor=2, mode="nearest"))
        conv1 = pool(self.conv1(x))
        conv2 = pool(self.conv2(conv1))
        conv3 = pool(self.conv3(conv2))
        center = self.center(pool(self.conv4(conv3)))
        skip = torch.cat([center, conv3 * self.w], 1)
        out4 = self.output4(skip)
        skip = torch.cat([self.deconv4(skip), conv2 * (self.w * 0.5), up(out4)], 1)
        out3 = self.output3(skip)
        skip = torch.cat([self.deconv3(skip), conv1 * (self.w * 0.1), up(out3)], 1)
        out2 = self.output2(skip)
        out1 = self.output1(torch.cat([self.deconv2(skip), up(out2)], 1))
        return [out4, out3, out2, out1]


# --------------------------------------------------------------------------- the whole network
class TorchS2RDepthNet(nn.Module):
    """models.S2RDepthNet in eval mode, NCHW. `forward` gives the finest depth (N, 1, H, W)."""

    def __init__(self, encoder_dim: int = 64, depth_ngf: int = 64, dsa_channels: Sequence[int] = DRN_D22_CHANNELS):
        super().__init__()
        self.struct_encoder = TorchStructureEncoder(encoder_dim)
        self.struct_decoder = TorchStructureDecoder(4 * encoder_dim)
        self.dsa = TorchDepthSpecificAttention(dsa_channels)
        self.depth_net = TorchDepthNet(depth_ngf)

    def outputs(self, image_nchw: torch.Tensor) -> dict:
        """The intermediate maps too, named as S2RDepthNet's output dict (NCHW)."""
        code = self.struct_encoder(image_nchw)
        structure = self.struct_decoder(code)
        attention = self.dsa(image_nchw)
        dss = attention * structure
        return {"struct_code": code, "structure_map": structure, "attention_map": attention,
                "depth_specific_structure": dss, "depth": self.depth_net(dss)}

    def forward(self, image_nchw: torch.Tensor) -> torch.Tensor:
        structure = self.struct_decoder(self.struct_encoder(image_nchw))
        return self.depth_net(self.dsa(image_nchw) * structure)[-1]


def load_official(module: nn.Module, state_dict: Mapping[str, np.ndarray]) -> nn.Module:
    """Load one official state dict ({key: array}, `module.` prefix allowed) with strict=True.

    Keys that name one shared tensor (DepthNet's PReLU aliases) must carry equal
    values: `load_state_dict` would otherwise keep whichever it copied last. A
    missing alias is filled from its group, a missing `num_batches_tracked` (older
    checkpoints; unused in eval) from the module. Everything else must match exactly.
    """
    sd = {k: torch.as_tensor(np.asarray(v)) for k, v in strip_prefix(state_dict).items()}
    own = module.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    for key, tensor in own.items():
        groups.setdefault(id(tensor), []).append(key)
    for keys in groups.values():
        present = [k for k in keys if k in sd]
        if len(keys) < 2 or not present:
            continue
        first = sd[present[0]]
        differ = [k for k in present[1:] if not torch.equal(sd[k], first)]
        if differ:
            raise ValueError(f"keys {present} alias one shared parameter but differ: "
                             + ", ".join(f"{k}={sd[k].tolist()}" for k in [present[0]] + differ))
        sd.update({k: first for k in keys if k not in sd})
    for key, tensor in own.items():
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = tensor.detach().clone()
    module.load_state_dict(sd, strict=True)
    return module


def from_state_dicts(state_dicts: Mapping[str, Mapping[str, np.ndarray]]) -> TorchS2RDepthNet:
    """The eval-mode network from the four official state dicts ('struct_encoder',
    'struct_decoder', 'dsa', 'depth_net'); widths are read off the weights' shapes."""
    sds = {name: strip_prefix(state_dicts[name]) for name in ("struct_encoder", "struct_decoder", "dsa", "depth_net")}
    dsa = sds["dsa"]
    # DRN_D22_CHANNELS order: levels 0 (= 1), 2, 3, 4, 5, 6, 7, 8 of the trunk.
    convs = ("0.0", "2.0", "3.0.conv1", "4.0.conv1", "5.0.conv1", "6.0.conv1", "7.0", "8.0")
    channels = [int(np.shape(dsa[f"E.base.{c}.weight"])[0]) for c in convs]
    net = TorchS2RDepthNet(encoder_dim=int(np.shape(sds["struct_encoder"]["conv.conv.weight"])[0]),
                           depth_ngf=int(np.shape(sds["depth_net"]["conv1.1.weight"])[0]),
                           dsa_channels=channels)
    for name, sd in sds.items():
        load_official(getattr(net, name), sd)
    return net.eval()
