"""Subsets of a dataset that keep its fast whole-batch path, and the held-out validation split."""

from __future__ import annotations

from typing import Any

import torch

from tnn.data.batches import fetch_batch


class IndexSubset:
    """Samples ``indices`` of ``dataset``, keeping its fast whole-batch path.

    ``subset.get_batch(idx)`` is ``fetch_batch(dataset, indices[idx])``; so the teacher caches and the
    training loop index the subset by ``0 .. len(indices) - 1``.
    """

    def __init__(self, dataset: Any, indices: torch.Tensor) -> None:
        indices = torch.as_tensor(indices, dtype=torch.long)
        if indices.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {tuple(indices.shape)}")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(dataset)):
            raise ValueError(f"indices out of range for a dataset of {len(dataset)} samples")
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.indices[i])]

    def get_batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fetch_batch(self.dataset, self.indices[torch.as_tensor(idx, dtype=torch.long)])


def split_indices(dataset: Any, val_size: int, train_subset: int | None, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices of a training split.

    In-memory datasets (MNIST, CIFAR-10, shuffled already) hold out their last ``val_size`` images;
    image folders (sorted by class) a seeded random choice. The training indices are the first
    ``train_subset`` of the rest (all if ``None``).

    Raises
    ------
    ValueError
        If fewer than one training image would remain.
    """
    n = len(dataset)
    if val_size >= n:
        raise ValueError(f"val_size {val_size} leaves no training images (the training split has {n})")
    if hasattr(dataset, "samples"):  # an image folder: samples sorted by class
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(n)
    train, val = order[: n - val_size], order[n - val_size:]
    if train_subset is not None:
        train = train[:train_subset]
    return train, val
