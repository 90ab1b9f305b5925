"""Normalisation of the convolution options ``padding``, ``stride``, ``dilation``, ``circular``.

Each option may be given once for every convolution index (an ``int``/``str``/``bool``), as a sequence
with one entry per convolution index in the order listed after ``|`` (like PyTorch's per-dimension
tuples), or as a ``dict`` keyed by index letter (missing letters take the default).

Padding values: a non-negative int ``p`` (``p`` zeros on both sides), a pair ``(left, right)``, or one
of the strings ``"valid"`` (no padding), ``"same"`` (total ``d (K - 1)``, the extra element on the
right, as PyTorch; only with stride 1) and ``"full"`` (``d (K - 1)`` on both sides: the paper's
algebraic convolution, output length ``n + K - 1`` for ``d = 1``). ``K`` is the size of the combined
filter of the index (see :mod:`tnn.algebra.contract`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ConvOption", "normalize_conv_options", "resolve_padding", "PADDING_MODES"]

PADDING_MODES = ("valid", "same", "full")


@dataclass(frozen=True)
class ConvOption:
    """Options of one convolution index.

    Attributes
    ----------
    padding : tuple of int or str
        ``(left, right)`` zero (or circular) padding, or ``"valid"``, ``"same"``, ``"full"``.
    stride, dilation : int
        Positive integers, PyTorch meaning.
    circular : bool
        Pad by wrapping around instead of with zeros.
    """

    padding: tuple[int, int] | str = (0, 0)
    stride: int = 1
    dilation: int = 1
    circular: bool = False


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _padding_value(value: Any, index: str) -> tuple[int, int] | str:
    if isinstance(value, str):
        if value not in PADDING_MODES:
            raise ValueError(
                f"invalid padding {value!r} for convolution index {index!r}: use a non-negative int, "
                f"a (left, right) pair or one of {PADDING_MODES}"
            )
        return value
    if _is_int(value):
        if value < 0:
            raise ValueError(f"invalid padding {value!r} for convolution index {index!r}: must be >= 0")
        return (int(value), int(value))
    if isinstance(value, Sequence) and len(value) == 2 and all(_is_int(v) for v in value):
        left, right = int(value[0]), int(value[1])
        if left < 0 or right < 0:
            raise ValueError(
                f"invalid padding {tuple(value)!r} for convolution index {index!r}: both sides must be >= 0"
            )
        return (left, right)
    raise ValueError(
        f"invalid padding {value!r} for convolution index {index!r}: use a non-negative int, "
        f"a (left, right) pair of ints or one of {PADDING_MODES}"
    )


def _positive_int(value: Any, name: str, index: str) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"invalid {name} {value!r} for convolution index {index!r}: must be a positive int")
    return int(value)


def _bool(value: Any, name: str, index: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"invalid {name} {value!r} for convolution index {index!r}: must be True or False")
    return value


def _spread(value: Any, name: str, conv: tuple[str, ...], default: Any, scalar: bool) -> list[Any]:
    """Expand one option into one raw value per convolution index."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in conv]
        if unknown:
            raise ValueError(
                f"{name} is given for {unknown[0]!r}, which is not a convolution index "
                f"(convolution indices: {''.join(conv) or 'none'})"
            )
        return [value.get(c, default) for c in conv]
    if scalar:
        return [value] * len(conv)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(conv):
            raise ValueError(
                f"{name} {tuple(value)!r} has {len(value)} entries but the spec has {len(conv)} "
                f"convolution indices ({''.join(conv) or 'none'}); give one entry per index or a dict"
            )
        return list(value)
    raise ValueError(
        f"invalid {name} {value!r}: give a single value, one value per convolution index, or a dict "
        "keyed by index letter"
    )


def normalize_conv_options(
    conv: tuple[str, ...],
    padding: Any = 0,
    stride: Any = 1,
    dilation: Any = 1,
    circular: Any = False,
) -> tuple[ConvOption, ...]:
    """Return one :class:`ConvOption` per convolution index (in ``conv`` order).

    Raises
    ------
    ValueError
        On an invalid value, naming the option, the value and the index.
    """
    pads = _spread(padding, "padding", conv, 0, isinstance(padding, (str, numbers.Integral)))
    strides = _spread(stride, "stride", conv, 1, isinstance(stride, numbers.Integral))
    dils = _spread(dilation, "dilation", conv, 1, isinstance(dilation, numbers.Integral))
    circs = _spread(circular, "circular", conv, False, isinstance(circular, bool))
    out = []
    for c, p, s, d, ci in zip(conv, pads, strides, dils, circs, strict=False):
        opt = ConvOption(
            padding=_padding_value(p, c),
            stride=_positive_int(s, "stride", c),
            dilation=_positive_int(d, "dilation", c),
            circular=_bool(ci, "circular", c),
        )
        if opt.padding == "same" and opt.stride != 1:
            raise ValueError(
                f"padding 'same' needs stride 1 for convolution index {c!r} (got stride {opt.stride}), "
                "as in PyTorch"
            )
        out.append(opt)
    return tuple(out)


def resolve_padding(option: ConvOption, kernel: int) -> tuple[int, int]:
    """The ``(left, right)`` padding of an index whose combined filter has size ``kernel``."""
    span = option.dilation * (kernel - 1)
    if option.padding == "valid":
        return (0, 0)
    if option.padding == "same":
        return (span // 2, span - span // 2)
    if option.padding == "full":
        return (span, span)
    return option.padding  # type: ignore[return-value]
