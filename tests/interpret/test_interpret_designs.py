"""Existing designs as TNN expressions: equality with the PyTorch modules (float64), and round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tnn.algebra import conv_einsum
from tnn.interpret import (
    as_conv_einsum,
    bottleneck_as_conv_einsum,
    bottleneck_to_tnn,
    conv2d_as_conv_einsum,
    conv2d_to_tnn,
    depthwise_separable_as_conv_einsum,
    depthwise_separable_to_tnn,
    group_conv_as_conv_einsum,
    group_conv_to_tnn,
    igc_as_conv_einsum,
    igc_block,
    igc_to_tnn,
    linear_as_conv_einsum,
    linear_to_tnn,
    resnext_as_conv_einsum,
    resnext_to_tnn,
    spatially_separable_as_conv_einsum,
    spatially_separable_to_tnn,
    tnn_to_bottleneck,
    tnn_to_conv2d,
    tnn_to_depthwise_separable,
    tnn_to_group_conv,
    tnn_to_igc,
    tnn_to_linear,
    tnn_to_resnext,
    tnn_to_spatially_separable,
)
from tnn.nn import TensorialConv2d, TNNLayer

D = torch.float64


def prepared(block: nn.Module) -> nn.Module:
    """Random weights, biases and BatchNorm statistics; eval mode; float64."""
    block = block.double().eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return block


def evaluate(expr, x: torch.Tensor) -> torch.Tensor:
    spec, operands, options = expr
    return expr.unfold(conv_einsum(spec, expr.fold(x), *operands, **options)) + expr.offset(x)


def check(block: nn.Module, expr, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref = block(x)
        torch.testing.assert_close(evaluate(expr, x), ref, rtol=1e-10, atol=1e-10)
        auto = as_conv_einsum(block)
        assert auto.spec == expr.spec and auto.format == expr.format
        torch.testing.assert_close(auto(x), ref, rtol=1e-10, atol=1e-10)


def close(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- plain layers
@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 0, 1), (2, 1, 1), (1, 2, 2), (2, (1, 2), 1)])
def test_conv2d(stride, padding, dilation) -> None:
    conv = prepared(nn.Conv2d(3, 5, (3, 2), stride=stride, padding=padding, dilation=dilation))
    x = torch.randn(2, 3, 9, 8, dtype=D)
    expr = conv2d_as_conv_einsum(conv)
    assert expr.spec == "bshw,tshw->bthw|hw" and expr.format == "dense"
    check(conv, expr, x)
    layer = conv2d_to_tnn(conv)
    assert isinstance(layer, TNNLayer)
    close(layer, conv, x)
    close(tnn_to_conv2d(layer), conv, x)


def test_conv2d_with_batchnorm_and_circular_padding() -> None:
    block = prepared(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False), nn.BatchNorm2d(4))
    )
    x = torch.randn(2, 3, 6, 6, dtype=D)
    check(block, conv2d_as_conv_einsum(block), x)
    layer = conv2d_to_tnn(block)
    close(layer, block, x)
    back = tnn_to_conv2d(layer)
    assert back.padding_mode == "circular"
    close(back, block, x)


def test_linear() -> None:
    lin = prepared(nn.Linear(6, 4))
    x = torch.randn(5, 6, dtype=D)
    expr = linear_as_conv_einsum(lin)
    assert expr.spec == "bs,ts->bt"
    check(lin, expr, x)
    close(tnn_to_linear(linear_to_tnn(lin)), lin, x)


# --------------------------------------------------------------------------- group convolution
@pytest.mark.parametrize(("cin", "cout", "groups"), [(6, 4, 2), (4, 8, 4), (6, 6, 3)])
def test_group_conv(cin, cout, groups) -> None:
    conv = prepared(nn.Conv2d(cin, cout, 3, padding=1, stride=(1, 2), groups=groups))
    x = torch.randn(2, cin, 7, 7, dtype=D)
    expr = group_conv_as_conv_einsum(conv)
    assert expr.display == "b(gs)hw,gtshw->b(gt)hw|hw" and expr.in_folds == (groups, cin // groups)
    check(conv, expr, x)
    tnn = group_conv_to_tnn(conv)
    close(tnn, conv, x)
    back = tnn_to_group_conv(tnn)
    assert back.groups == groups
    close(back, conv, x)


# --------------------------------------------------------------------------- depthwise separable <-> cp
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_separable_two_convs(multiplier) -> None:
    s, t = 4, 6
    block = prepared(
        nn.Sequential(
            nn.Conv2d(s, s * multiplier, 3, padding=1, stride=2, groups=s, bias=False),
            nn.BatchNorm2d(s * multiplier),
            nn.Conv2d(s * multiplier, t, 1),
        )
    )
    x = torch.randn(2, s, 8, 8, dtype=D)
    expr = depthwise_separable_as_conv_einsum(block)
    assert expr.spec == "bshw,smhw,smt->bthw|hw" and expr.format == "cp"
    check(block, expr, x)
    # the BatchNorm shift sits before the unpadded 1x1 conv: still one bias vector
    cp = depthwise_separable_to_tnn(block)
    assert isinstance(cp, TensorialConv2d) and cp.format == "cp" and cp.ranks == (s * multiplier,)
    close(cp, block, x)
    back = tnn_to_depthwise_separable(cp)
    assert [m.groups for m in back] == [1, s * multiplier, 1]
    close(back, block, x)


def test_depthwise_separable_pointwise_first_is_cp() -> None:
    s, r, t = 5, 3, 4
    block = prepared(
        nn.Sequential(
            nn.Conv2d(s, r, 1, bias=False),
            nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False),
            nn.Conv2d(r, t, 1),
        )
    )
    x = torch.randn(2, s, 6, 7, dtype=D)
    expr = depthwise_separable_as_conv_einsum(block)
    assert expr.spec == "bshw,sr,rmhw,rmt->bthw|hw"
    check(block, expr, x)
    cp = depthwise_separable_to_tnn(block)
    assert cp.ranks == (r,)
    close(cp, block, x)
    close(tnn_to_depthwise_separable(cp), block, x)


def test_cp_layer_roundtrip_through_depthwise_separable() -> None:
    layer = TensorialConv2d(4, 6, 3, format="cp", rank=5, padding=1, dtype=D)
    x = torch.randn(2, 4, 6, 6, dtype=D)
    block = tnn_to_depthwise_separable(layer)
    close(block, layer, x)
    close(depthwise_separable_to_tnn(block), layer, x)


# --------------------------------------------------------------------------- bottleneck <-> tk
def test_bottleneck_is_tucker2() -> None:
    s, r, q, t = 8, 3, 4, 6
    block = prepared(
        nn.Sequential(
            nn.Conv2d(s, r, 1, bias=False),
            nn.Conv2d(r, q, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(q),
            nn.Conv2d(q, t, 1),
            nn.BatchNorm2d(t),
        )
    )
    x = torch.randn(2, s, 9, 9, dtype=D)
    expr = bottleneck_as_conv_einsum(block)
    assert expr.spec == "bshw,sr,rqhw,qt->bthw|hw" and expr.format == "tk"
    check(block, expr, x)
    tk = bottleneck_to_tnn(block)
    assert tk.format == "tk" and sorted(tk.ranks) == [r, q]
    close(tk, block, x)
    close(tnn_to_bottleneck(tk), block, x)


def test_bottleneck_intermediate_bias_before_padding() -> None:
    # a bias before the padded kxk conv: exact as an expression (offset map), but not one bias vector
    block = prepared(nn.Sequential(nn.Conv2d(6, 3, 1), nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 6, 1)))
    x = torch.randn(2, 6, 5, 5, dtype=D)
    check(block, bottleneck_as_conv_einsum(block), x)
    with pytest.raises(ValueError, match="zero padding"):
        bottleneck_to_tnn(block)


# --------------------------------------------------------------------------- k x 1 + 1 x k <-> svd
def test_spatially_separable_is_svd() -> None:
    s, r, t = 4, 3, 5
    block = prepared(
        nn.Sequential(
            nn.Conv2d(s, r, (5, 1), padding=(2, 0), stride=(2, 1), bias=False),
            nn.Conv2d(r, t, (1, 3), padding=(0, 1), dilation=(1, 2)),
        )
    )
    x = torch.randn(2, s, 9, 10, dtype=D)
    expr = spatially_separable_as_conv_einsum(block)
    assert expr.spec == "bshw,srh,rtw->bthw|hw" and expr.format == "svd"
    check(block, expr, x)
    svd = spatially_separable_to_tnn(block)
    assert svd.format == "svd" and svd.ranks == (r,)
    close(svd, block, x)
    close(tnn_to_spatially_separable(svd), block, x)


def test_inception_columns_first() -> None:
    block = prepared(
        nn.Sequential(nn.Conv2d(3, 4, (1, 7), padding=(0, 3)), nn.Conv2d(4, 5, (7, 1), padding=(3, 0)))
    )
    x = torch.randn(2, 3, 8, 8, dtype=D)
    expr = spatially_separable_as_conv_einsum(block)
    assert expr.spec == "bshw,srw,rth->bthw|hw"
    check(block, expr, x)
    with pytest.raises(ValueError, match="k x 1 filter first"):
        spatially_separable_to_tnn(block)


# --------------------------------------------------------------------------- interleaved group convolutions
@pytest.mark.parametrize("shuffle_back", [True, False])
def test_igc(shuffle_back) -> None:
    lsize, m = 3, 2
    block = prepared(igc_block(lsize, m, kernel_size=3, padding=1, bias=True, shuffle_back=shuffle_back))
    x = torch.randn(2, lsize * m, 6, 6, dtype=D)
    expr = igc_as_conv_einsum(block)
    assert expr.in_folds == (lsize, m)
    assert expr.display == (
        "b(lm)hw,lnmhw,nkl->b(kn)hw|hw" if shuffle_back else "b(lm)hw,lnmhw,nkl->b(nk)hw|hw"
    )
    check(block, expr, x)
    tnn = igc_to_tnn(block)
    close(tnn, block, x)
    back = tnn_to_igc(tnn)
    close(back, block, x)


# ------------------------------------------------------------------ outside the interpretation
def test_nonlinearity_is_rejected() -> None:
    block = nn.Sequential(nn.Conv2d(3, 3, 3, groups=3), nn.ReLU(), nn.Conv2d(3, 4, 1))
    with pytest.raises(ValueError, match="ReLU.*nonlinearities break exact equality"):
        as_conv_einsum(block)


def test_training_batchnorm_is_rejected() -> None:
    block = nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        as_conv_einsum(block)


def test_design_mismatches_name_the_problem() -> None:
    with pytest.raises(ValueError, match="pointwise 1x1"):
        bottleneck_as_conv_einsum(nn.Sequential(nn.Conv2d(4, 2, 3), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 4, 1)))
    with pytest.raises(ValueError, match="depthwise"):
        depthwise_separable_as_conv_einsum(nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 2, 1)))
    with pytest.raises(ValueError, match="k x 1 and a 1 x k"):
        spatially_separable_as_conv_einsum(nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 2, 3)))
    with pytest.raises(ValueError, match="groups"):
        conv2d_as_conv_einsum(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="format 'tk'"):
        tnn_to_bottleneck(TensorialConv2d(4, 4, 3, format="cp", rank=2))
    with pytest.raises(TypeError, match="TNNLayer"):
        tnn_to_conv2d(nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="spec"):
        tnn_to_conv2d(TNNLayer("bs,ts->bt", dict(s=2, t=2)))


def test_unsupported_chains_and_expanding_bottleneck() -> None:
    with pytest.raises(ValueError, match="supported designs"):
        as_conv_einsum(nn.Sequential(*(nn.Conv2d(2, 2, 1) for _ in range(4))))
    with pytest.raises(ValueError, match="no interpretation"):
        as_conv_einsum(nn.Sequential(nn.Conv2d(2, 2, 1), nn.Linear(2, 2)))
    expanding = nn.Sequential(
        nn.Conv2d(4, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.Conv2d(8, 4, 1)
    )
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(as_conv_einsum(expanding)(x), expanding(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="do not fit format 'tk'"):
        bottleneck_to_tnn(expanding)


def test_resnext_bottleneck_is_block_term_tucker() -> None:
    s, g, r, q, t = 6, 3, 2, 2, 5
    block = prepared(
        nn.Sequential(
            nn.Conv2d(s, g * r, 1, bias=False),
            nn.Conv2d(g * r, g * q, 3, padding=1, stride=2, groups=g, bias=False),
            nn.Conv2d(g * q, t, 1),
            nn.BatchNorm2d(t),
        )
    )
    x = torch.randn(2, s, 7, 7, dtype=D)
    expr = resnext_as_conv_einsum(block)
    assert expr.spec == "bshw,sgr,gqrhw,gqt->bthw|hw" and expr.format == "block-term Tucker"
    check(block, expr, x)
    layer = resnext_to_tnn(block)
    close(layer, block, x)
    back = tnn_to_resnext(layer)
    assert back[1].groups == g
    close(back, block, x)
