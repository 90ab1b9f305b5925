"""Depthwise-separable convolution (Xception, MobileNet) as the CP format.

Two forms, both without a nonlinearity between the convolutions:

- Xception / MobileNet v1: depthwise ``Conv2d(S, S*m, k, groups=S)`` then pointwise ``Conv2d(S*m, T, 1)``::

      bshw, smhw, smt -> bthw | hw

  the depthwise kernel ``D[s, m, h, w]`` and the pointwise ``P[(s m), t]``. This is CP of rank ``R = S*m``
  whose first factor is the fixed 0/1 matrix ``A[s, (s' m)] = delta(s, s')``.
- pointwise ``Conv2d(S, R, 1)``, depthwise ``Conv2d(R, R*m, k, groups=R)``, pointwise ``Conv2d(R*m, T, 1)``
  (the CP layer of Lebedev et al. / MobileNet v2's block without its ReLU6)::

      bshw, sr, rmhw, rmt -> bthw | hw

  exactly the ``cp`` format ``A[s, r] B[r, h, w] C[r, t]`` with rank ``R*m``.

:func:`depthwise_separable_to_tnn` returns a ``TensorialConv2d(format="cp")``;
:func:`tnn_to_depthwise_separable` returns the three-convolution form.
"""

from __future__ import annotations

import torch
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
from tnn.interpret.stages import ConvStage, Stage, constant_offset, parse_block

__all__ = [
    "depthwise_separable_spec",
    "depthwise_separable_as_conv_einsum",
    "depthwise_separable_to_tnn",
    "tnn_to_depthwise_separable",
]

_TWO = "bshw,smhw,smt->bthw|hw"
_THREE = "bshw,sr,rmhw,rmt->bthw|hw"


def depthwise_separable_spec(pointwise_first: bool = False) -> str:
    """The conv_einsum string of the two-convolution (default) or three-convolution form."""
    return _THREE if pointwise_first else _TWO


def _is_depthwise(conv: ConvStage) -> bool:
    return conv.groups == conv.in_channels and conv.out_channels % conv.groups == 0


def _check_pointwise(conv: ConvStage, role: str) -> None:
    require(
        conv.is_pointwise and conv.groups == 1,
        f"{conv.name!r} must be a pointwise 1x1 convolution (stride 1, no padding, groups=1) as the {role}",
    )


def _split(stages: list[Stage]) -> tuple[ConvStage | None, ConvStage, ConvStage]:
    if len(stages) == 2:
        dw, pw = conv_stages(stages, 2, "depthwise-separable convolution")
        first = None
    else:
        first, dw, pw = conv_stages(stages, 3, "depthwise-separable convolution (pointwise first)")
        _check_pointwise(first, "first layer")
    require(
        _is_depthwise(dw),
        f"{dw.name!r} must be depthwise (groups == in_channels), got groups={dw.groups} "
        f"for {dw.in_channels} input channels",
    )
    _check_pointwise(pw, "last layer")
    return first, dw, pw


def _expression(stages: list[Stage]) -> TNNExpression:
    first, dw, pw = _split(stages)
    c = dw.in_channels
    m = dw.out_channels // c
    depthwise = dw.weight.reshape(c, m, *dw.kernel_size)
    pointwise = pw.weight[:, :, 0, 0].T.reshape(c, m, pw.out_channels)
    if first is None:
        return TNNExpression(_TWO, (depthwise, pointwise), dw.conv_options(), _TWO, "cp", (), tuple(stages))
    a = first.weight[:, :, 0, 0].T
    return TNNExpression(
        _THREE, (a, depthwise, pointwise), dw.conv_options(), _THREE, "cp", (), tuple(stages)
    )


def depthwise_separable_as_conv_einsum(block: nn.Module) -> TNNExpression:
    """The block (``Sequential`` of 2 or 3 convolutions, BatchNorms folded) as a TNN expression."""
    return _expression(parse_block(block))


def depthwise_separable_to_tnn(block: nn.Module) -> nn.Module:
    """An equivalent ``TensorialConv2d(format="cp")`` of rank ``S*m`` (two-conv form) or ``R*m``.

    Raises ``ValueError`` when a nonzero bias sits before a zero-padded convolution (the block's offset
    is then not one bias vector) or the rank exceeds what the ``cp`` format allows for this layer shape.
    """
    stages = parse_block(block)
    first, dw, pw = _split(stages)
    expr = _expression(stages)
    if first is None:
        depthwise, pointwise = expr.operands
        a = torch.eye(dw.in_channels, dtype=depthwise.dtype, device=depthwise.device)
        in_channels = dw.in_channels
    else:
        a, depthwise, pointwise = expr.operands
        in_channels = first.in_channels
    r, m = depthwise.shape[:2]
    a = a.repeat_interleave(m, dim=1)  # [s, (r m)]
    factors = [
        ("sR", a),
        ("Rhw", depthwise.reshape(r * m, *dw.kernel_size)),
        ("Rt", pointwise.reshape(r * m, pw.out_channels)),
    ]
    return to_tensorial(
        "cp", factors, conv_geometry(dw), in_channels, pw.out_channels, constant_offset(stages)
    )


def tnn_to_depthwise_separable(layer: nn.Module) -> nn.Sequential:
    """A ``TensorialConv2d(format="cp")`` as pointwise -> depthwise -> pointwise ``nn.Conv2d`` s."""
    a, b, c = from_tensorial(layer, "cp", ["sR", "Rhw", "Rt"])
    r = b.shape[0]
    bias = layer.bias.detach() if layer.bias is not None else None
    return nn.Sequential(
        new_conv(a.T[:, :, None, None], None),
        new_conv(b[:, None], None, groups=r, **tensorial_conv_args(layer)),
        new_conv(c.T[:, :, None, None], bias),
    )
