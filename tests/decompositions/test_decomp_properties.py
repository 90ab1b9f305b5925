"""Property checks on random shapes (hypothesis): exactness at maximal ranks, MTTKRP identity."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnn.decompositions import (
    khatri_rao,
    max_tt_rank,
    mttkrp,
    tensor_ring,
    tensor_train,
    tr_to_tensor,
    tt_to_tensor,
    tucker,
    unfold,
)

F64 = torch.float64
shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


def _tensor(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_maximal_ranks_are_exact(shape: tuple[int, ...], seed: int) -> None:
    x = _tensor(shape, seed)
    tt = tensor_train(x, max(max_tt_rank(shape)))
    assert tt.error <= 1e-10
    torch.testing.assert_close(tt_to_tensor(tt.cores), x)
    tk = tucker(x, list(shape))
    assert tk.error <= 1e-10
    # a ring with r_0 = 1 and the TT ranks is a tensor train: TR-SVD is exact
    tr = tensor_ring(x, max_tt_rank(shape)[:-1])
    assert tr.error <= 1e-10
    torch.testing.assert_close(tr_to_tensor(tr.cores), x)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, rank=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_mttkrp_equals_unfolding_times_khatri_rao(shape: tuple[int, ...], rank: int, seed: int) -> None:
    x = _tensor(shape, seed)
    factors = [_tensor((s, rank), seed + 1 + n) for n, s in enumerate(shape)]
    for n in range(len(shape)):
        others = [f for m, f in enumerate(factors) if m != n]
        torch.testing.assert_close(mttkrp(x, factors, n), unfold(x, n) @ khatri_rao(others))
