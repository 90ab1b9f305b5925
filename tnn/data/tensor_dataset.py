"""In-memory uint8 image datasets with normalisation (and optional augmentation) applied on access."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from tnn.data.augment import random_crop, random_hflip


class ImageTensorDataset(Dataset):
    """Images held as uint8 ``(N, C, H, W)`` with int64 labels ``(N,)``; items are normalised floats.

    ``dataset[i]`` is ``(x, y)`` with ``x`` float32 ``(C, H, W)`` equal to ``(images[i] / 255 - mean) / std``
    (after augmentation when ``augment`` is true) and ``y`` an int. For speed use :func:`tnn.data.loader`,
    which works on whole batches through :meth:`tensors`, :meth:`augment_batch` and :meth:`normalize`.

    Parameters
    ----------
    images : Tensor
        uint8 ``(N, C, H, W)``.
    labels : Tensor
        integer ``(N,)``.
    mean, std : sequence of float
        Per-channel statistics (length ``C`` or 1).
    augment : bool
        Apply the dataset's augmentation in ``__getitem__`` (and by default in the loader).
    crop_padding : int
        Random-crop padding of the augmentation (0: no crop).
    hflip : bool
        Random horizontal flips in the augmentation.
    classes : sequence of str, optional
        Class names, ``classes[y]``.
    name : str
        Dataset name, for messages.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        crop_padding: int = 0,
        hflip: bool = False,
        classes: Sequence[str] | None = None,
        name: str = "",
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
        c = images.shape[1]
        if len(mean) not in (1, c) or len(std) not in (1, c):
            raise ValueError(f"mean/std must have 1 or {c} values, got {len(mean)} and {len(std)}")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = bool(augment)
        self.crop_padding = int(crop_padding)
        self.hflip = bool(hflip)
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.name = name

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].unsqueeze(0)
        if self.augment:
            x = self.augment_batch(x)
        return self.normalize(x)[0], int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw data: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` (not copies)."""
        return self.images, self.labels

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` -> float32 ``(images / 255 - mean) / std``."""
        return images.to(torch.float32, copy=True).div_(255.0).sub_(self.mean).div_(self.std)

    def augment_batch(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random crop (``crop_padding``) then random horizontal flip (if ``hflip``) of a uint8 batch."""
        images = random_crop(images, self.crop_padding, generator)
        if self.hflip:
            images = random_hflip(images, generator)
        return images

    def __repr__(self) -> str:
        shape = tuple(self.images.shape)
        return f"ImageTensorDataset(name={self.name!r}, images={shape}, augment={self.augment})"
