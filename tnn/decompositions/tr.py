"""Tensor-Ring decomposition: TR-SVD initialisation and optional ALS refinement.

A TR tensor of order ``N`` with ranks ``(r_0, ..., r_{N-1})`` (and ``r_N = r_0``) is

    X_hat[i_0, ..., i_{N-1}] = trace(G_0[:, i_0, :] @ G_1[:, i_1, :] @ ... @ G_{N-1}[:, i_{N-1}, :]),

with cores ``G_k`` of shape ``(r_k, I_k, r_{k+1})``. ``r_k`` is the bond between cores ``k - 1`` and ``k``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import (
    RandomState,
    add_ridge,
    check_regularization,
    check_tensor,
    make_generator,
    prod,
    random_normal,
    relative_error,
    truncated_svd,
)
from .cp import _solve_gram
from .tt import _check_chain, chain_cores

__all__ = ["TRTensor", "tensor_ring", "tr_to_tensor", "validate_tr_rank"]


class TRTensor(NamedTuple):
    """Result of :func:`tensor_ring`.

    Attributes
    ----------
    cores : list of Tensor
        ``cores[k]`` of shape ``(r_k, I_k, r_{k+1})`` with ``r_N = r_0``.
    error : float
        Relative reconstruction error ``||X - X_hat||_F / ||X||_F``.
    """

    cores: list[Tensor]
    error: float


def validate_tr_rank(shape: Sequence[int], rank: int | Sequence[int]) -> list[int]:
    """Normalise and check TR ranks; returns the ``N`` ranks ``[r_0, ..., r_{N-1}]``.

    Parameters
    ----------
    shape : sequence of int
        Shape ``(I_0, ..., I_{N-1})``, ``N >= 2``.
    rank : int or sequence of int
        An int gives the same rank to every bond; a sequence gives ``N`` ranks, or ``N + 1`` ranks with
        ``rank[0] == rank[N]`` (TensorLy style).

    Raises
    ------
    ValueError
        Wrong length, ``rank[0] != rank[N]``, non-positive rank, or a redundant bond that the shape does not
        admit: ``r_{k+1} > r_k I_k`` or ``r_k > I_k r_{k+1}`` (core ``k`` could then be made smaller
        without changing the tensor).
    """
    shape = [int(s) for s in shape]
    n = len(shape)
    if n < 2:
        raise ValueError(f"a tensor ring needs an order >= 2 tensor, got shape {tuple(shape)}")
    if isinstance(rank, bool):
        raise TypeError(f"TR rank must be an int or a sequence of ints, got {rank!r}")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"TR rank must be positive, got {rank}")
        return [rank] * n
    if not isinstance(rank, Sequence):
        raise TypeError(f"TR rank must be an int or a sequence of ints, got {type(rank).__name__}")
    rank = list(rank)
    for r in rank:
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"TR ranks must be ints, got {r!r} in {rank}")
    if len(rank) == n + 1:
        if rank[0] != rank[-1]:
            raise ValueError(
                f"TR ranks given as N + 1 = {n + 1} values must satisfy rank[0] == rank[N], got {rank}"
            )
        rank = rank[:-1]
    elif len(rank) != n:
        raise ValueError(
            f"TR rank for an order-{n} tensor needs {n} ranks (or {n + 1} with rank[0] == rank[N]), "
            f"got {len(rank)}: {rank}"
        )
    for k, r in enumerate(rank):
        if r < 1:
            raise ValueError(f"TR rank r_{k} must be positive, got {r} in {rank}")
    for k in range(n):
        left, right = rank[k], rank[(k + 1) % n]
        if right > left * shape[k]:
            raise ValueError(
                f"TR rank r_{(k + 1) % n} = {right} exceeds r_{k} * I_{k} = {left} * {shape[k]} in {rank}"
            )
        if left > shape[k] * right:
            raise ValueError(
                f"TR rank r_{k} = {left} exceeds I_{k} * r_{(k + 1) % n} = {shape[k]} * {right} in {rank}"
            )
    return rank


def tr_to_tensor(cores: Sequence[Tensor]) -> Tensor:
    """Full tensor of shape ``(I_0, ..., I_{N-1})`` from TR cores ``(r_k, I_k, r_{k+1})``, ``r_N = r_0``.

    The ring is cut into two arcs of balanced size, each arc is contracted into an
    ``(r_a, prod I, r_b)`` tensor and the two arcs are joined by one matrix product, so no
    intermediate carries both ring bonds on the whole tensor.
    """
    _check_chain(cores, "TR")
    if cores[-1].shape[2] != cores[0].shape[0]:
        raise ValueError(
            f"TR ring does not close: last core {tuple(cores[-1].shape)} must end with "
            f"r_0 = {cores[0].shape[0]}"
        )
    shape = [c.shape[1] for c in cores]
    n = len(cores)
    if n == 1:
        return torch.diagonal(cores[0], dim1=0, dim2=2).sum(-1)
    split = min(range(1, n), key=lambda m: max(prod(shape[:m]), prod(shape[m:])))
    left = chain_cores(cores[:split])  # (r_0, P, r_m)
    right = chain_cores(cores[split:])  # (r_m, Q, r_0)
    p, q = left.shape[1], right.shape[1]
    out = left.permute(1, 2, 0).reshape(p, -1) @ right.permute(0, 2, 1).reshape(-1, q)
    return out.reshape(shape)


def _tr_svd(tensor: Tensor, ranks: list[int]) -> list[Tensor]:
    """TR-SVD (Zhao et al. 2016): the first SVD keeps ``r_0 r_1`` vectors, split into ``(r_0, r_1)``.

    When an unfolding has fewer singular vectors than the requested rank, the missing ones are zero.
    """
    shape = list(tensor.shape)
    n = len(shape)

    def svd_padded(matrix: Tensor, k: int) -> tuple[Tensor, Tensor]:
        u, s, vh = truncated_svd(matrix, k)
        rest = s[:, None] * vh
        missing = k - u.shape[1]
        if missing > 0:
            u = torch.cat([u, u.new_zeros(u.shape[0], missing)], dim=1)
            rest = torch.cat([rest, rest.new_zeros(missing, rest.shape[1])], dim=0)
        return u, rest

    r0, r1 = ranks[0], ranks[1 % n]
    u, rest = svd_padded(tensor.reshape(shape[0], -1), r0 * r1)
    cores = [u.reshape(shape[0], r0, r1).permute(1, 0, 2).contiguous()]
    # remainder indexed (r_1, I_1 ... I_{N-1}, r_0)
    remainder = rest.reshape(r0, r1, -1).permute(1, 2, 0).contiguous()
    for k in range(1, n - 1):
        u, remainder = svd_padded(remainder.reshape(ranks[k] * shape[k], -1), ranks[k + 1])
        cores.append(u.reshape(ranks[k], shape[k], ranks[k + 1]))
    cores.append(remainder.reshape(ranks[n - 1], shape[n - 1], r0))
    return cores


def _fill_dead_bonds(cores: list[Tensor], generator: torch.Generator | None) -> list[Tensor]:
    """Give small random values to bonds that are zero on one side (ALS could never revive them)."""
    n = len(cores)
    cores = [c.clone() for c in cores]
    for k in range(n):
        prev = cores[k - 1]
        cur = cores[k]
        dead = (prev.abs().sum((0, 1)) == 0) | (cur.abs().sum((1, 2)) == 0)
        if bool(dead.any()):
            for c, select in ((prev, (slice(None), slice(None), dead)), (cur, (dead,))):
                scale = 1e-2 * float(c.pow(2).mean().sqrt()) or 1e-2
                block = c[select]
                c[select] = random_normal(block.shape, generator, c, scale=scale)
    return cores


def _labels(n: int) -> tuple[list[str], list[str]]:
    letters = string.ascii_letters
    if 2 * n > len(letters):
        raise ValueError(f"tensor_ring ALS supports order <= {len(letters) // 2}, got {n}")
    return list(letters[:n]), list(letters[n : 2 * n])


def _als_update(tensor: Tensor, cores: list[Tensor], k: int, regularization: float = 0.0) -> Tensor:
    """Least-squares optimal core ``k`` given the others (ridge-regularised when ``regularization > 0``:
    ``regularization * mean(diag(gram))`` is added to the Gram matrix's diagonal)."""
    n = tensor.ndim
    mode, bond = _labels(n)
    # B[i_k, b_{k+1}, b_k] = sum X[...] * prod_{j != k} G_j[b_j, i_j, b_{j+1}], contracted largest mode first
    current, current_labels = tensor, list(mode)
    order = sorted((j for j in range(n) if j != k), key=lambda j: -tensor.shape[j])
    for j in order:
        core_labels = [bond[j], mode[j], bond[(j + 1) % n]]
        keep = [bond[k], bond[(k + 1) % n], mode[k]]
        out = [x for x in current_labels if x != mode[j] and (x not in core_labels or x in keep)]
        out += [x for x in core_labels if x not in current_labels and x != mode[j]]
        current = torch.einsum(
            f"{''.join(current_labels)},{''.join(core_labels)}->{''.join(out)}", current, cores[j]
        )
        current_labels = out
    target = [mode[k], bond[(k + 1) % n], bond[k]]
    rhs = torch.einsum(f"{''.join(current_labels)}->{''.join(target)}", current)
    rhs = rhs.reshape(tensor.shape[k], -1)  # (I_k, r_{k+1} r_k)
    # Gram of the subchain M[b_{k+1}, ..., b_k] via transfer matrices E_j = sum_i G_j (x) G_j
    transfer = None
    for step in range(1, n):
        g = cores[(k + step) % n]
        e = torch.einsum("aib,cid->acbd", g, g).reshape(g.shape[0] ** 2, g.shape[2] ** 2)
        transfer = e if transfer is None else transfer @ e
    ra, rb = cores[(k + 1) % n].shape[0], cores[k].shape[0]
    gram = transfer.reshape(ra, ra, rb, rb).permute(0, 2, 1, 3).reshape(ra * rb, ra * rb)
    gram = add_ridge(gram, regularization)
    solution = _solve_gram(gram, rhs)  # (I_k, r_{k+1} r_k)
    return solution.reshape(tensor.shape[k], ra, rb).permute(2, 0, 1).contiguous()


def tensor_ring(
    tensor: Tensor,
    rank: int | Sequence[int],
    *,
    n_iter_max: int = 0,
    tol: float = 1e-8,
    random_state: RandomState = None,
    regularization: float = 0.0,
) -> TRTensor:
    """Tensor-Ring decomposition: TR-SVD, then optional ALS sweeps.

    Parameters
    ----------
    tensor : Tensor
        Shape ``(I_0, ..., I_{N-1})``, ``N >= 2``, float32/float64, any device.
    rank : int or sequence of int
        ``N`` ranks ``(r_0, ..., r_{N-1})``, see :func:`validate_tr_rank`.
    n_iter_max : int
        Number of ALS sweeps after TR-SVD (0: TR-SVD only). Each sweep updates every core by exact least
        squares given the others; the best cores seen are returned, so the error never exceeds TR-SVD's.
    tol : float
        Stop the sweeps when the relative change of the error is below ``tol``.
    random_state : None, int or torch.Generator
        Used only by ALS, to revive bonds that TR-SVD left at zero.
    regularization : float
        Ridge weight of the ALS updates, relative to the mean diagonal of each update's Gram matrix
        (0: plain least squares). Unregularised TR-ALS tends to *cancelling* cores: the cores grow far
        larger than the tensor (the product of their norms reaches hundreds of times ``||X||_F``) while
        the error barely improves; a small ridge (``1e-1``) keeps them near the tensor's scale at almost
        the same error. That matters when the cores are trained afterwards (see ``tnn.formats``).

    Returns
    -------
    TRTensor
        ``cores[k]`` of shape ``(r_k, I_k, r_{k+1})`` and the relative ``error``.

    Notes
    -----
    TR-SVD keeps ``r_0 r_1`` singular vectors of the mode-0 unfolding and reshapes them into the
    ``(r_0, I_0, r_1)`` first core, then proceeds as TT-SVD. If an unfolding has fewer singular vectors
    than requested (e.g. ``r_0 r_1 > I_0``), the missing slices are zero; the cores keep the requested shape.
    An ALS update of core ``k`` needs the ``(r_k r_{k+1})^2`` Gram matrix of the rest of the ring, so it
    is meant for moderate ranks (``r <= ~40``).
    """
    check_tensor(tensor, min_order=2)
    ranks = validate_tr_rank(tensor.shape, rank)
    if isinstance(n_iter_max, bool) or not isinstance(n_iter_max, int) or n_iter_max < 0:
        raise ValueError(f"n_iter_max must be a non-negative int, got {n_iter_max!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    regularization = check_regularization(regularization)
    with torch.no_grad():
        cores = _tr_svd(tensor, ranks)
        error = relative_error(tensor, tr_to_tensor(cores))
        if n_iter_max == 0 or error == 0.0:
            return TRTensor(cores, error)
        best_cores, best_error = cores, error
        current = _fill_dead_bonds(cores, make_generator(random_state))
        previous = None
        for _ in range(n_iter_max):
            for k in range(tensor.ndim):
                current[k] = _als_update(tensor, current, k, regularization)
            err = relative_error(tensor, tr_to_tensor(current))
            if err < best_error:
                best_cores, best_error = list(current), err
            if previous is not None and abs(previous - err) <= tol * previous:
                break
            previous = err
    return TRTensor(best_cores, best_error)
