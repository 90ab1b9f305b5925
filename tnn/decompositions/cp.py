"""CP (CANDECOMP/PARAFAC) decomposition by alternating least squares.

A rank-``R`` CP tensor of order ``N`` is

    X_hat[i_0, ..., i_{N-1}] = sum_r weights[r] * A_0[i_0, r] * ... * A_{N-1}[i_{N-1}, r],

with factors ``A_n`` of shape ``(I_n, R)`` and ``weights`` of shape ``(R,)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import (
    RandomState,
    add_ridge,
    check_regularization,
    check_tensor,
    fold,
    khatri_rao,
    leading_left_singular_vectors,
    make_generator,
    mttkrp,
    random_normal,
    relative_error,
    unfold,
)

__all__ = [
    "CPTensor",
    "absorb_weights",
    "cp",
    "cp_normalize",
    "cp_to_tensor",
    "validate_cp_rank",
]


class CPTensor(NamedTuple):
    """Result of :func:`cp`.

    Attributes
    ----------
    weights : Tensor
        Shape ``(R,)``, the column scales.
    factors : list of Tensor
        ``factors[n]`` has shape ``(I_n, R)`` with unit-norm columns.
    error : float
        Relative reconstruction error ``||X - X_hat||_F / ||X||_F``.
    """

    weights: Tensor
    factors: list[Tensor]
    error: float


def validate_cp_rank(rank: int) -> int:
    """Check a CP rank: a positive Python int (CP ranks may exceed the mode sizes).

    Raises
    ------
    TypeError
        If ``rank`` is not an int.
    ValueError
        If ``rank < 1``.
    """
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"CP rank must be a positive int, got {rank!r} ({type(rank).__name__})")
    if rank < 1:
        raise ValueError(f"CP rank must be a positive int, got {rank}")
    return rank


def _check_cp(weights: Tensor | None, factors: list[Tensor]) -> int:
    if len(factors) == 0:
        raise ValueError("CP factors must be a non-empty list of (I_n, R) matrices")
    rank = factors[0].shape[-1]
    for n, f in enumerate(factors):
        if f.ndim != 2 or f.shape[1] != rank:
            raise ValueError(f"CP factor {n} must have shape (I_{n}, R={rank}), got {tuple(f.shape)}")
    if weights is not None and tuple(weights.shape) != (rank,):
        raise ValueError(f"CP weights must have shape (R,)=({rank},), got {tuple(weights.shape)}")
    return rank


def cp_to_tensor(weights: Tensor | None, factors: list[Tensor]) -> Tensor:
    """Full tensor ``sum_r w_r a_0r o ... o a_{N-1}r`` of shape ``(I_0, ..., I_{N-1})``.

    ``weights=None`` means all ones. The Khatri-Rao product of every factor but the one of the largest
    mode is formed (``prod(shape) / I_max * R`` entries), never an ``(R, ...)`` stack of rank-one tensors.
    """
    _check_cp(weights, factors)
    shape = [f.shape[0] for f in factors]
    largest = max(range(len(shape)), key=lambda n: shape[n])
    lead = factors[largest] if weights is None else factors[largest] * weights
    others = [f for n, f in enumerate(factors) if n != largest]
    if not others:
        return lead.sum(1)
    unfolded = lead @ khatri_rao(others).T
    return fold(unfolded, largest, shape)


def cp_normalize(weights: Tensor | None, factors: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """Rescale every factor to unit-norm columns, moving the norms into the weights.

    Returns
    -------
    weights : Tensor
        Shape ``(R,)``.
    factors : list of Tensor
        Same shapes as the input, columns of norm 1 (zero columns are left at zero).
    """
    rank = _check_cp(weights, factors)
    like = factors[0]
    w = torch.ones(rank, dtype=like.dtype, device=like.device) if weights is None else weights.clone()
    out = []
    for f in factors:
        norms = torch.linalg.vector_norm(f, dim=0)
        w = w * norms
        out.append(f / torch.where(norms > 0, norms, torch.ones_like(norms)))
    return w, out


def absorb_weights(weights: Tensor | None, factors: list[Tensor], mode: int = 0) -> list[Tensor]:
    """Factors with the weights multiplied into ``factors[mode]`` (``cp_to_tensor`` is unchanged)."""
    _check_cp(weights, factors)
    if not -len(factors) <= mode < len(factors):
        raise ValueError(f"mode must be in [0, {len(factors)}), got {mode}")
    out = list(factors)
    if weights is not None:
        out[mode] = out[mode] * weights
    return out


def _solve_gram(gram: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``X gram = rhs`` for ``X`` (gram symmetric PSD ``(R, R)``, rhs ``(I, R)``)."""
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        return torch.cholesky_solve(rhs.T, chol).T
    return rhs @ torch.linalg.pinv(gram, hermitian=True)


def _init_factors(tensor: Tensor, rank: int, init: str, generator: torch.Generator | None) -> list[Tensor]:
    factors = []
    for n, size in enumerate(tensor.shape):
        if init == "random" or n == 0:
            # mode 0 is recomputed first by ALS, its initial value is never used with init="svd"
            f = random_normal((size, rank), generator, tensor)
        else:
            f = leading_left_singular_vectors(unfold(tensor, n), rank)
            if f.shape[1] < rank:
                f = torch.cat([f, random_normal((size, rank - f.shape[1]), generator, tensor)], dim=1)
        factors.append(f / torch.linalg.vector_norm(f, dim=0).clamp_min(torch.finfo(f.dtype).tiny))
    return factors


def cp(
    tensor: Tensor,
    rank: int,
    *,
    init: str = "svd",
    n_iter_max: int = 100,
    tol: float = 1e-8,
    random_state: RandomState = None,
    regularization: float = 0.0,
) -> CPTensor:
    """CP decomposition by alternating least squares (CP-ALS).

    Parameters
    ----------
    tensor : Tensor
        Shape ``(I_0, ..., I_{N-1})``, float32 or float64, any device; ``N >= 2``.
    rank : int
        Number of rank-one components ``R``.
    init : {"svd", "random"}
        ``"svd"``: leading left singular vectors of each unfolding (padded with random columns when
        ``R > I_n``); ``"random"``: standard normal factors.
    n_iter_max : int
        Maximum number of ALS sweeps (each sweep updates every factor once).
    tol : float
        Stop when the relative change of the reconstruction error between sweeps is below ``tol``.
    random_state : None, int or torch.Generator
        Source of randomness (random init and padding); ``None`` uses torch's global RNG.
    regularization : float
        Ridge weight of each factor update, relative to the mean diagonal of its Gram matrix and scaled by
        the relative error of the previous sweep (1 before the first; 0: plain least squares). With many
        components plain CP-ALS tends to components that are large and cancel each other (degeneracy); the
        ridge keeps them at the tensor's scale while the fit is poor, and vanishes as the error does, so a
        tensor of rank ``R`` is still recovered exactly.

    Returns
    -------
    CPTensor
        ``(weights (R,), factors [(I_n, R)], error)``, on the device and dtype of ``tensor``.

    Notes
    -----
    Each factor update solves the normal equations ``A_n V = X_(n) KR`` where ``V`` is the Hadamard
    product of the Gram matrices of the other factors, and ``X_(n) KR`` is computed by :func:`mttkrp`
    without forming the Khatri-Rao product. The columns are then normalised into ``weights``. The error
    is computed from the full reconstruction after every sweep (about the cost of one MTTKRP; the
    expansion ``||X||^2 - 2 <X, X_hat> + ||X_hat||^2`` would lose all digits below ``sqrt(eps)``).
    """
    check_tensor(tensor, min_order=2)
    rank = validate_cp_rank(rank)
    if init not in ("svd", "random"):
        raise ValueError(f"init must be 'svd' or 'random', got {init!r}")
    if isinstance(n_iter_max, bool) or not isinstance(n_iter_max, int) or n_iter_max < 1:
        raise ValueError(f"n_iter_max must be a positive int, got {n_iter_max!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    regularization = check_regularization(regularization)
    generator = make_generator(random_state)

    with torch.no_grad():
        factors = _init_factors(tensor, rank, init, generator)
        weights = torch.ones(rank, dtype=tensor.dtype, device=tensor.device)
        grams = [f.T @ f for f in factors]
        previous = None
        for _ in range(n_iter_max):
            ridge = regularization * (1.0 if previous is None else previous)
            for n in range(tensor.ndim):
                v = torch.ones_like(grams[0])
                for m in range(tensor.ndim):
                    if m != n:
                        v = v * grams[m]
                mt = mttkrp(tensor, factors, n)
                f = _solve_gram(add_ridge(v, ridge), mt)
                norms = torch.linalg.vector_norm(f, dim=0)
                f = f / torch.where(norms > 0, norms, torch.ones_like(norms))
                weights = norms
                factors[n] = f
                grams[n] = f.T @ f
            err = relative_error(tensor, cp_to_tensor(weights, factors))
            if previous is not None and abs(previous - err) <= tol * previous:
                break
            if err == 0.0:
                break
            previous = err
        error = err
    return CPTensor(weights, factors, error)
