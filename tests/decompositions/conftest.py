"""TensorLy (the oracle of these tests) runs on its numpy backend here; its backend is global state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

tl = pytest.importorskip("tensorly")


@pytest.fixture(autouse=True)
def _tensorly_numpy_backend() -> Iterator[None]:
    with tl.backend_context("numpy"):
        yield
