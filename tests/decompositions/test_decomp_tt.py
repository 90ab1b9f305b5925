"""TT-SVD: TensorLy oracle, exact recovery, reconstruction, rank conventions and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tnn.decompositions import (
    TTTensor,
    max_tt_rank,
    relative_error,
    tensor_train,
    tt_to_tensor,
    validate_tt_rank,
)

tl = pytest.importorskip("tensorly")
from tensorly.decomposition import tensor_train as tl_tensor_train  # noqa: E402

F64 = torch.float64


@pytest.mark.parametrize(
    ("shape", "rank"), [((6, 7, 8), (3, 4)), ((5, 6, 7, 3), (2, 5, 3)), ((4, 5, 6), (4, 6))]
)
def test_tt_error_matches_tensorly(shape: tuple[int, ...], rank: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=F64)
    ours = tensor_train(x, list(rank))
    assert isinstance(ours, TTTensor)
    cores = tl_tensor_train(x.numpy(), [1, *rank, 1])
    xn = x.numpy()
    reference = float(np.linalg.norm(xn - tl.tt_to_tensor(cores)) / np.linalg.norm(xn))
    assert ours.error <= 1.05 * reference + 1e-12
    assert ours.error == pytest.approx(relative_error(x, tt_to_tensor(ours.cores)), rel=1e-10)
    full = [1, *rank, 1]
    assert [tuple(c.shape) for c in ours.cores] == [
        (full[k], shape[k], full[k + 1]) for k in range(len(shape))
    ]


def test_tt_recovers_exact_low_rank_and_einsum_reconstruction() -> None:
    g = torch.Generator().manual_seed(1)
    ranks = [1, 2, 3, 2, 1]
    shape = (5, 6, 7, 3)
    cores = [torch.randn(ranks[k], shape[k], ranks[k + 1], generator=g, dtype=F64) for k in range(4)]
    x = tt_to_tensor(cores)
    torch.testing.assert_close(x, torch.einsum("aib,bjc,ckd,dle->ijkl", *cores))
    assert tensor_train(x, [2, 3, 2]).error <= 1e-6
    assert tensor_train(x, [1, 2, 3, 2, 1]).error <= 1e-6  # TensorLy-style ranks
    # full ranks: exact for any tensor
    y = torch.randn(*shape, generator=g, dtype=F64)
    assert tensor_train(y, 10_000).error <= 1e-12


def test_tt_int_rank_clipping_and_float32() -> None:
    x = torch.randn(2, 3, 4, 5)
    res = tensor_train(x, 8)
    assert [c.shape[2] for c in res.cores] == [2, 6, 5, 1]  # min(8, max_tt_rank)
    assert res.cores[0].dtype == torch.float32
    assert max_tt_rank((2, 3, 4, 5)) == [1, 2, 6, 5, 1]


def test_tt_rank_validation() -> None:
    shape = (2, 3, 4, 5)
    assert validate_tt_rank(shape, [2, 3, 4]) == [1, 2, 3, 4, 1]
    with pytest.raises(ValueError, match="exceeds the maximal rank 2"):
        validate_tt_rank(shape, [3, 3, 4])
    with pytest.raises(ValueError, match="needs 3 internal ranks"):
        validate_tt_rank(shape, [2, 3])
    with pytest.raises(ValueError, match="start and end with 1"):
        validate_tt_rank(shape, [2, 2, 3, 4, 1])
    with pytest.raises(ValueError, match="must be positive"):
        validate_tt_rank(shape, [2, 0, 4])
    with pytest.raises(ValueError, match=r"exceeds r_1 \* I_1"):
        validate_tt_rank((4, 2, 2, 4), [1, 3, 2])  # r_2 = 3 > r_1 * I_1 = 2
    with pytest.raises(TypeError, match="TT rank"):
        tensor_train(torch.randn(2, 3, dtype=F64), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not connect"):
        tt_to_tensor([torch.ones(1, 2, 2), torch.ones(3, 2, 1)])
    with pytest.raises(ValueError, match="boundary ranks"):
        tt_to_tensor([torch.ones(2, 2, 2), torch.ones(2, 2, 2)])
