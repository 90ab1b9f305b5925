"""Interleaved group convolutions (IGC, Zhang et al. 2017) as a two-kernel TNN with folded channels.

An IGC block on ``C = L*M`` channels: a primary group convolution ``Conv2d(C, C, k, groups=L)`` (``L``
partitions of ``M`` channels), the permutation ``nn.ChannelShuffle(L)``, a secondary pointwise group
convolution ``Conv2d(C, C, 1, groups=M)`` (``M`` partitions of ``L`` channels) and, optionally, the
permutation back ``nn.ChannelShuffle(M)``. Folding the channels as ``(l, m)`` the whole block is::

    b(lm)hw, lnmhw, nkl -> b(kn)hw | hw        (without the last shuffle: -> b(nk)hw)

evaluated as ``"blmhw,lnmhw,nkl->bknhw|hw"``: ``P[l, n, m, h, w]`` (primary kernel, partial outer product
over the partition ``l``) and ``S[n, k, l]`` (secondary kernel, partial outer product over ``n``). The
tensorial layer is a :class:`TNNLayer` between ``nn.Unflatten(1, (L, M))`` and ``nn.Flatten(1, 2)``;
there is no compression format for it (it is a structured dense kernel, not a low-rank one).
"""

from __future__ import annotations

from torch import nn

from tnn.interpret._common import new_conv, new_tnn_layer, require, tnn_layer_conv_args
from tnn.interpret.expression import TNNExpression
from tnn.interpret.stages import ConvStage, ShuffleStage, Stage, constant_offset, parse_block

__all__ = ["igc_block", "igc_spec", "igc_as_conv_einsum", "igc_to_tnn", "tnn_to_igc"]

_SPECS = {True: "blmhw,lnmhw,nkl->bknhw|hw", False: "blmhw,lnmhw,nkl->bnkhw|hw"}
_DISPLAY = {True: "b(lm)hw,lnmhw,nkl->b(kn)hw|hw", False: "b(lm)hw,lnmhw,nkl->b(nk)hw|hw"}


def igc_spec(shuffle_back: bool = True) -> str:
    """The evaluable conv_einsum string of an IGC block (input channels folded as ``(L, M)``)."""
    return _SPECS[shuffle_back]


def igc_block(
    primary_groups: int,
    group_width: int,
    kernel_size: int = 3,
    padding: int = 1,
    stride: int = 1,
    bias: bool = False,
    shuffle_back: bool = True,
) -> nn.Sequential:
    """An IGC block on ``L * M`` channels (``L = primary_groups``, ``M = group_width``)."""
    channels = primary_groups * group_width
    layers = [
        nn.Conv2d(channels, channels, kernel_size, stride, padding, groups=primary_groups, bias=bias),
        nn.ChannelShuffle(primary_groups),
        nn.Conv2d(channels, channels, 1, groups=group_width, bias=bias),
    ]
    if shuffle_back:
        layers.append(nn.ChannelShuffle(group_width))
    return nn.Sequential(*layers)


def _parse(stages: list[Stage]) -> tuple[ConvStage, ConvStage, int, int, bool]:
    kinds = [type(st) for st in stages]
    ok = kinds[:3] == [ConvStage, ShuffleStage, ConvStage] and (
        len(kinds) == 3 or kinds[3:] == [ShuffleStage]
    )
    require(
        ok,
        "an IGC block is Conv2d(groups=L), ChannelShuffle(L), Conv2d(1x1, groups=M)[, ChannelShuffle(M)]; "
        f"got stages {[k.__name__ for k in kinds]}",
    )
    primary, shuffle, secondary = stages[:3]
    c, groups = primary.in_channels, primary.groups
    m = c // groups
    require(
        primary.out_channels == c and secondary.in_channels == c and secondary.out_channels == c,
        f"an IGC block keeps the channel count; got {primary.in_channels} -> {primary.out_channels} -> "
        f"{secondary.out_channels}",
    )
    require(
        shuffle.groups == groups,
        f"the first shuffle must use the L={groups} primary groups, got {shuffle.groups}",
    )
    require(
        secondary.is_pointwise and secondary.groups == m,
        f"the secondary convolution must be 1x1 (stride 1, no padding) with groups=M={m}",
    )
    back = len(stages) == 4
    if back:
        require(stages[3].groups == m, f"the last shuffle must use M={m} groups, got {stages[3].groups}")
    return primary, secondary, groups, m, back


def _expression(stages: list[Stage]) -> TNNExpression:
    primary, secondary, lsize, m, back = _parse(stages)
    p = primary.weight.reshape(lsize, m, m, *primary.kernel_size)  # [l, n, m, h, w]
    s = secondary.weight.reshape(m, lsize, lsize)  # [n, k, l]
    return TNNExpression(
        _SPECS[back], (p, s), primary.conv_options(), _DISPLAY[back], "igc", (lsize, m), tuple(stages)
    )


def igc_as_conv_einsum(block: nn.Module) -> TNNExpression:
    """The IGC block (BatchNorms after either convolution folded) as a TNN expression."""
    return _expression(parse_block(block))


def igc_to_tnn(block: nn.Module) -> nn.Sequential:
    """``nn.Sequential(Unflatten(1, (L, M)), TNNLayer(igc_spec), Flatten(1, 2))``, biases folded.

    A bias of the primary convolution passes through the unpadded secondary 1x1 convolution, so the
    block's offset is always one per-channel vector.
    """
    stages = parse_block(block)
    expr = _expression(stages)
    layer = new_tnn_layer(expr.spec, list(expr.operands), constant_offset(stages), expr.options)
    return nn.Sequential(nn.Unflatten(1, expr.in_folds), layer, nn.Flatten(1, 2))


def tnn_to_igc(block: nn.Sequential) -> nn.Sequential:
    """The IGC block (convolutions and shuffles) equivalent to the output of :func:`igc_to_tnn`."""
    require(
        isinstance(block, nn.Sequential) and len(block) == 3,
        "expected Sequential(Unflatten, TNNLayer, Flatten)",
    )
    layer = block[1]
    back = getattr(layer, "spec", None) == _SPECS[True]
    kwargs = tnn_layer_conv_args(layer, _SPECS[back])
    p, s = (k.detach() for k in layer.kernels)
    lsize, m, _, kh, kw = p.shape
    c = lsize * m
    bias = None
    if layer.bias is not None:
        require(
            sorted(layer.bias_indices) == ["k", "n"], "the layer's bias must span the indices 'k' and 'n'"
        )
        bias = layer.bias.detach()
        bias = bias.permute(*(layer.bias_indices.index(x) for x in "nk")).reshape(-1)  # secondary conv order
    layers = [
        new_conv(p.reshape(c, m, kh, kw), None, groups=lsize, **kwargs),
        nn.ChannelShuffle(lsize),
        new_conv(s.reshape(c, lsize, 1, 1), bias, groups=m),
    ]
    if back:
        layers.append(nn.ChannelShuffle(m))
    return nn.Sequential(*layers)
