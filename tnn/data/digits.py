"""scikit-learn's bundled handwritten digits (1797 images, 8x8), upsampled to 28x28 — the offline default."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from tnn.io import require

DIGITS_TRAIN_SIZE = 1437  # the remaining 360 form the test split
DIGITS_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    # imported on use: scikit-learn is an optional dependency (the 'demo' extra)
    datasets = require("sklearn.datasets", "demo", "the 'digits' dataset")
    bunch = datasets.load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Digits ``split`` as uint8 ``(N, 1, 28, 28)`` images and int64 labels ``(N,)``.

    The 8x8 images (values 0..16) are scaled to 0..255 and upsampled bilinearly to 28x28. The split is a
    fixed permutation (``numpy.random.default_rng(0)``): its first 1437 images are "train", the last 360
    "test".
    """
    images, labels = _all_digits()
    order = torch.from_numpy(np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels)))
    idx = order[:DIGITS_TRAIN_SIZE] if split == "train" else order[DIGITS_TRAIN_SIZE:]
    return images[idx].contiguous(), labels[idx]
