"""Dense FLOPs come from the algebra's cost model: ``dense_flops`` (compression reports) equals the
``conv_einsum`` FLOP count of the dense op, the closed form, and the dense part of a layer's plan."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from tnn.algebra import conv_einsum_path
from tnn.algebra.cost import DENSE_CONV_SPEC, DENSE_LINEAR_SPEC, dense_conv_flops, dense_linear_flops
from tnn.compression import dense_flops
from tnn.nn import TensorialConv2d

CONVS: list[dict[str, Any]] = [
    dict(in_channels=3, out_channels=16, kernel_size=3, padding=1),
    dict(in_channels=8, out_channels=16, kernel_size=3, stride=2, padding=1),
    dict(in_channels=8, out_channels=12, kernel_size=(3, 5), stride=(2, 1), padding=(0, 2)),
    dict(in_channels=8, out_channels=16, kernel_size=3, padding=2, dilation=2, groups=4),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding=1, groups=6),
    dict(in_channels=4, out_channels=8, kernel_size=1, stride=2),
    dict(in_channels=4, out_channels=6, kernel_size=2, padding="same"),
    dict(in_channels=4, out_channels=6, kernel_size=4, padding="same", dilation=(1, 2), groups=2),
    dict(in_channels=4, out_channels=6, kernel_size=5, padding="valid", padding_mode="circular"),
]
HW = (11, 14)


def _options(conv: nn.Conv2d) -> dict[str, Any]:
    padding = conv.padding if isinstance(conv.padding, str) else dict(zip("hw", conv.padding, strict=True))
    return {"padding": padding, "stride": dict(zip("hw", conv.stride, strict=True)),
            "dilation": dict(zip("hw", conv.dilation, strict=True))}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kwargs", CONVS, ids=str)
def test_conv_dense_flops_is_the_algebras_count(kwargs: dict[str, Any]) -> None:
    conv = nn.Conv2d(**kwargs)
    g, s, t = conv.groups, conv.in_channels, conv.out_channels
    shapes = [(1, g, s // g, *HW), (g, t // g, s // g, *conv.kernel_size)]
    _, info = conv_einsum_path(DENSE_CONV_SPEC, *shapes, **_options(conv))
    flops = dense_flops(conv, (s, *HW))
    assert flops == info.opt_flops
    # closed form on PyTorch's own output size: 2 x T x S/g x kh x kw x H' x W'
    with torch.no_grad():
        out_h, out_w = conv(torch.zeros(1, s, *HW)).shape[-2:]
    assert flops == 2 * t * (s // g) * math.prod(conv.kernel_size) * out_h * out_w
    assert dense_conv_flops(s, t, conv.kernel_size, HW, batch=3, groups=g, **_options(conv)) == 3 * flops


@pytest.mark.parametrize("input_shape", [(7,), (4, 7), (2, 3, 7)])
def test_linear_dense_flops_is_the_algebras_count(input_shape: tuple[int, ...]) -> None:
    linear = nn.Linear(7, 5)
    batch = math.prod(input_shape[:-1])
    _, info = conv_einsum_path(DENSE_LINEAR_SPEC, (batch, 7), (5, 7))
    assert dense_flops(linear, input_shape) == info.opt_flops == dense_linear_flops(7, 5, batch=batch)
    assert info.opt_flops == 2 * batch * 7 * 5


@pytest.mark.parametrize("kwargs", [CONVS[1], CONVS[2], CONVS[3]], ids=str)
def test_layer_plan_costs_its_dense_op_like_the_report(kwargs: dict[str, Any]) -> None:
    conv = nn.Conv2d(**kwargs)
    layer = TensorialConv2d.from_dense(conv, format="cp", rate=0.5, init="random")
    fmt = layer.format_object
    shapes = [tuple(p.shape) for p in layer.factors]
    _, rec = conv_einsum_path(fmt.kernel_equation(layer.geometry, layer.ranks), *shapes)
    plan = layer.plan((conv.in_channels, *HW))
    assert plan.dense_flops == rec.opt_flops + dense_flops(conv, (conv.in_channels, *HW))


def test_dense_flops_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match="nn.Conv2d or nn.Linear"):
        dense_flops(nn.ReLU(), (3, 4, 4))
