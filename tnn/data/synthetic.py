"""A small learnable random image dataset for tests (no files needed)."""

from __future__ import annotations

import torch


def make_synthetic(
    split: str = "train",
    size: int | None = None,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(size, *image_shape)`` and int64 labels: a fixed random template per class plus noise.

    The templates depend only on ``seed`` (shared by both splits); the noise and labels also depend on the
    split, so "train" and "test" differ but are drawn from the same distribution. Default sizes: 512
    train, 128 test.
    """
    if size is None:
        size = 512 if split == "train" else 128
    if size < 1 or num_classes < 1 or len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(
            f"synthetic dataset needs size >= 1, num_classes >= 1 and a (C, H, W) image_shape; got "
            f"size={size}, num_classes={num_classes}, image_shape={image_shape}"
        )
    gen = torch.Generator().manual_seed(seed)
    templates = torch.rand((num_classes, *image_shape), generator=gen) * 255
    gen.manual_seed(seed * 2 + (1 if split == "train" else 2))
    labels = torch.randint(0, num_classes, (size,), generator=gen)
    noise = torch.randn((size, *image_shape), generator=gen) * 40
    images = (templates[labels] + noise).round().clamp(0, 255).to(torch.uint8)
    return images, labels
