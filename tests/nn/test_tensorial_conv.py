"""TensorialConv2d against nn.Conv2d on the layer shapes of LeNet-5, ResNet-32 and ResNet-50."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tnn.formats import FORMATS, get_format
from tnn.nn import TensorialConv2d

# name: (in, out, kernel, stride, padding, dilation, groups, input size)
LAYERS = {
    "lenet-conv1": (1, 20, 5, 1, 0, 1, 1, 12),
    "lenet-conv2": (20, 50, 5, 1, 0, 1, 1, 12),
    "lenet5-c3": (6, 16, 5, 1, 0, 1, 1, 10),
    "resnet32-stem": (3, 16, 3, 1, 1, 1, 1, 8),
    "resnet32-16": (16, 16, 3, 1, 1, 1, 1, 8),
    "resnet32-down": (16, 32, 3, 2, 1, 1, 1, 8),
    "resnet32-32-64": (32, 64, 3, 2, 1, 1, 1, 8),
    "resnet32-64": (64, 64, 3, 1, 1, 1, 1, 6),
    "resnet50-1x1": (256, 64, 1, 1, 0, 1, 1, 5),
    "resnet50-3x3-s2": (128, 128, 3, 2, 1, 1, 1, 7),
    "resnet50-stem": (3, 64, 7, 2, 3, 1, 1, 11),
    "dilated": (64, 64, 3, 1, 2, 2, 1, 9),
    "grouped": (128, 128, 3, 1, 1, 1, 32, 6),
}


def _rate(fmt_name: str, module: nn.Conv2d, wanted: float = 0.2) -> float:
    """``wanted``, or a little above the format's smallest possible rate on this layer."""
    fmt = get_format(fmt_name)
    geom = fmt.geometry(module.out_channels, module.in_channels, module.kernel_size, module.groups)
    return min(1.0, max(wanted, 1.05 * fmt.min_params(geom) / geom.dense_params))


def _dense(layer: str) -> tuple[nn.Conv2d, torch.Tensor]:
    cin, cout, k, s, p, d, g, n = LAYERS[layer]
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, dtype=torch.float64)
    return conv, torch.randn(1, cin, n, n, dtype=torch.float64)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_layer_matches_dense(fmt: str, layer: str) -> None:
    conv, x = _dense(layer)
    rate = _rate(fmt, conv)
    tconv = TensorialConv2d.from_dense(conv, format=fmt, rate=rate, init="random")
    # the parameter budget
    assert tconv.weight_params <= math.floor(rate * conv.weight.numel() + 1e-9)
    assert tconv.compression_rate <= rate
    assert tconv.weight_params == get_format(fmt).param_count(tconv.geometry, tconv.ranks)
    # forward equals the reconstructed dense conv, in both evaluation modes
    dense = tconv.to_dense()
    expected = dense(x)
    assert expected.shape == conv(x).shape
    torch.testing.assert_close(tconv(x), expected, rtol=1e-9, atol=1e-10)
    other = "dense" if tconv.plan(tuple(x.shape)).mode == "factors" else "factors"
    tconv.evaluation = other
    torch.testing.assert_close(tconv(x), expected, rtol=1e-9, atol=1e-10)
    # gradients reach every factor and the bias
    tconv.evaluation = "factors"
    tconv(x).square().sum().backward()
    for p in tconv.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_from_dense_copies_configuration_and_bias() -> None:
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=True)
    t = TensorialConv2d.from_dense(conv, format="tk", rate=0.3)
    assert (t.stride, t.padding, t.dilation, t.groups) == ((2, 2), (1, 1), (1, 1), 1)
    torch.testing.assert_close(t.bias, conv.bias)
    dense = t.to_dense()
    assert isinstance(dense, nn.Conv2d) and dense.stride == (2, 2) and dense.padding == (1, 1)
    no_bias = TensorialConv2d.from_dense(nn.Conv2d(4, 4, 3, bias=False), format="cp", rate=0.5)
    assert no_bias.bias is None and no_bias.to_dense().bias is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_from_dense_error_does_not_increase_with_rate(fmt: str) -> None:
    als = fmt in ("cp", "rcp", "tr", "rtr")  # slow decompositions: a smaller layer
    conv = nn.Conv2d(6, 8, 3, dtype=torch.float64) if als else nn.Conv2d(8, 12, 3, dtype=torch.float64)
    errors = []
    for rate in (0.15, 0.3, 0.6) if als else (0.1, 0.2, 0.35, 0.6):
        t = TensorialConv2d.from_dense(conv, format=fmt, rate=rate)
        weight = conv.weight.detach()
        errors.append(float((t.dense_weight().detach() - weight).norm() / weight.norm()))
    slack = 1e-3 if als else 1e-9  # ALS is not exactly monotone
    assert all(b <= a + slack for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0]


def test_from_dense_recovers_low_rank_kernels() -> None:
    gen = torch.Generator().manual_seed(0)
    # CP rank 3 kernel
    a, b, c = (torch.randn(3, n, generator=gen, dtype=torch.float64) for n in (8, 9, 12))
    kernel = torch.einsum("rs,rk,rt->tsk", a, b, c).reshape(12, 8, 3, 3)
    conv = nn.Conv2d(8, 12, 3, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(kernel)
    t = TensorialConv2d.from_dense(conv, format="cp", rank=3)
    assert float((t.dense_weight().detach() - kernel).norm() / kernel.norm()) < 1e-6
    # Tucker-2 kernel of ranks (3, 4)
    core = torch.randn(3, 4, 3, 3, generator=gen, dtype=torch.float64)
    u = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    kernel = torch.einsum("rqhw,sr,tq->tshw", core, u, v)
    with torch.no_grad():
        conv.weight.copy_(kernel)
    t = TensorialConv2d.from_dense(conv, format="tk", rank=(3, 4))
    torch.testing.assert_close(t.dense_weight(), kernel)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
def test_padding(padding_mode: str, padding: object) -> None:
    conv = nn.Conv2d(4, 6, (3, 4), padding=padding, padding_mode=padding_mode, dtype=torch.float64)
    t = TensorialConv2d.from_dense(conv, format="rtt", rate=0.5, m=2)
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64)
    for mode in ("factors", "dense"):
        t.evaluation = mode
        torch.testing.assert_close(t(x), t.to_dense()(x))


def test_unbatched_input_and_m() -> None:
    conv = nn.Conv2d(8, 12, 3, padding=1, dtype=torch.float64)
    t = TensorialConv2d.from_dense(conv, format="rcp", rate=0.4, m=2)
    assert t.geometry.m == 2 and t.geometry.in_folds == (2, 4) and t.geometry.out_folds == (3, 4)
    x = torch.randn(8, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(t(x), t.to_dense()(x))


def test_state_dict_pickle_and_deepcopy() -> None:
    conv = nn.Conv2d(16, 16, 3, padding=1)
    t = TensorialConv2d.from_dense(conv, format="rtr", rate=0.2)
    x = torch.randn(2, 16, 6, 6)
    y = t(x)  # fills the plan cache
    state = t.state_dict()
    assert set(state) == {f"factors.{i}" for i in range(len(t.factors))} | {"bias"}
    fresh = TensorialConv2d(16, 16, 3, format="rtr", rank=t.ranks, padding=1)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), y)
    buf = io.BytesIO()
    torch.save(t, buf)
    buf.seek(0)
    torch.testing.assert_close(torch.load(buf, weights_only=False)(x), y)
    torch.testing.assert_close(pickle.loads(pickle.dumps(t))(x), y)
    torch.testing.assert_close(copy.deepcopy(t)(x), y)


def test_repr_flops_and_plan() -> None:
    t = TensorialConv2d(16, 32, 3, format="tt", rate=0.1, padding=1)
    text = repr(t)
    assert "format='tt'" in text and f"ranks={t.ranks}" in text and "rate=0.0" in text
    plan = t.plan((128, 16, 32, 32))
    assert plan.mode in ("factors", "dense") and plan.flops == min(plan.factors_flops, plan.dense_flops)
    assert t.flops((16, 32, 32)) == t.flops((1, 16, 32, 32)) > 0
    assert t.flops((8, 16, 32, 32)) > t.flops((1, 16, 32, 32))
    t.evaluation = "dense"
    assert t.plan((2, 16, 8, 8)).mode == "dense"


def test_random_init_has_default_conv_statistics() -> None:
    torch.manual_seed(0)
    variances = [TensorialConv2d(64, 64, 3, format="rtt", rate=0.2).dense_weight().var() for _ in range(10)]
    ratio = float(torch.stack(variances).mean()) * 3 * 64 * 9
    assert 0.6 < ratio < 1.6


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown format 'foo'"):
        TensorialConv2d(4, 4, 3, format="foo", rate=0.5)
    with pytest.raises(ValueError, match="rate must be a finite float in \\(0, 1\\], got 1.5"):
        TensorialConv2d(4, 4, 3, format="cp", rate=1.5)
    with pytest.raises(ValueError, match="give a compression rate"):
        TensorialConv2d(4, 4, 3, format="cp")
    with pytest.raises(ValueError, match="format 'tk': expected 2 rank"):
        TensorialConv2d(4, 4, 3, format="tk", rank=(1, 2, 3))
    with pytest.raises(ValueError, match="smallest possible rate is"):
        TensorialConv2d(32, 32, 3, format="tt", rate=0.1, groups=32)
    with pytest.raises(ValueError, match="padding_mode"):
        TensorialConv2d(4, 4, 3, format="cp", rate=0.5, padding_mode="mirror")
    with pytest.raises(TypeError, match="expects an nn.Conv2d"):
        TensorialConv2d.from_dense(nn.Linear(3, 4), format="cp", rate=0.5)
    with pytest.raises(ValueError, match="init must be one of"):
        TensorialConv2d.from_dense(nn.Conv2d(4, 4, 3), format="cp", rate=0.5, init="zeros")
    t = TensorialConv2d(4, 4, 3, format="cp", rate=0.5)
    with pytest.raises(ValueError, match=r"expected input \(B, 4, H, W\)"):
        t(torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match="evaluation must be one of"):
        t.evaluation = "fast"


@settings(max_examples=20, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    groups=st.integers(1, 3),
    cin_g=st.integers(1, 7),
    cout_g=st.integers(1, 7),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    m=st.integers(1, 3),
    fraction=st.floats(0.0, 1.0),
)
def test_random_layers_match_dense(fmt: str, groups: int, cin_g: int, cout_g: int, kh: int, kw: int,
                                   stride: int, padding: int, dilation: int, m: int, fraction: float) -> None:
    """Arbitrary (prime, unit) channel counts, kernels, groups and folds: forward == to_dense()."""
    reshaped = get_format(fmt).reshaped
    if not reshaped:
        m = 1
    elif kh * kw == 1 and fmt in ("rtt", "rtr") and m == 1:
        m = 2
    geom = get_format(fmt).geometry(cout_g * groups, cin_g * groups, (kh, kw), groups, m)
    min_rate = get_format(fmt).min_params(geom) / geom.dense_params
    if min_rate > 1:
        return
    rate = min(1.0, min_rate + fraction * (1 - min_rate))
    layer = TensorialConv2d(cin_g * groups, cout_g * groups, (kh, kw), format=fmt, rate=rate, stride=stride,
                            padding=padding, dilation=dilation, groups=groups, m=m, dtype=torch.float64)
    assert layer.weight_params <= math.floor(rate * geom.dense_params + 1e-9)
    size = dilation * (max(kh, kw) - 1) + 2
    x = torch.randn(1, cin_g * groups, size, size + 1, dtype=torch.float64)
    expected = layer.to_dense()(x)
    for mode in ("factors", "dense"):
        layer.evaluation = mode
        torch.testing.assert_close(layer(x), expected, rtol=1e-9, atol=1e-10)
