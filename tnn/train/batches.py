"""Deterministic batch order: the permutation of an epoch is a pure function of ``(seed, phase, epoch)``.

That is what makes a resumed run equal an uninterrupted one: after loading a checkpoint at step ``s``
of a phase, the loop regenerates the permutation of epoch ``s // batches_per_epoch`` and continues at
batch ``s % batches_per_epoch``. Under data parallelism, rank ``r`` of ``w`` takes ``perm[r::w]`` of the
permutation padded (by wrapping around) to a multiple of ``w`` — the scheme of
``torch.utils.data.DistributedSampler``.
"""

from __future__ import annotations

import math

import torch


def epoch_permutation(n: int, seed: int, phase: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """Indices ``0..n-1`` in the order of one epoch (int64 tensor of shape ``(n,)``)."""
    if not shuffle:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(phase) * 10_007 + int(epoch))
    return torch.randperm(n, generator=gen)


def rank_indices(perm: torch.Tensor, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The share of ``perm`` that rank ``rank`` of ``world`` processes (all shares equally long)."""
    if world == 1:
        return perm
    total = math.ceil(len(perm) / world) * world
    if total > len(perm):
        perm = torch.cat([perm, perm[: total - len(perm)]])
    return perm[rank::world]


def batches_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Number of batches (the last one possibly smaller) of one rank in one epoch."""
    return math.ceil(math.ceil(n / world) / batch_size)


def batch_indices(
    n: int, batch_size: int, seed: int, phase: int, step: int, *, shuffle: bool = True, rank: int = 0,
    world: int = 1,
) -> torch.Tensor:
    """Dataset indices of batch number ``step`` (counted from the start of the phase)."""
    nb = batches_per_epoch(n, batch_size, world)
    epoch, b = divmod(step, nb)
    share = rank_indices(epoch_permutation(n, seed, phase, epoch, shuffle), rank, world)
    return share[b * batch_size : (b + 1) * batch_size]
