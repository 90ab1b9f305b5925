"""A block of PyTorch modules as a chain of affine *stages* (the input to every interpretation).

:func:`parse_block` walks an ``nn.Conv2d`` / ``nn.Linear`` / ``nn.Sequential`` and returns its stages:
each convolution (with a following eval-mode ``BatchNorm2d`` folded into its weight and bias), each
``nn.Linear`` and each ``nn.ChannelShuffle``. ``nn.Identity`` is skipped. Anything else — in particular
a nonlinearity — raises ``ValueError``: a nonlinearity breaks the exact equality and is outside the
interpretation (interpret the linear parts on either side of it separately).

:func:`run_stages` evaluates the chain with plain ``torch.nn.functional`` calls (used for the affine
offset of an interpretation), :func:`constant_offset` folds every bias into one per-channel vector where
that is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvStage",
    "LinearStage",
    "ShuffleStage",
    "Stage",
    "parse_block",
    "run_stages",
    "constant_offset",
]


@dataclass(frozen=True)
class ConvStage:
    """One ``Conv2d`` (BatchNorm folded in). ``weight`` is ``(T, S/groups, kh, kw)``, ``bias`` ``(T,)``."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    circular: bool

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (self.weight.shape[2], self.weight.shape[3])

    @property
    def is_pointwise(self) -> bool:
        """A 1x1 convolution with stride 1 and no padding (it commutes with the spatial structure)."""
        return self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def conv_options(self, axes: str = "hw") -> dict[str, dict[str, object]]:
        """The ``conv_einsum`` options of this convolution, keyed by the spatial index letters ``axes``."""
        return {
            "padding": dict(zip(axes, self.padding, strict=True)),
            "stride": dict(zip(axes, self.stride, strict=True)),
            "dilation": dict(zip(axes, self.dilation, strict=True)),
            "circular": self.circular,
        }


@dataclass(frozen=True)
class LinearStage:
    """One ``nn.Linear``: ``weight`` ``(T, S)``, ``bias`` ``(T,)``."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class ShuffleStage:
    """``nn.ChannelShuffle(groups)``: channels ``(groups, C/groups)`` -> ``(C/groups, groups)``."""

    name: str
    groups: int


Stage = ConvStage | LinearStage | ShuffleStage


def _conv_padding(conv: nn.Conv2d, name: str) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        if any(t % 2 for t in totals):
            raise ValueError(
                f"module {name!r}: padding='same' with an even receptive field {conv.kernel_size} pads "
                "asymmetrically; give explicit symmetric padding to interpret it"
            )
        return (totals[0] // 2, totals[1] // 2)
    return (int(conv.padding[0]), int(conv.padding[1]))


def _conv_stage(conv: nn.Conv2d, name: str) -> ConvStage:
    if conv.padding_mode not in ("zeros", "circular"):
        raise ValueError(
            f"module {name!r}: padding_mode={conv.padding_mode!r} is not supported by the interpretation "
            "(use 'zeros' or 'circular')"
        )
    bias = conv.bias.detach() if conv.bias is not None else None
    return ConvStage(
        name,
        conv.weight.detach(),
        bias,
        (int(conv.stride[0]), int(conv.stride[1])),
        _conv_padding(conv, name),
        (int(conv.dilation[0]), int(conv.dilation[1])),
        int(conv.groups),
        conv.padding_mode == "circular",
    )


def _fold_batchnorm(stage: ConvStage, bn: nn.BatchNorm2d, name: str) -> ConvStage:
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"module {name!r}: BatchNorm2d in training mode (or without running statistics) normalises "
            "with batch statistics, which is not a fixed affine map; call .eval() on the block first"
        )
    if bn.num_features != stage.out_channels:
        raise ValueError(
            f"module {name!r}: BatchNorm2d over {bn.num_features} channels follows a conv "
            f"with {stage.out_channels} output channels"
        )
    scale = torch.rsqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight.detach(), shift * bn.weight.detach() + bn.bias.detach()
    bias = shift if stage.bias is None else stage.bias * scale + shift
    weight = stage.weight * scale.reshape(-1, 1, 1, 1)
    return ConvStage(
        stage.name, weight, bias, stage.stride, stage.padding, stage.dilation, stage.groups, stage.circular
    )


def parse_block(block: nn.Module) -> list[Stage]:
    """The affine stages of ``block`` in forward order (see the module docstring).

    Raises
    ------
    TypeError
        If ``block`` is not an ``nn.Module``.
    ValueError
        On a module that is not affine (a nonlinearity, training-mode BatchNorm, …), naming it.
    """
    if not isinstance(block, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(block).__name__}")
    stages: list[Stage] = []

    def visit(module: nn.Module, name: str) -> None:
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                visit(child, f"{name}.{child_name}" if name else child_name)
        elif isinstance(module, nn.Conv2d):
            stages.append(_conv_stage(module, name or "conv"))
        elif isinstance(module, nn.Linear):
            bias = module.bias.detach() if module.bias is not None else None
            stages.append(LinearStage(name or "linear", module.weight.detach(), bias))
        elif isinstance(module, nn.BatchNorm2d):
            if not stages or not isinstance(stages[-1], ConvStage):
                raise ValueError(f"module {name!r}: BatchNorm2d must directly follow a Conv2d to be folded")
            stages[-1] = _fold_batchnorm(stages[-1], module, name)
        elif isinstance(module, nn.ChannelShuffle):
            stages.append(ShuffleStage(name or "shuffle", int(module.groups)))
        elif isinstance(module, nn.Identity):
            return
        else:
            raise ValueError(
                f"module {name or 'block'!r} ({type(module).__name__}) is not a linear layer: "
                "nonlinearities break exact equality and are outside the interpretation (interpret the "
                "linear parts on either side separately)"
            )

    visit(block, "")
    if not stages:
        raise ValueError(f"block {type(block).__name__} contains no Conv2d or Linear layer")
    return stages


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c = x.shape[:2]
    return x.reshape(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def run_stages(stages: Sequence[Stage], x: torch.Tensor) -> torch.Tensor:
    """Evaluate the chain with ``torch.nn.functional`` (the reference semantics of the stages)."""
    for st in stages:
        if isinstance(st, ConvStage):
            if st.circular:
                ph, pw = st.padding
                x = F.conv2d(
                    F.pad(x, (pw, pw, ph, ph), mode="circular"),
                    st.weight,
                    st.bias,
                    st.stride,
                    0,
                    st.dilation,
                    st.groups,
                )
            else:
                x = F.conv2d(x, st.weight, st.bias, st.stride, st.padding, st.dilation, st.groups)
        elif isinstance(st, LinearStage):
            x = F.linear(x, st.weight, st.bias)
        else:
            x = _shuffle(x, st.groups)
    return x


def constant_offset(stages: Sequence[Stage]) -> torch.Tensor | None:
    """The block's affine offset as one per-output-channel vector, or ``None`` when there is no bias.

    Exact when every bias is followed only by unpadded convolutions (the offset is then the same at every
    output position).

    Raises
    ------
    ValueError
        If a nonzero bias is followed by a zero-padded convolution: its contribution then differs at
        the borders, so no single bias vector reproduces the block.
    """
    offset: torch.Tensor | None = None
    for st in stages:
        if isinstance(st, ShuffleStage):
            if offset is not None:
                offset = offset.reshape(st.groups, -1).T.reshape(-1)
            continue
        if isinstance(st, ConvStage):
            if offset is not None and st.padding != (0, 0) and not st.circular and bool(offset.any()):
                raise ValueError(
                    f"the bias before {st.name!r} passes through its zero padding {st.padding}: the block's "
                    "offset is not constant at the borders, so it cannot be folded into one bias"
                )
            if offset is not None:
                summed = st.weight.sum(dim=(2, 3))  # (T, S/g)
                per_group = offset.reshape(st.groups, 1, -1)
                offset = (summed.reshape(st.groups, -1, summed.shape[1]) * per_group).sum(-1).reshape(-1)
        elif offset is not None:
            offset = st.weight @ offset
        if st.bias is not None:
            offset = st.bias.clone() if offset is None else offset + st.bias
    return offset
