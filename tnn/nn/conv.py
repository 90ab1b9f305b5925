"""``TensorialConv2d``: a 2-D convolution whose kernel is stored in a compression format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from tnn.algebra.cost import DENSE_CONV_SPEC
from tnn.formats import get_format
from tnn.nn._tensorial import TensorialLayer, check_input, check_optional_rate, check_size

__all__ = ["TensorialConv2d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair_arg(name: str, value: Any, minimum: int) -> tuple[int, int]:
    pair = _pair(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(
            f"TensorialConv2d: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return (int(pair[0]), int(pair[1]))


class TensorialConv2d(TensorialLayer):
    """A drop-in replacement for ``nn.Conv2d`` whose kernel is a tensor network.

    Parameters
    ----------
    in_channels, out_channels : int
        ``S`` and ``T``.
    kernel_size, stride, padding, dilation, groups, bias, padding_mode
        As in ``nn.Conv2d`` (``padding`` may be an int, a pair, ``"valid"`` or ``"same"``).
    format : str
        One of :data:`tnn.FORMATS` (default ``"rtt"``).
    rate : float, optional
        Fraction of the dense layer's weight parameters to keep, in (0, 1]; the largest ranks that fit
        are chosen (:meth:`tnn.formats.Format.ranks_for_rate`).
    rank : int or tuple of int, optional
        Explicit ranks (overrides ``rate``); an int is used for every rank position (clipped to the
        format's maximal useful ranks).
    m : int, optional
        Number of channel folds of the reshaped formats (default: the format's ``default_m``).

    Attributes
    ----------
    factors : nn.ParameterList
        The factor tensors, shapes ``format.factor_shapes(geometry, ranks)``.
    bias : nn.Parameter or None
        ``(T,)``.
    format : str
    ranks : tuple of int
    geometry : tnn.formats.KernelGeometry

    Notes
    -----
    Input ``(B, S, H, W)`` (or unbatched ``(S, H, W)``) is folded to ``(B, [g,] S_0, .., S_{m-1}, H, W)``
    (row-major, like the kernel), the format's ``conv_einsum`` string is evaluated with this layer's
    padding / stride / dilation on the ``h, w`` indices, and the result ``(B, [g,] T_0.., H', W')`` is
    unfolded to ``(B, T, H', W')``. ``padding_mode`` other than ``"zeros"`` (and asymmetric ``"same"``
    padding) is applied with ``F.pad`` first, as ``nn.Conv2d`` does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        format: str = "rtt",
        rate: float | None = None,
        rank: int | Sequence[int] | None = None,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        m: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fmt = get_format(format)
        rate = check_optional_rate(rate)
        self.in_channels = check_size("TensorialConv2d", "in_channels", in_channels)
        self.out_channels = check_size("TensorialConv2d", "out_channels", out_channels)
        self.kernel_size = _pair_arg("kernel_size", kernel_size, 1)
        self.stride = _pair_arg("stride", stride, 1)
        self.dilation = _pair_arg("dilation", dilation, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"TensorialConv2d: padding string must be 'valid' or 'same', got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("TensorialConv2d: padding='same' is not supported for strided convolutions")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = _pair_arg("padding", padding, 0)
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"TensorialConv2d: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        self.groups = check_size("TensorialConv2d", "groups", groups)
        geometry = fmt.geometry(self.out_channels, self.in_channels, self.kernel_size, self.groups, m)
        self._setup(geometry, fmt, rate, rank, bias, {"device": device, "dtype": dtype})
        # padding applied by F.pad (left, right, top, bottom) and the symmetric rest left to the conv
        self._pre_pad, self._conv_pad = self._split_padding()

    # ------------------------------------------------------------------ dense counterpart
    DENSE = nn.Conv2d

    @staticmethod
    def _dense_arguments(module: nn.Conv2d) -> dict[str, Any]:
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        return {"in_channels": module.in_channels, "out_channels": module.out_channels,
                "kernel_size": tuple(module.kernel_size), "stride": tuple(module.stride), "padding": padding,
                "dilation": tuple(module.dilation), "groups": module.groups, "bias": module.bias is not None,
                "padding_mode": module.padding_mode}

    # ------------------------------------------------------------------ shapes and options
    def _split_padding(self) -> tuple[tuple[int, int, int, int] | None, tuple[int, int]]:
        if self.padding == "valid":
            sym = (0, 0)
        elif self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            sym = (totals[0] // 2, totals[1] // 2)
            extra = (totals[1] - 2 * sym[1], totals[0] - 2 * sym[0])  # (w, h) extra right/bottom
            if self.padding_mode == "zeros":
                pre = (0, extra[0], 0, extra[1])
                return (pre if any(pre) else None), sym
            return (sym[1], sym[1] + extra[0], sym[0], sym[0] + extra[1]), (0, 0)
        else:
            sym = self.padding  # type: ignore[assignment]
        if self.padding_mode == "zeros":
            return None, sym
        pre = (sym[1], sym[1], sym[0], sym[0])
        return (pre if any(pre) else None), (0, 0)

    def _pad_input(self, x: torch.Tensor) -> torch.Tensor:
        if self._pre_pad is None:
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, self._pre_pad, mode=mode)

    def _conv_options(self) -> dict[str, Any]:
        return {
            "padding": dict(zip("hw", self._conv_pad, strict=True)),
            "stride": dict(zip("hw", self.stride, strict=True)),
            "dilation": dict(zip("hw", self.dilation, strict=True)),
        }

    def _batched_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(
                f"TensorialConv2d: expected input (B, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got shape {shape}"
            )
        if self._pre_pad is not None:
            left, right, top, bottom = self._pre_pad
            shape = (shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right)
        return shape

    def _folded_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        g = (self.groups,) if self.groups > 1 else ()
        return (x_shape[0], *g, *self.geometry.in_folds, x_shape[2], x_shape[3])

    def _dense_op_spec(self, folded: tuple[int, ...]) -> tuple[str, list[tuple[int, ...]]]:
        b, h, w = folded[0], folded[-2], folded[-1]
        g, geo = self.groups, self.geometry
        return DENSE_CONV_SPEC, [(b, g, geo.s, h, w), (g, geo.t, geo.s, *self.kernel_size)]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("TensorialConv2d", x)
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"TensorialConv2d: expected input (B, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        x = self._pad_input(x)
        if self._symbolic(x.shape):
            weight = self._weight()
            y = F.conv2d(x, weight, self.bias, self.stride, self._conv_pad, self.dilation, self.groups)
            return y.squeeze(0) if unbatched else y
        folded = self._folded_shape(tuple(x.shape))
        plan, expr = self._plan_for(folded, x.dtype, x.device)
        factors = self._factor_list()
        if self._mode_for(folded, plan, factors) == "dense":
            weight = self._weight(factors)
            y = F.conv2d(x, weight, self.bias, self.stride, self._conv_pad, self.dilation, self.groups)
        else:
            y = expr(x.reshape(folded), *factors)
            y = y.reshape(y.shape[0], self.out_channels, y.shape[-2], y.shape[-1])
            if self.bias is not None:
                y = y + self.bias.view(-1, 1, 1)
        return y.squeeze(0) if unbatched else y

    def _dims_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s
