"""Parsing and validation of ``conv_einsum`` specification strings.

A specification looks like ``"bshw,tshw->bthw|hw"``: comma-separated input terms, an optional ``->``
followed by the output term, and an optional ``|`` followed by the convolution indices (commas and
spaces are ignored there). Indices are single ASCII letters ``a-z`` / ``A-Z``; spaces are ignored
everywhere.

Without ``->`` the output is implicit, as in :func:`torch.einsum`: the indices that occur exactly once
over all inputs, in alphabetical order (upper case before lower case), plus every convolution index.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ParsedSpec", "parse_spec", "VALID_LETTERS"]

VALID_LETTERS = frozenset(string.ascii_letters)
_STRUCTURE = frozenset(",-> |")


@dataclass(frozen=True)
class ParsedSpec:
    """A validated specification.

    Attributes
    ----------
    inputs : tuple of str
        One index string per operand, in operand order (may contain repeated letters: diagonals).
    output : str
        The output index string; every letter occurs once.
    conv : tuple of str
        The convolution indices, in the order listed after ``|``. Each is in ``output`` and in at
        least one input, and occurs at most once per input.
    """

    inputs: tuple[str, ...]
    output: str
    conv: tuple[str, ...]

    @property
    def num_operands(self) -> int:
        return len(self.inputs)

    def signal_of(self, index: str) -> int:
        """Position of the operand that is the signal of convolution index ``index`` (the first carrier)."""
        for pos, term in enumerate(self.inputs):
            if index in term:
                return pos
        raise ValueError(f"convolution index {index!r} is carried by no operand")

    def filters_of(self, index: str) -> tuple[int, ...]:
        """Positions of the operands that are filters of convolution index ``index``."""
        sig = self.signal_of(index)
        return tuple(p for p, term in enumerate(self.inputs) if index in term and p != sig)

    def __str__(self) -> str:
        text = ",".join(self.inputs) + "->" + self.output
        if self.conv:
            text += "|" + "".join(self.conv)
        return text


def _check_letters(part: str, where: str, spec: str) -> None:
    for ch in part:
        if ch not in VALID_LETTERS:
            raise ValueError(
                f"invalid character {ch!r} in the {where} of spec {spec!r}: indices must be ASCII "
                "letters a-z or A-Z (',' separates inputs, '->' introduces the output, '|' the "
                "convolution indices; '...' is not supported)"
            )


def parse_spec(spec: str) -> ParsedSpec:
    """Parse and validate a ``conv_einsum`` specification string.

    Parameters
    ----------
    spec : str
        For example ``"bshw,tshw->bthw|hw"`` (a Conv2d layer) or ``"ij,jk->ik"`` (a matrix product).

    Returns
    -------
    ParsedSpec

    Raises
    ------
    TypeError
        If ``spec`` is not a string.
    ValueError
        On any malformed specification; the message names the offending character or index.
    """
    if not isinstance(spec, str):  # checked before the cache, which would fail on unhashable values
        raise TypeError(f"spec must be a str, got {type(spec).__name__}")
    return _parse_spec(spec)


@lru_cache(maxsize=1024)
def _parse_spec(spec: str) -> ParsedSpec:
    text = spec.replace(" ", "").replace("\t", "").replace("\n", "")
    for ch in text:
        if ch not in VALID_LETTERS and ch not in _STRUCTURE:
            raise ValueError(
                f"invalid character {ch!r} in spec {spec!r}: indices must be ASCII letters a-z or A-Z "
                "(',' separates inputs, '->' introduces the output, '|' the convolution indices)"
            )
    if text.count("|") > 1:
        raise ValueError(
            f"spec {spec!r} has more than one '|'; list all convolution indices after a single '|'"
        )
    main, _, conv_part = text.partition("|")
    if "|" in text and not conv_part.replace(",", ""):
        raise ValueError(f"spec {spec!r} has a '|' but no convolution index after it")
    if main.count("->") > 1:
        raise ValueError(f"spec {spec!r} has more than one '->'")
    explicit = "->" in main
    lhs, _, out = main.partition("->")
    if "-" in lhs or ">" in lhs or "-" in out or ">" in out:
        raise ValueError(f"spec {spec!r} has a stray '-' or '>' (the output is introduced by '->')")
    if "," in out:
        raise ValueError(f"the output of spec {spec!r} contains ',': there is only one output term")
    inputs = tuple(lhs.split(","))
    for pos, term in enumerate(inputs):
        _check_letters(term, f"input term {pos}", spec)
    _check_letters(conv_part.replace(",", ""), "convolution part", spec)
    conv = tuple(conv_part.replace(",", ""))
    seen: set[str] = set()
    for c in conv:
        if c in seen:
            raise ValueError(f"convolution index {c!r} is listed more than once after '|' in spec {spec!r}")
        seen.add(c)
    all_inputs = "".join(inputs)
    for c in conv:
        if c not in all_inputs:
            raise ValueError(f"convolution index {c!r} of spec {spec!r} is carried by no operand")
        for pos, term in enumerate(inputs):
            if term.count(c) > 1:
                raise ValueError(
                    f"convolution index {c!r} is repeated within input term {pos} ({term!r}) "
                    f"of spec {spec!r}; "
                    "a convolution index may occur at most once per operand"
                )
    if explicit:
        _check_letters(out, "output", spec)
        for ch in out:
            if out.count(ch) > 1:
                raise ValueError(f"index {ch!r} is repeated in the output {out!r} of spec {spec!r}")
            if ch not in all_inputs:
                raise ValueError(f"output index {ch!r} of spec {spec!r} occurs in no input term")
        for c in conv:
            if c not in out:
                raise ValueError(
                    f"convolution index {c!r} of spec {spec!r} is absent from the output {out!r}; "
                    "every convolution index must be kept in the output"
                )
    else:
        once = {ch for ch in all_inputs if all_inputs.count(ch) == 1}
        out = "".join(sorted(once | set(conv)))
    return ParsedSpec(inputs=inputs, output=out, conv=conv)
