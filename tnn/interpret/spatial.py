"""Inception's spatially separable ``k x 1`` then ``1 x k`` convolutions as the ``svd`` format.

``Conv2d(S, R, (kh, 1))`` then ``Conv2d(R, T, (1, kw))``, no nonlinearity between them::

    bshw, srh, rtw -> bthw | hw

``U[s, r, h]`` (the ``kh x 1`` conv) and ``V[r, t, w]`` (the ``1 x kw`` conv): the kernel
``K[t, s, h, w] = sum_r U[s, r, h] V[r, t, w]`` is a rank-``R`` matrix when viewed as ``(S kh) x (T kw)`` —
the ``svd`` format. The other order (``1 x kw`` first, as in Inception-v3's ``1x7``, ``7x1``) is the
expression ``bshw,srw,rth->bthw|hw``; it is interpreted but has no ``svd`` layer (that format puts the
row filter on the input side).

Each spatial axis takes its padding / stride / dilation from the convolution whose kernel spans it; the
other convolution must neither pad nor stride along that axis.
"""

from __future__ import annotations

from torch import nn

from tnn.interpret._common import (
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
    "spatially_separable_spec",
    "spatially_separable_as_conv_einsum",
    "spatially_separable_to_tnn",
    "tnn_to_spatially_separable",
]

_ROWS_FIRST = "bshw,srh,rtw->bthw|hw"
_COLUMNS_FIRST = "bshw,srw,rth->bthw|hw"


def spatially_separable_spec(rows_first: bool = True) -> str:
    """``"bshw,srh,rtw->bthw|hw"`` (``k x 1`` first, default) or ``"bshw,srw,rth->bthw|hw"``."""
    return _ROWS_FIRST if rows_first else _COLUMNS_FIRST


def _axis_options(conv: ConvStage, axis: int, letter: str, options: dict) -> None:
    options["padding"][letter] = conv.padding[axis]
    options["stride"][letter] = conv.stride[axis]
    options["dilation"][letter] = conv.dilation[axis]
    options["circular"][letter] = conv.circular


def _expression(stages: list[Stage]) -> tuple[TNNExpression, bool]:
    c1, c2 = conv_stages(stages, 2, "spatially separable convolution")
    require(c1.groups == 1 and c2.groups == 1, "spatially separable convolutions have groups=1")
    if c1.kernel_size[1] == 1 and c2.kernel_size[0] == 1:
        rows_first, first_axis = True, 0
    elif c1.kernel_size[0] == 1 and c2.kernel_size[1] == 1:
        rows_first, first_axis = False, 1
    else:
        raise ValueError(
            f"expected a k x 1 and a 1 x k convolution, got kernels {c1.kernel_size} ({c1.name!r}) and "
            f"{c2.kernel_size} ({c2.name!r})"
        )
    other = 1 - first_axis
    for conv, axis in ((c1, other), (c2, first_axis)):
        require(
            conv.padding[axis] == 0 and conv.stride[axis] == 1,
            f"{conv.name!r} pads or strides along the axis its kernel does not span "
            f"(padding {conv.padding}, stride {conv.stride}); the interpretation needs padding 0 and "
            "stride 1 there",
        )
    options: dict = {"padding": {}, "stride": {}, "dilation": {}, "circular": {}}
    _axis_options(c1, first_axis, "hw"[first_axis], options)
    _axis_options(c2, other, "hw"[other], options)
    u = c1.weight.squeeze(3 - first_axis).permute(1, 0, 2)  # [s, r, k1]
    v = c2.weight.squeeze(2 + first_axis).permute(1, 0, 2)  # [r, t, k2]
    spec = _ROWS_FIRST if rows_first else _COLUMNS_FIRST
    return TNNExpression(
        spec, (u, v), options, spec, "svd" if rows_first else "svd (columns first)", (), tuple(stages)
    ), rows_first


def spatially_separable_as_conv_einsum(block: nn.Module) -> TNNExpression:
    """The ``Sequential`` of a ``k x 1`` and a ``1 x k`` convolution as a TNN expression."""
    return _expression(parse_block(block))[0]


def spatially_separable_to_tnn(block: nn.Module) -> nn.Module:
    """An equivalent ``TensorialConv2d(format="svd")`` (``k x 1`` first only)."""
    stages = parse_block(block)
    expr, rows_first = _expression(stages)
    require(rows_first, "the svd format applies the k x 1 filter first; this block starts with the 1 x k one")
    c1, c2 = stages
    u, v = expr.operands
    require(c1.circular == c2.circular, "both convolutions must use the same padding mode")
    geometry = {
        "kernel_size": (c1.kernel_size[0], c2.kernel_size[1]),
        "stride": (c1.stride[0], c2.stride[1]),
        "padding": (c1.padding[0], c2.padding[1]),
        "dilation": (c1.dilation[0], c2.dilation[1]),
        "padding_mode": "circular" if c1.circular else "zeros",
    }
    return to_tensorial(
        "svd", [("srh", u), ("rtw", v)], geometry, c1.in_channels, c2.out_channels, constant_offset(stages)
    )


def tnn_to_spatially_separable(layer: nn.Module) -> nn.Sequential:
    """A ``TensorialConv2d(format="svd")`` as a ``k x 1`` then a ``1 x k`` ``nn.Conv2d``."""
    u, v = from_tensorial(layer, "svd", ["srh", "rtw"])
    args = tensorial_conv_args(layer)
    padding = args["padding"]
    require(
        not isinstance(padding, str), f"padding {padding!r}: give explicit ints to split it over two convs"
    )
    bias = layer.bias.detach() if layer.bias is not None else None
    mode = args["padding_mode"]
    return nn.Sequential(
        new_conv(
            u.permute(1, 0, 2)[..., None],
            None,
            stride=(args["stride"][0], 1),
            padding=(padding[0], 0),
            dilation=(args["dilation"][0], 1),
            padding_mode=mode,
        ),
        new_conv(
            v.permute(1, 0, 2)[:, :, None, :],
            bias,
            stride=(1, args["stride"][1]),
            padding=(0, padding[1]),
            dilation=(1, args["dilation"][1]),
            padding_mode=mode,
        ),
    )
