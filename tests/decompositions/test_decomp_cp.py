"""CP-ALS: oracle comparison with TensorLy, exact recovery, reconstruction, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tnn.decompositions import (
    CPTensor,
    absorb_weights,
    cp,
    cp_normalize,
    cp_to_tensor,
    relative_error,
    validate_cp_rank,
)

tl = pytest.importorskip("tensorly")
from tensorly.decomposition import parafac  # noqa: E402

F64 = torch.float64


def _tensorly_cp_error(x: torch.Tensor, rank: int) -> float:
    xn = x.numpy()
    cp_tensor = parafac(xn, rank, init="svd", n_iter_max=100, tol=1e-8, random_state=0)
    rec = tl.cp_to_tensor(cp_tensor)
    return float(np.linalg.norm(xn - rec) / np.linalg.norm(xn))


@pytest.mark.parametrize(
    ("shape", "rank", "seed"), [((6, 7, 8), 3, 0), ((6, 7, 8), 5, 1), ((5, 6, 7, 3), 3, 2)]
)
def test_cp_error_matches_tensorly(shape: tuple[int, ...], rank: int, seed: int) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    ours = cp(x, rank, random_state=0)
    assert isinstance(ours, CPTensor)
    assert ours.error <= 1.05 * _tensorly_cp_error(x, rank) + 1e-12
    # the reported error is the true one
    assert ours.error == pytest.approx(relative_error(x, cp_to_tensor(ours.weights, ours.factors)), rel=1e-10)


def _low_rank_cp(shape: tuple[int, ...], rank: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(rank, generator=g, dtype=F64) + 0.5
    factors = [torch.randn(s, rank, generator=g, dtype=F64) for s in shape]
    return cp_to_tensor(weights, factors)


@pytest.mark.parametrize("init", ["svd", "random"])
def test_cp_recovers_exact_low_rank(init: str) -> None:
    x = _low_rank_cp((6, 7, 8), 3, seed=3)
    res = cp(x, 3, init=init, random_state=0)
    assert res.error <= 1e-6
    assert res.weights.shape == (3,) and [f.shape for f in res.factors] == [(6, 3), (7, 3), (8, 3)]
    torch.testing.assert_close(torch.linalg.vector_norm(res.factors[1], dim=0), torch.ones(3, dtype=F64))


def test_cp_rank_above_mode_size_and_order_four() -> None:
    x = _low_rank_cp((3, 4, 5, 2), 4, seed=7)  # rank 4 exceeds two mode sizes: padded SVD init
    res = cp(x, 4, random_state=0, n_iter_max=100, tol=0.0)
    assert res.error <= 1e-6


def test_cp_to_tensor_matches_einsum() -> None:
    w = torch.randn(4, dtype=F64)
    fs = [torch.randn(s, 4, dtype=F64) for s in (2, 9, 3)]
    ref = torch.einsum("r,ar,br,cr->abc", w, *fs)
    torch.testing.assert_close(cp_to_tensor(w, fs), ref)
    torch.testing.assert_close(cp_to_tensor(None, fs), torch.einsum("ar,br,cr->abc", *fs))
    nw, nf = cp_normalize(w, fs)
    torch.testing.assert_close(cp_to_tensor(nw, nf), ref)
    torch.testing.assert_close(torch.linalg.vector_norm(nf[2], dim=0), torch.ones(4, dtype=F64))
    torch.testing.assert_close(cp_to_tensor(None, absorb_weights(w, fs, mode=1)), ref)


def test_cp_float32_and_determinism() -> None:
    x = torch.randn(6, 7, 8)
    a = cp(x, 4, init="random", random_state=5, n_iter_max=20)
    b = cp(x, 4, init="random", random_state=5, n_iter_max=20)
    assert a.weights.dtype == torch.float32 and all(f.dtype == torch.float32 for f in a.factors)
    assert all(torch.equal(f, g) for f, g in zip(a.factors, b.factors, strict=True))
    assert 0 < a.error < 1
    low = _low_rank_cp((6, 7, 8), 2, seed=6).float()
    assert cp(low, 2).error <= 1e-4  # float32 precision


def test_cp_validation_errors() -> None:
    x = torch.randn(3, 4, 5, dtype=F64)
    assert validate_cp_rank(7) == 7
    with pytest.raises(ValueError, match="positive"):
        cp(x, 0)
    with pytest.raises(TypeError, match="CP rank"):
        cp(x, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init"):
        cp(x, 2, init="hosvd")
    with pytest.raises(ValueError, match="n_iter_max"):
        cp(x, 2, n_iter_max=0)
    with pytest.raises(TypeError, match="floating-point"):
        cp(torch.ones(3, 4, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cp(torch.ones(3, dtype=F64), 2)
    with pytest.raises(ValueError, match="shape"):
        cp_to_tensor(torch.ones(3, dtype=F64), [torch.ones(2, 2, dtype=F64)])


def _component_gain(result) -> float:  # type: ignore[no-untyped-def]
    """Sum over components of |weight| * prod of factor-column norms, over ||X_hat|| (>= 1; large when the
    components cancel)."""
    norms = torch.stack([torch.linalg.vector_norm(f, dim=0) for f in result.factors]).prod(0)
    x_hat = cp_to_tensor(result.weights, result.factors)
    return float((result.weights.abs() * norms).sum() / x_hat.norm())


def test_cp_ridge_curbs_cancelling_components() -> None:
    # many components on an unstructured tensor: plain ALS lets components grow and cancel
    x = torch.randn(16, 9, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plain = cp(x, 40, n_iter_max=100, random_state=0)
    ridge = cp(x, 40, n_iter_max=100, random_state=0, regularization=0.1)
    assert _component_gain(ridge) < 0.7 * _component_gain(plain)
    assert ridge.error <= plain.error + 0.1
    x_hat = cp_to_tensor(ridge.weights, ridge.factors)
    assert ridge.error == pytest.approx(relative_error(x, x_hat), rel=1e-10)
    # regularization=0 is plain ALS, bit for bit
    again = cp(x, 40, n_iter_max=100, random_state=0, regularization=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain.factors, again.factors, strict=True))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, None])
def test_cp_rejects_bad_regularization(bad: object) -> None:
    with pytest.raises(ValueError, match="regularization"):
        cp(torch.randn(3, 4, 5), 2, regularization=bad)  # type: ignore[arg-type]
