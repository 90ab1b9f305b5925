"""Channel folding: split a channel count into ``m`` balanced integer factors.

The reshaped formats (``rcp``, ``rtk``, ``rtt``, ``rtr``) view the ``S`` input and ``T`` output channels of
a layer as ``m`` folded modes each, ``S = S_0 * ... * S_{m-1}`` in row-major order, so that channel
``s`` corresponds to the multi-index ``(s_0, ..., s_{m-1})`` of ``torch.reshape(S_0, ..., S_{m-1})``.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["balanced_factors"]


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


@lru_cache(maxsize=4096)
def _best(n: int, m: int, lo: int) -> tuple[int, ...] | None:
    """Non-decreasing factorisation of ``n`` into ``m`` factors, each ``>= lo``, minimising the largest
    factor and then the sum of squared logs (i.e. as balanced as possible)."""
    if m == 1:
        return (n,) if n >= lo else None
    best: tuple[int, ...] | None = None
    best_key: tuple[float, float] | None = None
    for d in _divisors(n):
        if d < lo or d**m > n:  # factors are non-decreasing, so the first is at most n ** (1/m)
            continue
        rest = _best(n // d, m - 1, d)
        if rest is None:
            continue
        cand = (d, *rest)
        key = (max(cand), sum(math.log(c) ** 2 for c in cand))
        if best_key is None or key < best_key:
            best, best_key = cand, key
    return best


def balanced_factors(n: int, m: int) -> tuple[int, ...]:
    """Split ``n`` into ``m`` integer factors that are as equal as possible.

    Parameters
    ----------
    n : int
        The number to factorise (a channel count), ``n >= 1``.
    m : int
        The number of factors, ``m >= 1``.

    Returns
    -------
    tuple of int
        ``m`` non-decreasing factors whose product is ``n``; the largest factor is minimal among all
        such factorisations (ties broken towards equal factors). Primes give ``(1, ..., 1, n)``.

    Examples
    --------
    >>> balanced_factors(20, 2), balanced_factors(50, 2), balanced_factors(3, 2), balanced_factors(120, 3)
    ((4, 5), (5, 10), (1, 3), (4, 5, 6))
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"balanced_factors: n must be a positive int, got {n!r}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"balanced_factors: m must be a positive int, got {m!r}")
    result = _best(n, m, 1)
    assert result is not None  # (1, ..., 1, n) always exists
    return result
