"""Gathering a batch of samples from any dataset by index, through its fastest path."""

from __future__ import annotations

from typing import Any

import torch


def fetch_batch(dataset: Any, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather samples ``indices`` of ``dataset`` into ``(x, y)`` tensors.

    Uses, in order of preference, ``dataset.get_batch(indices)``; the whole-batch path of an in-memory
    image dataset (``tensors()``, ``augment_batch`` when its ``augment`` flag is set — drawing from the
    global torch RNG, which checkpoints save — and ``normalize``, as :class:`tnn.data.ImageTensorDataset`);
    the ``tensors`` of a ``TensorDataset``; or ``torch.stack`` of ``dataset[i]``.
    """
    if hasattr(dataset, "get_batch"):
        x, y = dataset.get_batch(indices)
        return x, y
    if callable(getattr(dataset, "tensors", None)) and hasattr(dataset, "normalize"):
        images, labels = dataset.tensors()
        x = images[indices]
        if getattr(dataset, "augment", False):
            x = dataset.augment_batch(x)
        return dataset.normalize(x), labels[indices]
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, (tuple, list)) and len(tensors) >= 2:
        return tensors[0][indices], tensors[1][indices]
    items = [dataset[int(i)] for i in indices]
    xs = torch.stack([torch.as_tensor(item[0]) for item in items])
    ys = torch.as_tensor([int(item[1]) for item in items])
    return xs, ys
