"""Tensor ring: TR-SVD against TensorLy, ALS optimality and monotonicity, exact recovery, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tnn.decompositions import TRTensor, relative_error, tensor_ring, tr_to_tensor, validate_tr_rank
from tnn.decompositions.tr import _als_update

tl = pytest.importorskip("tensorly")
from tensorly.decomposition import tensor_ring as tl_tensor_ring  # noqa: E402

F64 = torch.float64


def _random_ring(shape: tuple[int, ...], ranks: list[int], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(shape)
    return [torch.randn(ranks[k], shape[k], ranks[(k + 1) % n], generator=g, dtype=F64) for k in range(n)]


def _design_matrix(cores: list[torch.Tensor], k: int) -> torch.Tensor:
    """Brute force: the reconstruction is linear in core ``k``; its matrix, built column by column."""
    columns = []
    for e in torch.eye(cores[k].numel(), dtype=F64):
        trial = list(cores)
        trial[k] = e.reshape(cores[k].shape)
        columns.append(tr_to_tensor(trial).reshape(-1))
    return torch.stack(columns, 1)


@pytest.mark.parametrize(
    ("shape", "rank"), [((6, 7, 8), [2, 2, 2]), ((5, 6, 7, 3), [2, 2, 3, 2]), ((6, 7, 8), [1, 4, 3])]
)
def test_tr_svd_error_matches_tensorly(shape: tuple[int, ...], rank: list[int]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)), dtype=F64)
    ours = tensor_ring(x, rank)
    assert isinstance(ours, TRTensor)
    xn = x.numpy()
    cores = tl_tensor_ring(xn, [*rank, rank[0]])
    reference = float(np.linalg.norm(xn - tl.tr_to_tensor(cores)) / np.linalg.norm(xn))
    assert ours.error <= 1.05 * reference + 1e-12
    n = len(shape)
    assert [tuple(c.shape) for c in ours.cores] == [(rank[k], shape[k], rank[(k + 1) % n]) for k in range(n)]
    assert ours.error == pytest.approx(relative_error(x, tr_to_tensor(ours.cores)), rel=1e-10)


def test_tr_to_tensor_matches_einsum() -> None:
    cores = _random_ring((3, 4, 2, 5), [2, 3, 1, 2], seed=0)
    ref = torch.einsum("aib,bjc,ckd,dla->ijkl", *cores)
    torch.testing.assert_close(tr_to_tensor(cores), ref)
    two = _random_ring((3, 4), [2, 3], seed=1)
    torch.testing.assert_close(tr_to_tensor(two), torch.einsum("aib,bja->ij", *two))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_als_update_is_the_least_squares_optimum(k: int) -> None:
    shape, ranks = (4, 3, 2, 3), [2, 3, 2, 2]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    cores = _random_ring(shape, ranks, seed=3)
    updated = _als_update(x, cores, k)
    design = _design_matrix(cores, k)
    best = torch.linalg.lstsq(design, x.reshape(-1, 1)).solution.reshape(updated.shape)
    ours = list(cores)
    ours[k] = updated
    ref = list(cores)
    ref[k] = best
    assert relative_error(x, tr_to_tensor(ours)) == pytest.approx(
        relative_error(x, tr_to_tensor(ref)), rel=1e-9
    )


@pytest.mark.parametrize("k", [0, 2])
def test_ridge_als_update_is_the_ridge_optimum(k: int) -> None:
    shape, ranks = (4, 3, 2, 3), [2, 3, 2, 2]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(12), dtype=F64)
    cores = _random_ring(shape, ranks, seed=13)
    reg = 0.3
    updated = _als_update(x, cores, k, reg)
    design = _design_matrix(cores, k)
    # ridge normal equations; the weight is relative to the mean diagonal of design^T design
    gram = design.T @ design
    lam = reg * gram.diagonal().mean()
    best = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=F64), design.T @ x.reshape(-1))
    torch.testing.assert_close(updated, best.reshape(updated.shape), rtol=1e-9, atol=1e-11)
    assert not torch.allclose(updated, _als_update(x, cores, k))


def test_ridge_keeps_tr_cores_at_the_tensor_scale() -> None:
    # a low-rank ring approximation of an unstructured tensor: plain ALS drifts to large, cancelling
    # cores; the ridge keeps the product of the core norms near ||x|| at almost the same error
    x = torch.randn(4, 4, 4, 4, 9, generator=torch.Generator().manual_seed(21), dtype=F64)
    ranks = [3, 3, 3, 3, 2]

    def gain(result: TRTensor) -> float:
        return float(torch.stack([c.norm() for c in result.cores]).prod() / x.norm())

    plain = tensor_ring(x, ranks, n_iter_max=10, random_state=0)
    ridge = tensor_ring(x, ranks, n_iter_max=10, random_state=0, regularization=0.1)
    assert gain(ridge) < 0.5 * gain(plain)
    assert ridge.error <= plain.error + 0.02
    assert ridge.error == pytest.approx(relative_error(x, tr_to_tensor(ridge.cores)), rel=1e-10)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_tr_rejects_bad_regularization(bad: object) -> None:
    with pytest.raises(ValueError, match="regularization"):
        tensor_ring(torch.randn(3, 4, 5), 2, n_iter_max=1, regularization=bad)  # type: ignore[arg-type]


def test_tr_als_never_increases_error() -> None:
    x = torch.randn(5, 6, 7, generator=torch.Generator().manual_seed(4), dtype=F64)
    errors = [tensor_ring(x, [2, 2, 3], n_iter_max=n, tol=0.0).error for n in (0, 1, 3, 8)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < errors[0]


def test_tr_recovers_exact_low_rank() -> None:
    ranks = [2, 2, 3, 2]
    x = tr_to_tensor(_random_ring((5, 6, 7, 4), ranks, seed=5))
    # TR-SVD alone is not exact for a generic ring (the first split mixes r_0 and r_1); ALS is
    assert tensor_ring(x, ranks, n_iter_max=30).error <= 1e-6
    # a ring with r_0 = 1 is a tensor train, recovered by TR-SVD alone
    y = tr_to_tensor(_random_ring((5, 6, 7, 4), [1, 2, 3, 2], seed=6))
    assert tensor_ring(y, [1, 2, 3, 2]).error <= 1e-6


def test_tr_first_split_larger_than_mode_is_padded() -> None:
    # r_0 * r_1 = 9 > I_0 = 4: TR-SVD pads with zeros, ALS revives the dead slices
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(7), dtype=F64)
    svd_only = tensor_ring(x, 3)
    assert [tuple(c.shape) for c in svd_only.cores] == [(3, 4, 3), (3, 5, 3), (3, 6, 3)]
    refined = tensor_ring(x, 3, n_iter_max=10, random_state=0)
    assert refined.error < svd_only.error
    again = tensor_ring(x, 3, n_iter_max=10, random_state=0)
    assert all(torch.equal(a, b) for a, b in zip(refined.cores, again.cores, strict=True))


def test_tr_float32() -> None:
    x = torch.randn(4, 5, 6)
    res = tensor_ring(x, [2, 2, 2], n_iter_max=2)
    assert all(c.dtype == torch.float32 for c in res.cores)
    assert 0 < res.error < 1


def test_tr_rank_validation() -> None:
    assert validate_tr_rank((3, 4, 5), 2) == [2, 2, 2]
    assert validate_tr_rank((3, 4, 5), [2, 3, 4, 2]) == [2, 3, 4]
    with pytest.raises(ValueError, match="needs 3 ranks"):
        validate_tr_rank((3, 4, 5), [2, 3])
    with pytest.raises(ValueError, match=r"rank\[0\] == rank\[N\]"):
        validate_tr_rank((3, 4, 5), [2, 3, 4, 1])
    with pytest.raises(ValueError, match="must be positive"):
        validate_tr_rank((3, 4, 5), [2, 0, 2])
    with pytest.raises(ValueError, match=r"exceeds r_0 \* I_0"):
        validate_tr_rank((2, 4, 5), [1, 3, 1])
    with pytest.raises(ValueError, match="order >= 2"):
        validate_tr_rank((3,), 2)
    with pytest.raises(ValueError, match="does not close"):
        tr_to_tensor([torch.ones(2, 3, 3), torch.ones(3, 3, 1)])
    with pytest.raises(ValueError, match="n_iter_max"):
        tensor_ring(torch.randn(3, 4, dtype=F64), 1, n_iter_max=-1)
