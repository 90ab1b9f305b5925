"""One converter from the values tnn writes as metadata (tensors, NumPy values, tuples, paths) to JSON."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any


def to_jsonable(value: Any, *, strict: bool = False) -> Any:
    """``value`` as plain JSON-safe Python data, recursively.

    Parameters
    ----------
    value : any
        Typically a metadata dict. Dicts (any ``Mapping``) become ``dict`` with ``str`` keys; lists and
        tuples become lists; tensors, NumPy arrays and NumPy scalars become (nested) lists or Python
        numbers through their ``tolist()``; paths (``os.PathLike``) become strings. Anything else is
        returned unchanged (``json.dumps`` then rejects what it cannot write).
    strict : bool
        Also replace non-finite floats (NaN, +-inf) by ``None``, so that the result passes
        ``json.dumps(..., allow_nan=False)``. Off by default: NaN figures stay NaN.

    Returns
    -------
    any
        The converted value; the input is not modified.

    Examples
    --------
    >>> to_jsonable({"ranks": (2, 3), 1: {"x": (0.5,)}})
    {'ranks': [2, 3], '1': {'x': [0.5]}}
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, strict=strict) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(value.tolist(), strict=strict)
    if strict and isinstance(value, float) and not math.isfinite(value):
        return None
    return value
