"""``TensorialLinear``: a fully connected layer whose weight is stored in a compression format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tnn.algebra.cost import DENSE_LINEAR_SPEC
from tnn.formats import get_format
from tnn.nn._tensorial import TensorialLayer, check_input, check_optional_rate, check_size

__all__ = ["TensorialLinear"]


class TensorialLinear(TensorialLayer):
    """A drop-in replacement for ``nn.Linear`` whose weight ``W[t, s]`` is a tensor network.

    Parameters
    ----------
    in_features, out_features : int
        ``S`` and ``T``.
    format : str
        One of :data:`tnn.FORMATS` (default ``"rtt"``); the formats are those of
        :class:`~tnn.nn.TensorialConv2d` without the spatial mode.
    rate, rank, m, bias
        As in :class:`~tnn.nn.TensorialConv2d`.

    Notes
    -----
    Input ``(..., S)`` is flattened to ``(N, S)`` and folded to ``(N, S_0, .., S_{m-1})``; the format's
    ``conv_einsum`` string (a plain einsum here) gives ``(N, T_0, .., T_{m-1})``, unfolded to ``(..., T)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        format: str = "rtt",
        rate: float | None = None,
        rank: int | Sequence[int] | None = None,
        bias: bool = True,
        *,
        m: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fmt = get_format(format)
        rate = check_optional_rate(rate)
        self.in_features = check_size("TensorialLinear", "in_features", in_features)
        self.out_features = check_size("TensorialLinear", "out_features", out_features)
        geometry = fmt.geometry(self.out_features, self.in_features, (), 1, m)
        self._setup(geometry, fmt, rate, rank, bias, {"device": device, "dtype": dtype})

    DENSE = nn.Linear

    @staticmethod
    def _dense_arguments(module: nn.Linear) -> dict[str, Any]:
        return {"in_features": module.in_features, "out_features": module.out_features,
                "bias": module.bias is not None}

    def _batched_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(f"TensorialLinear: expected input (..., {self.in_features}), got shape {shape}")
        n = 1
        for d in shape[:-1]:
            n *= d
        return (n, self.in_features)

    def _folded_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (x_shape[0], *self.geometry.in_folds)

    def _dense_op_spec(self, folded: tuple[int, ...]) -> tuple[str, list[tuple[int, ...]]]:
        return DENSE_LINEAR_SPEC, [(folded[0], self.in_features), (self.out_features, self.in_features)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("TensorialLinear", x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"TensorialLinear: expected input (..., {self.in_features}), got shape {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if self._symbolic(flat.shape):
            return F.linear(flat, self._weight(), self.bias).reshape(*lead, self.out_features)
        folded = self._folded_shape(tuple(flat.shape))
        plan, expr = self._plan_for(folded, x.dtype, x.device)
        factors = self._factor_list()
        if self._mode_for(folded, plan, factors) == "dense":
            y = F.linear(flat, self._weight(factors), self.bias)
        else:
            y = expr(flat.reshape(folded), *factors).reshape(-1, self.out_features)
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def _dims_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
