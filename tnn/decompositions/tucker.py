"""Tucker and partial Tucker decompositions: HOSVD initialisation refined by HOOI.

A Tucker tensor is ``X_hat = core x_{m_0} U_0 x_{m_1} U_1 ...`` where ``U_k`` (shape ``(I_{m_k}, r_k)``,
orthonormal columns) acts on mode ``m_k`` of the core. In a *partial* Tucker decomposition only the
listed modes are factorised; the other modes keep their full size in the core (Tucker-2 of a conv kernel
``(T, S, kh, kw)`` uses modes ``(0, 1)`` and a core of shape ``(r_0, r_1, kh, kw)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import check_tensor, leading_left_singular_vectors, multi_mode_dot, relative_error, unfold

__all__ = [
    "TuckerTensor",
    "max_tucker_rank",
    "partial_tucker",
    "tucker",
    "tucker_to_tensor",
    "validate_tucker_rank",
]


class TuckerTensor(NamedTuple):
    """Result of :func:`tucker` / :func:`partial_tucker`.

    Attributes
    ----------
    core : Tensor
        The core; mode ``modes[k]`` has size ``rank[k]``, other modes keep the input size.
    factors : list of Tensor
        ``factors[k]`` of shape ``(I_{modes[k]}, rank[k])`` with orthonormal columns.
    error : float
        Relative reconstruction error ``||X - X_hat||_F / ||X||_F``.
    """

    core: Tensor
    factors: list[Tensor]
    error: float


def max_tucker_rank(shape: Sequence[int]) -> list[int]:
    """Largest admissible Tucker rank per mode: ``rank[n] <= I_n``."""
    return [int(s) for s in shape]


def _validate_modes(ndim: int, modes: Sequence[int]) -> list[int]:
    if isinstance(modes, int) or not isinstance(modes, Sequence):
        raise TypeError(f"modes must be a sequence of ints, got {modes!r}")
    out = []
    for m in modes:
        if isinstance(m, bool) or not isinstance(m, int):
            raise TypeError(f"modes must be ints, got {m!r} in {list(modes)}")
        if not -ndim <= m < ndim:
            raise ValueError(f"mode {m} is out of range for a tensor of order {ndim}")
        out.append(m % ndim)
    if not out:
        raise ValueError("modes must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"modes must be distinct, got {list(modes)}")
    return out


def validate_tucker_rank(
    shape: Sequence[int], rank: int | Sequence[int], modes: Sequence[int] | None = None
) -> list[int]:
    """Normalise and check a Tucker rank for the given ``modes`` (default: all modes).

    Parameters
    ----------
    shape : sequence of int
        Shape of the tensor to decompose.
    rank : int or sequence of int
        One rank per mode in ``modes``, each in ``[1, I_mode]``. An int is a maximal rank used for
        every mode and clipped to each mode size (``min(rank, I_mode)``).
    modes : sequence of int, optional
        Factorised modes.

    Returns
    -------
    list of int
        One rank per mode of ``modes``.

    Raises
    ------
    ValueError
        Wrong number of ranks, non-positive rank, or ``rank[k] > I_{modes[k]}``.
    """
    shape = [int(s) for s in shape]
    modes = list(range(len(shape))) if modes is None else _validate_modes(len(shape), modes)
    if isinstance(rank, bool):
        raise TypeError(f"Tucker rank must be an int or a sequence of ints, got {rank!r}")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"Tucker rank must be positive, got {rank}")
        return [min(rank, shape[m]) for m in modes]
    if not isinstance(rank, Sequence):
        raise TypeError(f"Tucker rank must be an int or a sequence of ints, got {type(rank).__name__}")
    rank = list(rank)
    if len(rank) != len(modes):
        raise ValueError(
            f"Tucker rank must have one entry per factorised mode ({len(modes)} for modes {modes}), "
            f"got {len(rank)}: {rank}"
        )
    for k, (r, m) in enumerate(zip(rank, modes, strict=True)):
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"Tucker rank[{k}] must be an int, got {r!r}")
        if r < 1:
            raise ValueError(f"Tucker rank[{k}] (mode {m}) must be positive, got {r}")
        if r > shape[m]:
            raise ValueError(
                f"Tucker rank[{k}] = {r} exceeds the size {shape[m]} of mode {m} "
                f"(maximal ranks for shape {tuple(shape)}: {max_tucker_rank(shape)})"
            )
    return rank


def tucker_to_tensor(core: Tensor, factors: Sequence[Tensor], modes: Sequence[int] | None = None) -> Tensor:
    """Full tensor ``core x_{modes[0]} factors[0] x_{modes[1]} factors[1] ...``.

    ``factors[k]`` has shape ``(I_k, core.shape[modes[k]])``; ``modes`` defaults to ``0..len(factors)-1``.
    """
    factors = list(factors)
    modes = list(range(len(factors))) if modes is None else _validate_modes(core.ndim, modes)
    if len(modes) != len(factors):
        raise ValueError(f"got {len(factors)} factors for {len(modes)} modes {modes}")
    for k, (f, m) in enumerate(zip(factors, modes, strict=True)):
        if f.ndim != 2 or f.shape[1] != core.shape[m]:
            raise ValueError(
                f"Tucker factor {k} must have shape (I, {core.shape[m]}) to act on mode {m} of a core of "
                f"shape {tuple(core.shape)}, got {tuple(f.shape)}"
            )
    return multi_mode_dot(core, factors, modes)


def partial_tucker(
    tensor: Tensor,
    rank: int | Sequence[int],
    modes: Sequence[int],
    *,
    n_iter_max: int = 20,
    tol: float = 1e-8,
) -> TuckerTensor:
    """Tucker decomposition restricted to ``modes`` (HOSVD start, HOOI refinement).

    Parameters
    ----------
    tensor : Tensor
        Shape ``(I_0, ..., I_{N-1})``, float32/float64, any device.
    rank : int or sequence of int
        One rank per mode of ``modes`` (see :func:`validate_tucker_rank`; an int is clipped per mode).
    modes : sequence of int
        Modes to factorise; the others are left untouched in the core.
    n_iter_max : int
        Maximum number of HOOI sweeps (0 returns the truncated HOSVD).
    tol : float
        Stop when the relative change of the error between sweeps is below ``tol``.

    Returns
    -------
    TuckerTensor
        ``core`` (mode ``modes[k]`` of size ``rank[k]``), ``factors[k]`` of shape ``(I_{modes[k]}, rank[k])``
        with orthonormal columns, and the relative ``error``.

    Notes
    -----
    HOOI updates ``U_k`` to the leading left singular vectors of the mode-``modes[k]`` unfolding of the
    tensor projected on all other factors (the core norm never decreases with exact SVDs). The factors
    with the smallest error seen, HOSVD included, are returned. Large unfoldings use the randomised SVD
    of :func:`~tnn.decompositions.truncated_svd`.
    """
    check_tensor(tensor)
    modes = _validate_modes(tensor.ndim, modes)
    rank = validate_tucker_rank(tensor.shape, rank, modes)
    if isinstance(n_iter_max, bool) or not isinstance(n_iter_max, int) or n_iter_max < 0:
        raise ValueError(f"n_iter_max must be a non-negative int, got {n_iter_max!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")

    with torch.no_grad():
        factors = [
            leading_left_singular_vectors(unfold(tensor, m), r) for m, r in zip(modes, rank, strict=True)
        ]
        norm_sq = float(torch.sum(tensor * tensor))

        def error_of(core: Tensor) -> float:  # valid because the factors are orthonormal
            return math.sqrt(max(norm_sq - float(torch.sum(core * core)), 0.0) / norm_sq) if norm_sq else 0.0

        best_factors = list(factors)
        best = previous = error_of(multi_mode_dot(tensor, factors, modes, transpose=True))
        for _ in range(n_iter_max):
            for k, m in enumerate(modes):
                others = [j for j in range(len(modes)) if j != k]
                projected = multi_mode_dot(
                    tensor, [factors[j] for j in others], [modes[j] for j in others], transpose=True
                )
                factors[k] = leading_left_singular_vectors(unfold(projected, m), rank[k])
            err = error_of(multi_mode_dot(projected, [factors[-1]], [modes[-1]], transpose=True))
            if err < best:
                best, best_factors = err, list(factors)
            if abs(previous - err) <= tol * previous:
                break
            previous = err
        factors = best_factors
        core = multi_mode_dot(tensor, factors, modes, transpose=True)
        error = relative_error(tensor, tucker_to_tensor(core, factors, modes))
    return TuckerTensor(core, factors, error)


def tucker(
    tensor: Tensor, rank: int | Sequence[int], *, n_iter_max: int = 20, tol: float = 1e-8
) -> TuckerTensor:
    """Full Tucker decomposition (every mode factorised); see :func:`partial_tucker`.

    Parameters
    ----------
    tensor : Tensor
        Shape ``(I_0, ..., I_{N-1})``.
    rank : int or sequence of int
        ``N`` ranks with ``rank[n] <= I_n``; an int is used for every mode, clipped to ``I_n``.
    n_iter_max, tol
        As in :func:`partial_tucker`.

    Returns
    -------
    TuckerTensor
        ``core`` of shape ``rank``, ``factors[n]`` of shape ``(I_n, rank[n])``, relative ``error``.
    """
    check_tensor(tensor)
    return partial_tucker(tensor, rank, list(range(tensor.ndim)), n_iter_max=n_iter_max, tol=tol)
