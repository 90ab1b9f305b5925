"""``as_conv_einsum(block)``: recognise which existing design a block is and interpret it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tnn.interpret import bottleneck, dense, group, igc, resnext, separable, spatial
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import ConvStage, LinearStage, ShuffleStage, Stage, parse_block

__all__ = ["as_conv_einsum", "DESIGNS"]

#: design name -> (corresponding format / structure, evaluable conv_einsum string)
DESIGNS: dict[str, tuple[str, str]] = {
    "conv2d": ("dense", dense.conv2d_spec()),
    "linear": ("dense", dense.linear_spec()),
    "group_conv": ("partial outer product over the group", group.group_conv_spec()),
    "depthwise_separable": ("cp", separable.depthwise_separable_spec()),
    "depthwise_separable_pointwise_first": ("cp", separable.depthwise_separable_spec(True)),
    "bottleneck": ("tk", bottleneck.bottleneck_spec()),
    "resnext_bottleneck": ("block-term Tucker (sum of g Tucker-2 terms)", resnext.resnext_spec()),
    "spatially_separable": ("svd", spatial.spatially_separable_spec()),
    "igc": ("two kernels over folded channels", igc.igc_spec()),
}


def _pick(stages: list[Stage]) -> Callable[[list[Stage]], TNNExpression]:
    kinds = [type(st) for st in stages]
    convs = [st for st in stages if isinstance(st, ConvStage)]
    if kinds == [LinearStage]:
        return dense._linear_expression
    if ShuffleStage in kinds:
        return igc._expression
    if len(stages) != len(convs):
        raise ValueError(f"no interpretation for a chain of stages {[k.__name__ for k in kinds]}")
    if len(convs) == 1:
        return dense._conv_expression if convs[0].groups == 1 else group._expression
    if len(convs) == 2:
        first = convs[0]
        if first.groups > 1 and first.groups == first.in_channels:
            return separable._expression
        return lambda st: spatial._expression(st)[0]
    if len(convs) == 3:
        middle = convs[1]
        if middle.groups == middle.in_channels > 1:
            return separable._expression
        return bottleneck._expression if middle.groups == 1 else resnext._expression
    raise ValueError(
        f"no interpretation for a chain of {len(convs)} convolutions; supported designs: {', '.join(DESIGNS)}"
    )


def as_conv_einsum(block: nn.Module) -> TNNExpression:
    """Interpret ``block`` as a TNN expression ``(spec, operands, options)`` plus an affine offset.

    Recognised: ``Conv2d`` (plain or grouped), ``Linear``, depthwise-separable (2 or 3 convolutions),
    the 1x1-kxk-1x1 bottleneck (plain or ResNeXt's grouped), ``k x 1`` + ``1 x k`` (either order) and
    IGC blocks; eval-mode ``BatchNorm2d`` after a convolution is folded, ``nn.Identity`` skipped.

    Raises
    ------
    ValueError
        If the block contains a nonlinearity or matches none of the designs (the message says which).
    """
    stages = parse_block(block)
    return _pick(stages)(stages)
