"""``TNNExpression``: an existing design written as one ``conv_einsum`` expression plus an affine offset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from tnn.algebra import conv_einsum, parse_spec
from tnn.interpret.stages import Stage, run_stages

__all__ = ["TNNExpression"]


@dataclass(frozen=True)
class TNNExpression:
    """A block ``y = L(x) + c`` with its linear part ``L`` as a ``conv_einsum`` expression.

    Unpacks as ``spec, operands, options = expression``, so that
    ``expression.unfold(conv_einsum(spec, expression.fold(x), *operands, **options)) + expression.offset(x)``
    equals ``block(x)`` (``fold``/``unfold`` are identities unless the design folds channels).

    Attributes
    ----------
    spec : str
        The evaluable ``conv_einsum`` string; its first operand is the (folded) input.
    operands : tuple of Tensor
        The kernels, in the order of ``spec``'s operands 1, 2, ….
    options : dict
        ``padding``/``stride``/``dilation``/``circular`` for :func:`tnn.conv_einsum` (dicts keyed by letter).
    display : str
        The same string with folded channel groups written in parentheses, e.g.
        ``"b(gs)hw,gtshw->b(gt)hw|hw"`` for a group convolution.
    format : str
        The corresponding decomposition format or structure (``"cp"``, ``"tk"``, ``"svd"``, ``"dense"``, …).
    in_folds : tuple of int
        The input's channel axis (dim 1) is split row-major into these sizes (``()``: not folded).
    stages : tuple
        The block's affine stages (:mod:`tnn.interpret.stages`), used for the offset.
    """

    spec: str
    operands: tuple[torch.Tensor, ...]
    options: dict[str, Any]
    display: str
    format: str
    in_folds: tuple[int, ...] = ()
    stages: tuple[Stage, ...] = field(default=(), repr=False)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.spec, self.operands, self.options))

    @property
    def has_bias(self) -> bool:
        return any(getattr(st, "bias", None) is not None for st in self.stages)

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, ...)`` -> ``(B, *in_folds, ...)``."""
        if not self.in_folds:
            return x
        return x.reshape(x.shape[0], *self.in_folds, *x.shape[2:])

    def unfold(self, y: torch.Tensor) -> torch.Tensor:
        """Merge the output's channel indices (all but the batch and the convolution indices) into one."""
        parsed = parse_spec(self.spec)
        channels = len(parsed.output) - 1 - len(parsed.conv)
        if channels <= 1:
            return y
        return y.reshape(y.shape[0], -1, *y.shape[1 + channels :])

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The linear part, evaluated by :func:`tnn.conv_einsum`."""
        return self.unfold(conv_einsum(self.spec, self.fold(x), *self.operands, **self.options))

    def offset(self, x: torch.Tensor) -> torch.Tensor | float:
        """The affine offset ``block(0)`` for inputs shaped like ``x`` (``0.0`` without biases)."""
        if not self.has_bias:
            return 0.0
        zeros = torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return run_stages(self.stages, zeros)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.offset(x)
