"""Plain ``nn.Conv2d`` and ``nn.Linear`` as TNN expressions (the uncompressed, "dense" format).

=============  ==========================  ==========================
layer          conv_einsum                 kernel
=============  ==========================  ==========================
``Conv2d``     ``bshw,tshw->bthw|hw``      ``weight[t, s, h, w]``
``Linear``     ``bs,ts->bt``               ``weight[t, s]``
=============  ==========================  ==========================

A ``Conv2d`` with ``groups > 1`` is a group convolution (:mod:`tnn.interpret.group`).
"""

from __future__ import annotations

import torch
from torch import nn

from tnn.interpret._common import conv_stages, new_conv, new_tnn_layer, require, tnn_layer_conv_args
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import ConvStage, LinearStage, Stage, constant_offset, parse_block
from tnn.nn.tnn_layer import TNNLayer

__all__ = [
    "conv2d_spec",
    "linear_spec",
    "conv2d_as_conv_einsum",
    "linear_as_conv_einsum",
    "conv2d_to_tnn",
    "tnn_to_conv2d",
    "linear_to_tnn",
    "tnn_to_linear",
]

_CONV = "bshw,tshw->bthw|hw"
_LINEAR = "bs,ts->bt"


def conv2d_spec() -> str:
    """``"bshw,tshw->bthw|hw"``: input ``x[b, s, h, w]``, kernel ``K[t, s, h, w]`` (PyTorch layout)."""
    return _CONV


def linear_spec() -> str:
    """``"bs,ts->bt"``: input ``x[b, s]``, weight ``W[t, s]`` (PyTorch layout)."""
    return _LINEAR


def _conv_expression(stages: list[Stage]) -> TNNExpression:
    (conv,) = conv_stages(stages, 1, "plain convolution")
    require(conv.groups == 1, f"{conv.name!r} has groups={conv.groups}: interpret it as a group convolution")
    return TNNExpression(_CONV, (conv.weight,), conv.conv_options(), _CONV, "dense", (), tuple(stages))


def _linear_expression(stages: list[Stage]) -> TNNExpression:
    require(len(stages) == 1 and isinstance(stages[0], LinearStage), "expected a single nn.Linear")
    return TNNExpression(_LINEAR, (stages[0].weight,), {}, _LINEAR, "dense", (), tuple(stages))


def conv2d_as_conv_einsum(conv: nn.Module) -> TNNExpression:
    """The ``Conv2d`` (optionally followed by an eval-mode ``BatchNorm2d``) as a TNN expression."""
    return _conv_expression(parse_block(conv))


def linear_as_conv_einsum(linear: nn.Linear) -> TNNExpression:
    """The ``Linear`` layer as a TNN expression (2-D inputs ``(B, S)``)."""
    return _linear_expression(parse_block(linear))


def conv2d_to_tnn(conv: nn.Module) -> TNNLayer:
    """An equivalent :class:`TNNLayer` with spec ``"bshw,tshw->bthw|hw"`` (BatchNorm folded in)."""
    expr = conv2d_as_conv_einsum(conv)
    st: ConvStage = expr.stages[0]  # type: ignore[assignment]
    return new_tnn_layer(_CONV, [st.weight], constant_offset(expr.stages), expr.options)


def tnn_to_conv2d(layer: TNNLayer) -> nn.Conv2d:
    """The ``nn.Conv2d`` equivalent to a :class:`TNNLayer` with spec ``"bshw,tshw->bthw|hw"``."""
    kwargs = tnn_layer_conv_args(layer, _CONV)
    require(layer.bias is None or layer.bias_indices == "t", "the layer's bias must span the index 't'")
    bias = layer.bias.detach() if layer.bias is not None else None
    return new_conv(layer.kernels[0].detach(), bias, **kwargs)


def linear_to_tnn(linear: nn.Linear) -> TNNLayer:
    """An equivalent :class:`TNNLayer` with spec ``"bs,ts->bt"``."""
    expr = linear_as_conv_einsum(linear)
    return new_tnn_layer(_LINEAR, [expr.operands[0]], constant_offset(expr.stages))


def tnn_to_linear(layer: TNNLayer) -> nn.Linear:
    """The ``nn.Linear`` equivalent to a :class:`TNNLayer` with spec ``"bs,ts->bt"``."""
    tnn_layer_conv_args(layer, _LINEAR)
    weight = layer.kernels[0].detach()
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=layer.bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if layer.bias is not None:
            linear.bias.copy_(layer.bias)
    return linear
