"""Building blocks of tnn.decompositions against direct torch references."""

from __future__ import annotations

import pytest
import torch

from tnn.decompositions import fold, khatri_rao, mode_dot, mttkrp, relative_error, truncated_svd, unfold
from tnn.decompositions._utils import leading_left_singular_vectors, make_generator

F64 = torch.float64


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_unfold_fold_roundtrip_and_layout(mode: int) -> None:
    x = torch.randn(2, 3, 4, 5, dtype=F64)
    m = unfold(x, mode)
    assert m.shape == (x.shape[mode], x.numel() // x.shape[mode])
    assert torch.equal(fold(m, mode, x.shape), x)
    # row i of the unfolding is the slice x[..., i, ...] flattened in C order
    assert torch.equal(m[1], x.select(mode, 1).reshape(-1))


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_mode_dot_matches_einsum(mode: int) -> None:
    x = torch.randn(3, 4, 5, dtype=F64)
    a = torch.randn(6, x.shape[mode], dtype=F64)
    letters = "abc"
    out = letters.replace(letters[mode], "z")
    ref = torch.einsum(f"{letters},z{letters[mode]}->{out}", x, a)
    torch.testing.assert_close(mode_dot(x, a, mode), ref)


def test_khatri_rao_and_mttkrp() -> None:
    x = torch.randn(3, 4, 5, 2, dtype=F64)
    factors = [torch.randn(s, 6, dtype=F64) for s in x.shape]
    kr = khatri_rao(factors[1:])
    ref = torch.einsum("br,cr,dr->bcdr", *factors[1:]).reshape(-1, 6)
    torch.testing.assert_close(kr, ref)
    for n in range(4):
        others = [f for m, f in enumerate(factors) if m != n]
        torch.testing.assert_close(mttkrp(x, factors, n), unfold(x, n) @ khatri_rao(others))


def test_truncated_svd_exact_path_and_signs() -> None:
    a = torch.randn(7, 9, dtype=F64)
    u, s, vh = truncated_svd(a, 4)
    assert u.shape == (7, 4) and s.shape == (4,) and vh.shape == (4, 9)
    torch.testing.assert_close(s, torch.linalg.svdvals(a)[:4])
    torch.testing.assert_close(u.T @ u, torch.eye(4, dtype=F64))
    # sign convention: largest-magnitude entry of each column of U is positive
    idx = u.abs().argmax(0)
    assert bool((u[idx, torch.arange(4)] > 0).all())
    full = truncated_svd(a, 100)
    torch.testing.assert_close(full[0] * full[1] @ full[2], a)


def test_truncated_svd_randomised_path_is_accurate() -> None:
    g = torch.Generator().manual_seed(1)
    low = torch.randn(1100, 8, generator=g, dtype=F64) @ torch.randn(8, 1050, generator=g, dtype=F64)
    u, s, vh = truncated_svd(low, 8)  # min side >= 1024 and 8 small: randomised path
    assert relative_error(low, u * s @ vh) < 1e-10
    # known spectrum: 8 large singular values over a flat tail of 52, optimal error known in closed form
    left = torch.linalg.qr(torch.randn(1100, 60, generator=g, dtype=F64)).Q
    right = torch.linalg.qr(torch.randn(1050, 60, generator=g, dtype=F64)).Q
    sv = torch.cat([torch.linspace(20, 10, 8, dtype=F64), torch.ones(52, dtype=F64)])
    noisy = left * sv @ right.T
    u, s, vh = truncated_svd(noisy, 8)
    optimal = float(sv[8:].square().sum().sqrt() / sv.square().sum().sqrt())
    assert relative_error(noisy, u * s @ vh) <= 1.001 * optimal
    torch.testing.assert_close(s, sv[:8])
    torch.testing.assert_close(u.T @ u, torch.eye(8, dtype=F64))


def test_leading_left_singular_vectors_gram_path_and_completion() -> None:
    a = torch.randn(5, 60, dtype=F64)  # wide: Gram path
    u = leading_left_singular_vectors(a, 3)
    ref = torch.linalg.svd(a, full_matrices=False)[0][:, :3]
    torch.testing.assert_close((u.T @ ref).abs(), torch.eye(3, dtype=F64))
    b = torch.randn(8, 3, dtype=F64)  # fewer columns than requested vectors: orthonormal completion
    v = leading_left_singular_vectors(b, 5)
    assert v.shape == (8, 5)
    torch.testing.assert_close(v.T @ v, torch.eye(5, dtype=F64))


def test_relative_error_and_generator_validation() -> None:
    x = torch.ones(2, 2, dtype=F64)
    assert relative_error(x, x) == 0.0
    assert relative_error(x, torch.zeros_like(x)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(x, torch.ones(4, dtype=F64))
    with pytest.raises(TypeError, match="random_state"):
        make_generator("seed")  # type: ignore[arg-type]


def test_every_format_on_a_matrix_reaches_the_eckart_young_optimum() -> None:
    from tnn.decompositions import cp, tensor_ring, tensor_train, tucker

    m = torch.randn(9, 7, generator=torch.Generator().manual_seed(2), dtype=F64)
    sv = torch.linalg.svdvals(m)
    optimal = float(sv[3:].square().sum().sqrt() / sv.square().sum().sqrt())
    assert cp(m, 3, n_iter_max=500, tol=0.0).error == pytest.approx(optimal, rel=1e-6)
    assert tucker(m, 3).error == pytest.approx(optimal, rel=1e-10)
    assert tensor_train(m, 3).error == pytest.approx(optimal, rel=1e-10)
    assert tensor_ring(m, [1, 3]).error == pytest.approx(optimal, rel=1e-10)
