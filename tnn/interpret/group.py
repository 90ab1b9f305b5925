"""Group convolution (AlexNet, ResNeXt; depthwise when ``S/g = 1``) as a partial outer product.

A ``Conv2d(S, T, k, groups=g)`` folds its channels as ``(g, S/g)`` and ``(g, T/g)``; the group index ``g``
is carried by the input, the kernel and the output — a partial outer product — while ``s`` is
contracted and ``h, w`` are convolved::

    b(gs)hw, gtshw -> b(gt)hw | hw        evaluated as  "bgshw,gtshw->bgthw|hw"

with kernel ``K[g, t, s, h, w] = weight[g*T/g + t, s, h, w]``. The tensorial layer is a
:class:`TNNLayer` between ``nn.Unflatten(1, (g, S/g))`` and ``nn.Flatten(1, 2)``.
"""

from __future__ import annotations

from torch import nn

from tnn.interpret._common import conv_stages, new_conv, new_tnn_layer, require, tnn_layer_conv_args
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import Stage, constant_offset, parse_block

__all__ = ["group_conv_spec", "group_conv_as_conv_einsum", "group_conv_to_tnn", "tnn_to_group_conv"]

_SPEC = "bgshw,gtshw->bgthw|hw"
_DISPLAY = "b(gs)hw,gtshw->b(gt)hw|hw"


def group_conv_spec() -> str:
    """``"bgshw,gtshw->bgthw|hw"`` (input channels folded as ``(g, S/g)``)."""
    return _SPEC


def _expression(stages: list[Stage]) -> TNNExpression:
    (conv,) = conv_stages(stages, 1, "group convolution")
    g = conv.groups
    t, s = conv.out_channels // g, conv.weight.shape[1]
    kernel = conv.weight.reshape(g, t, s, *conv.kernel_size)
    return TNNExpression(_SPEC, (kernel,), conv.conv_options(), _DISPLAY, "group", (g, s), tuple(stages))


def group_conv_as_conv_einsum(conv: nn.Module) -> TNNExpression:
    """A (grouped) ``Conv2d``, optionally with an eval-mode ``BatchNorm2d``, as a TNN expression."""
    return _expression(parse_block(conv))


def group_conv_to_tnn(conv: nn.Module) -> nn.Sequential:
    """``nn.Sequential(Unflatten(1, (g, S/g)), TNNLayer("bgshw,gtshw->bgthw|hw"), Flatten(1, 2))``."""
    expr = group_conv_as_conv_einsum(conv)
    bias = constant_offset(expr.stages)
    layer = new_tnn_layer(_SPEC, list(expr.operands), bias, expr.options)
    return nn.Sequential(nn.Unflatten(1, expr.in_folds), layer, nn.Flatten(1, 2))


def tnn_to_group_conv(block: nn.Sequential) -> nn.Conv2d:
    """The grouped ``nn.Conv2d`` equivalent to the output of :func:`group_conv_to_tnn`."""
    require(
        isinstance(block, nn.Sequential) and len(block) == 3,
        "expected Sequential(Unflatten, TNNLayer, Flatten)",
    )
    layer = block[1]
    kwargs = tnn_layer_conv_args(layer, _SPEC)
    kernel = layer.kernels[0].detach()
    g, t, s, kh, kw = kernel.shape
    require(layer.bias is None or layer.bias_indices == "gt", "the layer's bias must span the indices 'gt'")
    bias = layer.bias.detach().reshape(-1) if layer.bias is not None else None
    return new_conv(kernel.reshape(g * t, s, kh, kw), bias, groups=g, **kwargs)
