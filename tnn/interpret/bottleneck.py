"""The 1x1 - kxk - 1x1 bottleneck (ResNet) as the Tucker-2 (``tk``) format.

``Conv2d(S, R, 1)``, ``Conv2d(R, Q, k)``, ``Conv2d(Q, T, 1)`` without nonlinearities between them::

    bshw, sr, rqhw, qt -> bthw | hw

``A[s, r]`` (first 1x1), core ``G[r, q, h, w]`` (the kxk conv), ``C[q, t]`` (last 1x1) — exactly the Tucker-2
decomposition of the equivalent kernel ``K[t, s, h, w] = sum A[s, r] G[r, q, h, w] C[q, t]``.
"""

from __future__ import annotations

from torch import nn

from tnn.interpret._common import (
    conv_geometry,
    conv_stages,
    from_tensorial,
    new_conv,
    require,
    tensorial_conv_args,
    to_tensorial,
)
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import Stage, constant_offset, parse_block

__all__ = ["bottleneck_spec", "bottleneck_as_conv_einsum", "bottleneck_to_tnn", "tnn_to_bottleneck"]

_SPEC = "bshw,sr,rqhw,qt->bthw|hw"


def bottleneck_spec() -> str:
    """``"bshw,sr,rqhw,qt->bthw|hw"``."""
    return _SPEC


def _expression(stages: list[Stage]) -> TNNExpression:
    first, core, last = conv_stages(stages, 3, "bottleneck")
    for conv, role in ((first, "first"), (last, "last")):
        require(
            conv.is_pointwise and conv.groups == 1,
            f"{conv.name!r} must be a pointwise 1x1 convolution (stride 1, no padding, groups=1) as the "
            f"{role} layer of a bottleneck",
        )
    require(core.groups == 1, f"{core.name!r} has groups={core.groups}; a grouped core is a ResNeXt block")
    operands = (first.weight[:, :, 0, 0].T, core.weight.permute(1, 0, 2, 3), last.weight[:, :, 0, 0].T)
    return TNNExpression(_SPEC, operands, core.conv_options(), _SPEC, "tk", (), tuple(stages))


def bottleneck_as_conv_einsum(block: nn.Module) -> TNNExpression:
    """The ``Sequential`` of three convolutions (BatchNorms folded) as a TNN expression."""
    return _expression(parse_block(block))


def bottleneck_to_tnn(block: nn.Module) -> nn.Module:
    """An equivalent ``TensorialConv2d(format="tk")`` with ranks ``(R, Q)``.

    Raises ``ValueError`` when a nonzero bias precedes the padded core, or when ``R > S`` / ``Q > T`` (an
    expanding bottleneck exceeds the Tucker ranks the ``tk`` format accepts).
    """
    stages = parse_block(block)
    expr = _expression(stages)
    first, core, last = stages
    a, g, c = expr.operands
    return to_tensorial(
        "tk",
        [("sr", a), ("rqhw", g), ("qt", c)],
        conv_geometry(core),
        first.in_channels,
        last.out_channels,
        constant_offset(stages),
    )


def tnn_to_bottleneck(layer: nn.Module) -> nn.Sequential:
    """A ``TensorialConv2d(format="tk")`` as 1x1 -> kxk -> 1x1 ``nn.Conv2d`` s."""
    a, g, c = from_tensorial(layer, "tk", ["sr", "rqhw", "qt"])
    bias = layer.bias.detach() if layer.bias is not None else None
    return nn.Sequential(
        new_conv(a.T[:, :, None, None], None),
        new_conv(g.permute(1, 0, 2, 3), None, **tensorial_conv_args(layer)),
        new_conv(c.T[:, :, None, None], bias),
    )
