"""Tucker / partial Tucker (HOSVD + HOOI): TensorLy oracle, exact recovery, reconstruction, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tnn.decompositions import (
    TuckerTensor,
    max_tucker_rank,
    partial_tucker,
    relative_error,
    tucker,
    tucker_to_tensor,
    validate_tucker_rank,
)

tl = pytest.importorskip("tensorly")
from tensorly.decomposition import partial_tucker as tl_partial_tucker  # noqa: E402
from tensorly.decomposition import tucker as tl_tucker  # noqa: E402

F64 = torch.float64


def _rel(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y) / np.linalg.norm(x))


@pytest.mark.parametrize(
    ("shape", "rank", "seed"),
    [((6, 7, 8), (2, 3, 4), 0), ((6, 7, 8), (4, 4, 4), 1), ((5, 6, 7, 3), (3, 2, 4, 2), 2)],
)
def test_tucker_error_matches_tensorly(shape: tuple[int, ...], rank: tuple[int, ...], seed: int) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    ours = tucker(x, list(rank))
    assert isinstance(ours, TuckerTensor)
    core, factors = tl_tucker(x.numpy(), list(rank), random_state=0)
    reference = _rel(x.numpy(), tl.tucker_to_tensor((core, factors)))
    assert ours.error <= 1.05 * reference + 1e-12
    assert ours.error == pytest.approx(
        relative_error(x, tucker_to_tensor(ours.core, ours.factors)), rel=1e-10
    )
    assert tuple(ours.core.shape) == rank


@pytest.mark.parametrize(("modes", "rank"), [((0, 1), (3, 4)), ((0, 2), (2, 5)), ((3,), (2,))])
def test_partial_tucker_error_matches_tensorly(modes: tuple[int, ...], rank: tuple[int, ...]) -> None:
    x = torch.randn(5, 6, 7, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    ours = partial_tucker(x, list(rank), list(modes))
    (core, factors), _ = tl_partial_tucker(x.numpy(), list(rank), modes=list(modes), random_state=0)
    reference = _rel(x.numpy(), tl.tenalg.multi_mode_dot(core, factors, modes=list(modes)))
    assert ours.error <= 1.05 * reference + 1e-12
    # untouched modes keep their size, factored modes get the rank
    expected = list(x.shape)
    for m, r in zip(modes, rank, strict=True):
        expected[m] = r
    assert list(ours.core.shape) == expected
    for f in ours.factors:
        torch.testing.assert_close(f.T @ f, torch.eye(f.shape[1], dtype=F64))


def test_tucker2_on_conv_kernel_layout() -> None:
    kernel = torch.randn(16, 8, 3, 3, dtype=F64)
    res = partial_tucker(kernel, [4, 3], modes=[0, 1])
    assert res.core.shape == (4, 3, 3, 3)
    assert [f.shape for f in res.factors] == [(16, 4), (8, 3)]
    ref = torch.einsum("tu,sv,uvhw->tshw", res.factors[0], res.factors[1], res.core)
    torch.testing.assert_close(tucker_to_tensor(res.core, res.factors, modes=[0, 1]), ref)
    assert res.error == pytest.approx(relative_error(kernel, ref), rel=1e-10)


def test_tucker_recovers_exact_low_rank() -> None:
    g = torch.Generator().manual_seed(4)
    core = torch.randn(2, 3, 4, generator=g, dtype=F64)
    factors = [torch.randn(s, r, generator=g, dtype=F64) for s, r in zip((6, 7, 8), (2, 3, 4), strict=True)]
    x = tucker_to_tensor(core, factors)
    assert tucker(x, [2, 3, 4]).error <= 1e-6
    assert tucker(x, [2, 3, 4], n_iter_max=0).error <= 1e-6  # plain HOSVD
    assert partial_tucker(x, [3, 4], modes=[1, 2]).error <= 1e-6


def test_hooi_never_worse_than_hosvd_and_redundant_rank() -> None:
    x = torch.randn(6, 7, 8, generator=torch.Generator().manual_seed(5), dtype=F64)
    hosvd = tucker(x, [2, 2, 3], n_iter_max=0)
    hooi = tucker(x, [2, 2, 3], n_iter_max=10)
    assert hooi.error <= hosvd.error + 1e-12
    # rank 5 on mode 2 exceeds the product 2*2 of the other ranks: orthonormal factors of the right shape
    res = tucker(x, [2, 2, 5])
    assert res.factors[2].shape == (8, 5)
    torch.testing.assert_close(res.factors[2].T @ res.factors[2], torch.eye(5, dtype=F64))


def test_tucker_float32_int_rank_clipping() -> None:
    x = torch.randn(3, 7, 8)
    res = tucker(x, 5)  # int rank clipped to each mode: (3, 5, 5)
    assert res.core.shape == (3, 5, 5) and res.core.dtype == torch.float32
    assert 0 < res.error < 1


def test_tucker_rank_validation() -> None:
    assert max_tucker_rank((3, 4)) == [3, 4]
    assert validate_tucker_rank((3, 4, 5), 4) == [3, 4, 4]
    assert validate_tucker_rank((3, 4, 5), [2, 5], modes=[0, 2]) == [2, 5]
    x = torch.randn(3, 4, 5, dtype=F64)
    with pytest.raises(ValueError, match="exceeds the size 4 of mode 1"):
        tucker(x, [2, 5, 2])
    with pytest.raises(ValueError, match="one entry per factorised mode"):
        tucker(x, [2, 2])
    with pytest.raises(ValueError, match="must be positive"):
        partial_tucker(x, [0], modes=[1])
    with pytest.raises(ValueError, match="out of range"):
        partial_tucker(x, [2], modes=[3])
    with pytest.raises(ValueError, match="distinct"):
        partial_tucker(x, [2, 2], modes=[1, 1])
    with pytest.raises(ValueError, match="n_iter_max"):
        tucker(x, 2, n_iter_max=-1)
    with pytest.raises(ValueError, match="factor 0"):
        tucker_to_tensor(torch.ones(2, 2, dtype=F64), [torch.ones(3, 3, dtype=F64)])
