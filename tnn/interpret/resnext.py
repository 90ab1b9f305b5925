"""The ResNeXt bottleneck (1x1, grouped kxk, 1x1) as a block-term Tucker layer.

``Conv2d(S, g*R, 1)``, ``Conv2d(g*R, g*Q, k, groups=g)``, ``Conv2d(g*Q, T, 1)`` without nonlinearities::

    bshw, sgr, gqrhw, gqt -> bthw | hw

``A[s, g, r]`` (first 1x1), ``G[g, q, r, h, w]`` (the grouped conv: a partial outer product over the
cardinality index ``g``), ``C[g, q, t]`` (last 1x1). Summing over ``g`` makes the kernel a sum of ``g``
Tucker-2 terms — a block-term decomposition, Tucker-2 (``tk``) when ``g = 1``. There is no compression
format for it; the tensorial layer is a :class:`TNNLayer` with this spec.
"""

from __future__ import annotations

from torch import nn

from tnn.interpret._common import conv_stages, new_conv, new_tnn_layer, require, tnn_layer_conv_args
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import Stage, constant_offset, parse_block
from tnn.nn.tnn_layer import TNNLayer

__all__ = ["resnext_spec", "resnext_as_conv_einsum", "resnext_to_tnn", "tnn_to_resnext"]

_SPEC = "bshw,sgr,gqrhw,gqt->bthw|hw"


def resnext_spec() -> str:
    """``"bshw,sgr,gqrhw,gqt->bthw|hw"``."""
    return _SPEC


def _expression(stages: list[Stage]) -> TNNExpression:
    first, core, last = conv_stages(stages, 3, "ResNeXt bottleneck")
    for conv, role in ((first, "first"), (last, "last")):
        require(
            conv.is_pointwise and conv.groups == 1,
            f"{conv.name!r} must be a pointwise 1x1 convolution (stride 1, no padding, groups=1) as the "
            f"{role} layer of a ResNeXt bottleneck",
        )
    g = core.groups
    r, q = core.in_channels // g, core.out_channels // g
    a = first.weight[:, :, 0, 0].reshape(g, r, -1).permute(2, 0, 1)  # [s, g, r]
    kernel = core.weight.reshape(g, q, r, *core.kernel_size)  # [g, q, r, h, w]
    c = last.weight[:, :, 0, 0].reshape(-1, g, q).permute(1, 2, 0)  # [g, q, t]
    return TNNExpression(
        _SPEC, (a, kernel, c), core.conv_options(), _SPEC, "block-term Tucker", (), tuple(stages)
    )


def resnext_as_conv_einsum(block: nn.Module) -> TNNExpression:
    """The ``Sequential`` of the three convolutions (BatchNorms folded) as a TNN expression."""
    return _expression(parse_block(block))


def resnext_to_tnn(block: nn.Module) -> TNNLayer:
    """An equivalent :class:`TNNLayer` with spec ``"bshw,sgr,gqrhw,gqt->bthw|hw"`` (bias over ``t``)."""
    stages = parse_block(block)
    expr = _expression(stages)
    return new_tnn_layer(_SPEC, list(expr.operands), constant_offset(stages), expr.options)


def tnn_to_resnext(layer: TNNLayer) -> nn.Sequential:
    """The three ``nn.Conv2d`` s equivalent to a :class:`TNNLayer` with the ResNeXt spec."""
    kwargs = tnn_layer_conv_args(layer, _SPEC)
    a, kernel, c = (k.detach() for k in layer.kernels)
    s, g, r = a.shape
    _, q, _, kh, kw = kernel.shape
    require(layer.bias is None or layer.bias_indices == "t", "the layer's bias must span the index 't'")
    bias = layer.bias.detach() if layer.bias is not None else None
    return nn.Sequential(
        new_conv(a.permute(1, 2, 0).reshape(g * r, s, 1, 1), None),
        new_conv(kernel.reshape(g * q, r, kh, kw), None, groups=g, **kwargs),
        new_conv(c.permute(2, 0, 1).reshape(-1, g * q, 1, 1), bias),
    )
