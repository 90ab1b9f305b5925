"""Tensor-Train (matrix product state) decomposition by TT-SVD.

A TT tensor of order ``N`` with ranks ``(r_0 = 1, r_1, ..., r_{N-1}, r_N = 1)`` is

    X_hat[i_0, ..., i_{N-1}] = G_0[:, i_0, :] @ G_1[:, i_1, :] @ ... @ G_{N-1}[:, i_{N-1}, :],

with cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import check_tensor, prod, relative_error, truncated_svd

__all__ = ["TTTensor", "max_tt_rank", "tensor_train", "tt_to_tensor", "validate_tt_rank"]


class TTTensor(NamedTuple):
    """Result of :func:`tensor_train`.

    Attributes
    ----------
    cores : list of Tensor
        ``cores[k]`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_0 = r_N = 1``.
    error : float
        Relative reconstruction error ``||X - X_hat||_F / ||X||_F``.
    """

    cores: list[Tensor]
    error: float


def max_tt_rank(shape: Sequence[int]) -> list[int]:
    """Largest useful TT ranks ``[1, r_1, ..., r_{N-1}, 1]`` with ``r_k = min(I_0...I_{k-1}, I_k...I_{N-1})``.

    These are the ranks of the exact TT representation of a generic tensor of this shape; they satisfy
    ``r_{k+1} <= r_k I_k`` and ``r_k <= I_k r_{k+1}``.
    """
    shape = [int(s) for s in shape]
    n = len(shape)
    return [1] + [min(prod(shape[:k]), prod(shape[k:])) for k in range(1, n)] + [1]


def validate_tt_rank(shape: Sequence[int], rank: int | Sequence[int]) -> list[int]:
    """Normalise and check TT ranks; returns the ``N + 1`` ranks ``[1, r_1, ..., r_{N-1}, 1]``.

    Parameters
    ----------
    shape : sequence of int
        Shape ``(I_0, ..., I_{N-1})`` of the tensor.
    rank : int or sequence of int
        An int is a maximal rank: ``r_k = min(rank, max_tt_rank(shape)[k])``. A sequence gives either the
        ``N - 1`` internal ranks or the ``N + 1`` ranks with ``1`` at both ends (TensorLy style).

    Raises
    ------
    ValueError
        Wrong length, end ranks not 1, non-positive rank, or a rank that the shape does not admit:
        ``r_k > max_tt_rank(shape)[k]``, ``r_{k+1} > r_k I_k`` or ``r_k > I_k r_{k+1}``.
    """
    shape = [int(s) for s in shape]
    n = len(shape)
    bound = max_tt_rank(shape)
    if isinstance(rank, bool):
        raise TypeError(f"TT rank must be an int or a sequence of ints, got {rank!r}")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"TT rank must be positive, got {rank}")
        return [min(rank, b) for b in bound]
    if not isinstance(rank, Sequence):
        raise TypeError(f"TT rank must be an int or a sequence of ints, got {type(rank).__name__}")
    rank = list(rank)
    for r in rank:
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"TT ranks must be ints, got {r!r} in {rank}")
    if len(rank) == n + 1:
        if rank[0] != 1 or rank[-1] != 1:
            raise ValueError(
                f"TT ranks given as N + 1 = {n + 1} values must start and end with 1, got {rank}"
            )
        full = rank
    elif len(rank) == n - 1:
        full = [1, *rank, 1]
    else:
        raise ValueError(
            f"TT rank for an order-{n} tensor needs {n - 1} internal ranks (or {n + 1} with 1 at both ends), "
            f"got {len(rank)}: {rank}"
        )
    for k in range(1, n):
        r = full[k]
        if r < 1:
            raise ValueError(f"TT rank r_{k} must be positive, got {r} in {full}")
        if r > bound[k]:
            raise ValueError(
                f"TT rank r_{k} = {r} exceeds the maximal rank {bound[k]} for shape {tuple(shape)} "
                f"(max_tt_rank = {bound})"
            )
    for k in range(n):
        if full[k + 1] > full[k] * shape[k]:
            raise ValueError(
                f"TT rank r_{k + 1} = {full[k + 1]} exceeds r_{k} * I_{k} = {full[k]} * {shape[k]} in {full}"
            )
        if full[k] > shape[k] * full[k + 1]:
            raise ValueError(
                f"TT rank r_{k} = {full[k]} exceeds I_{k} * r_{k + 1} = {shape[k]} * {full[k + 1]} in {full}"
            )
    return full


def _check_chain(cores: Sequence[Tensor], kind: str) -> None:
    if len(cores) == 0:
        raise ValueError(f"{kind} cores must be a non-empty list of order-3 tensors")
    for k, c in enumerate(cores):
        if c.ndim != 3:
            raise ValueError(f"{kind} core {k} must have shape (r_k, I_k, r_k+1), got {tuple(c.shape)}")
    for k in range(len(cores) - 1):
        if cores[k].shape[2] != cores[k + 1].shape[0]:
            raise ValueError(
                f"{kind} cores {k} and {k + 1} do not connect: shapes {tuple(cores[k].shape)} and "
                f"{tuple(cores[k + 1].shape)}"
            )


def chain_cores(cores: Sequence[Tensor]) -> Tensor:
    """Contract consecutive cores ``(r_a, I_a, .), ..., (., I_b, r_b)`` into ``(r_a, I_a ... I_b, r_b)``."""
    result = cores[0]
    for c in cores[1:]:
        left = result.shape[0]
        result = (result.reshape(-1, c.shape[0]) @ c.reshape(c.shape[0], -1)).reshape(left, -1, c.shape[2])
    return result


def tt_to_tensor(cores: Sequence[Tensor]) -> Tensor:
    """Full tensor of shape ``(I_0, ..., I_{N-1})`` from TT cores ``(r_k, I_k, r_{k+1})``, ``r_0 = r_N = 1``.

    Every intermediate has at most ``prod(shape)`` entries for ranks within :func:`max_tt_rank`.
    """
    _check_chain(cores, "TT")
    if cores[0].shape[0] != 1 or cores[-1].shape[2] != 1:
        raise ValueError(
            f"TT boundary ranks must be 1, got r_0 = {cores[0].shape[0]} and r_N = {cores[-1].shape[2]}"
        )
    shape = [c.shape[1] for c in cores]
    return chain_cores(cores).reshape(shape)


def tensor_train(tensor: Tensor, rank: int | Sequence[int]) -> TTTensor:
    """Tensor-Train decomposition by TT-SVD (sequential truncated SVDs, Oseledets 2011).

    Parameters
    ----------
    tensor : Tensor
        Shape ``(I_0, ..., I_{N-1})``, float32/float64, any device.
    rank : int or sequence of int
        See :func:`validate_tt_rank`; an int is a maximal rank, clipped to :func:`max_tt_rank`.

    Returns
    -------
    TTTensor
        ``cores[k]`` of shape ``(r_k, I_k, r_{k+1})`` (``r_0 = r_N = 1``), left-orthonormal except the last,
        and the relative ``error``.

    Notes
    -----
    Step ``k`` takes the truncated SVD of the ``(r_k I_k, I_{k+1} ... I_{N-1})`` remainder; the error
    satisfies ``err^2 <= sum_k (discarded singular values at step k)^2 / ||X||^2`` (quasi-optimal).
    """
    check_tensor(tensor)
    ranks = validate_tt_rank(tensor.shape, rank)
    shape = list(tensor.shape)
    with torch.no_grad():
        cores = []
        remainder = tensor
        for k in range(len(shape) - 1):
            matrix = remainder.reshape(ranks[k] * shape[k], -1)
            u, s, vh = truncated_svd(matrix, ranks[k + 1])
            cores.append(u.reshape(ranks[k], shape[k], ranks[k + 1]))
            remainder = s[:, None] * vh
        cores.append(remainder.reshape(ranks[-2], shape[-1], 1))
        error = relative_error(tensor, tt_to_tensor(cores))
    return TTTensor(cores, error)
