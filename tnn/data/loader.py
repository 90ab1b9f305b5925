"""Fast batch iteration: whole-batch augmentation and normalisation of in-memory uint8 datasets."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from tnn.data.tensor_dataset import ImageTensorDataset


class BatchLoader:
    """Re-iterable batches ``(x, y)``: ``x`` float32 ``(B, C, H, W)`` normalised, ``y`` int64 ``(B,)``.

    Each iteration is one epoch; epoch ``e`` (counted from 0, or set by :meth:`set_epoch`) shuffles and
    augments with a generator seeded by ``seed + e``, so runs are reproducible.
    For an :class:`ImageTensorDataset`, batches are sliced from the uint8 tensor, augmented as a whole
    (random crop through padding + random offsets, flips) and normalised in one operation; any other
    dataset goes through a ``torch.utils.data.DataLoader`` (its own ``augment`` setting applies there).

    Parameters
    ----------
    dataset : Dataset
        Usually from :func:`tnn.data.get_dataset`.
    batch_size : int
    shuffle : bool
    augment : bool, optional
        Override the dataset's ``augment`` flag (fast path only); default: the dataset's.
    seed : int
    limit : int, optional
        Use only the first ``limit`` items.
    drop_last : bool
        Skip a last incomplete batch.
    num_workers : int
        Worker processes for the generic path (e.g. decoding ImageNet JPEGs).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        augment: bool | None = None,
        seed: int = 0,
        limit: int | None = None,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.size = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch ``epoch``'s shuffle and augmentation."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.size, generator=gen) if self.shuffle else torch.arange(self.size)
        if isinstance(self.dataset, ImageTensorDataset):
            return self._fast(order, gen)
        return self._generic(order, gen)

    def _fast(self, order: torch.Tensor, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        assert isinstance(ds, ImageTensorDataset)
        images, labels = ds.tensors()
        augment = ds.augment if self.augment is None else self.augment
        contiguous = not self.shuffle
        for i in range(len(self)):
            if contiguous:
                start = i * self.batch_size
                stop = min(start + self.batch_size, self.size)
                x, y = images[start:stop], labels[start:stop]
            else:
                idx = order[i * self.batch_size : (i + 1) * self.batch_size]
                x, y = images[idx], labels[idx]
            if augment:
                x = ds.augment_batch(x, gen)
            yield ds.normalize(x), y

    def _generic(
        self, order: torch.Tensor, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        subset = Subset(self.dataset, order.tolist())
        loader = DataLoader(
            subset,
            batch_size=self.batch_size,
            shuffle=False,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
        )
        for x, y in loader:
            yield x, torch.as_tensor(y, dtype=torch.int64)


def loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    augment: bool | None = None,
    seed: int = 0,
    limit: int | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> BatchLoader:
    """Batches of normalised ``(x, y)``; see :class:`BatchLoader` (re-iterable, one epoch per pass)."""
    return BatchLoader(dataset, batch_size, shuffle, augment, seed, limit, drop_last, num_workers)
