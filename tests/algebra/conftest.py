"""Fixtures for the algebra tests.

The tests evaluate thousands of tiny operations; with several intra-op threads on a shared, loaded
machine, each tiny ``F.conv`` call can cost tens of milliseconds of thread hand-off. One thread makes
them microseconds; the previous setting is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
