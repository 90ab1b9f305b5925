"""Batched augmentation of uint8 image batches ``(B, C, H, W)``, without per-item Python work."""

from __future__ import annotations

import torch


def random_crop(
    images: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to ``(H, W)`` at a random offset per image.

    Equivalent to torchvision's ``RandomCrop(size=(H, W), padding=padding)`` applied image by image
    (offsets uniform in ``0..2*padding`` along each axis).

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)``, any dtype.
    padding : int
        Pixels of zero padding; 0 returns ``images`` unchanged.
    generator : torch.Generator, optional
        Source of the offsets.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    return padded[bi, ci, rows, cols]


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``(B, C, H, W)`` left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
