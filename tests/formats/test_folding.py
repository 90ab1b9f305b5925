"""Channel folding into balanced factors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tnn.formats import balanced_factors


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [
        (20, 2, (4, 5)),
        (50, 2, (5, 10)),
        (3, 2, (1, 3)),
        (6, 3, (1, 2, 3)),
        (120, 3, (4, 5, 6)),
        (2048, 3, (8, 16, 16)),
        (64, 3, (4, 4, 4)),
        (17, 3, (1, 1, 17)),
        (1, 3, (1, 1, 1)),
        (16, 1, (16,)),
    ],
)
def test_examples(n: int, m: int, expected: tuple[int, ...]) -> None:
    assert balanced_factors(n, m) == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 4))
def test_product_order_and_balance(n: int, m: int) -> None:
    f = balanced_factors(n, m)
    assert len(f) == m and math.prod(f) == n and list(f) == sorted(f)
    # no factorisation has a smaller largest factor (brute force over the first factor for m = 2)
    if m == 2:
        best = min(max(d, n // d) for d in range(1, n + 1) if n % d == 0)
        assert max(f) == best


@pytest.mark.parametrize(("n", "m"), [(0, 2), (5, 0), (2.0, 2), (True, 2), (4, -1)])
def test_bad_arguments(n: object, m: object) -> None:
    with pytest.raises(ValueError, match="balanced_factors"):
        balanced_factors(n, m)  # type: ignore[arg-type]
