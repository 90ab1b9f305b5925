"""tnn.data.loader and the batched augmentation, checked against per-image references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tnn.data import ImageTensorDataset, get_dataset, loader
from tnn.data.augment import random_crop, random_hflip


def _dataset(n: int = 23, augment: bool = False) -> ImageTensorDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 6, 5), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 4
    return ImageTensorDataset(images, labels, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), augment, 2, True)


def test_random_crop_is_a_crop_of_the_zero_padded_image() -> None:
    x = torch.randint(1, 256, (12, 2, 5, 7), dtype=torch.uint8)
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    offsets = set()
    for img, ref in zip(out, x, strict=True):
        padded = F.pad(ref, (2, 2, 2, 2))
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[:, dy : dy + 5, dx : dx + 7], img)
        ]
        assert found
        offsets.add(found[0])
    assert len(offsets) > 3
    assert random_crop(x, 0) is x
    with pytest.raises(ValueError, match="padding"):
        random_crop(x, -1)


def test_random_hflip() -> None:
    x = torch.randint(0, 256, (32, 1, 3, 4), dtype=torch.uint8)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, r.flip(-1)) and not torch.equal(o, r) for o, r in zip(out, x, strict=True)]
    kept = [torch.equal(o, r) for o, r in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 4 < sum(flipped) < 28


def test_plain_batches_equal_items() -> None:
    ds = _dataset()
    batches = list(loader(ds, 5))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    x = torch.cat([b[0] for b in batches])
    ref = torch.stack([ds[i][0] for i in range(len(ds))])
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    assert torch.equal(x, ref)
    assert torch.allclose(x[7], (ds.images[7].float() / 255 - mean) / std, atol=1e-6)
    assert ds.images.dtype == torch.uint8  # normalisation did not touch the stored data


def test_shuffle_epochs_limit_drop_last() -> None:
    ds = _dataset()
    it = loader(ds, 4, shuffle=True, seed=7, limit=10, drop_last=True)
    assert len(it) == 2
    first = torch.cat([y for _, y in it])
    assert len(first) == 8
    full = loader(ds, 4, shuffle=True, seed=7)
    e0 = [x for x, _ in full]
    e1 = [x for x, _ in full]
    assert not torch.equal(torch.cat(e0), torch.cat(e1))  # a new order each epoch
    assert sorted(torch.cat([x.flatten(1) for x in e0]).sum(1).tolist()) == sorted(
        torch.stack([ds[i][0].flatten() for i in range(len(ds))]).sum(1).tolist()
    )  # each item exactly once
    full.set_epoch(0)
    assert torch.equal(torch.cat([x for x, _ in full]), torch.cat(e0))  # reproducible


def test_augmented_batches_are_crops_and_flips() -> None:
    ds = _dataset(augment=True)
    x, y = next(iter(loader(ds, 23)))
    plain = next(iter(loader(ds, 23, augment=False)))[0]
    assert not torch.equal(x, plain)
    for i in range(len(ds)):
        padded = F.pad(ds.images[i], (2, 2, 2, 2))
        crops = [padded[:, a : a + 6, b : b + 5] for a in range(5) for b in range(5)]
        cands = [ds.normalize(c.unsqueeze(0))[0] for c in crops + [c.flip(-1) for c in crops]]
        assert any(torch.equal(x[i], c) for c in cands)
    assert ds[0][0].shape == (3, 6, 5)


def test_loader_generic_path_and_errors() -> None:
    base = get_dataset("synthetic", "test", size=10)
    wrapped = torch.utils.data.Subset(base, list(range(10)))
    xs = torch.cat([x for x, _ in loader(wrapped, 4)])
    assert torch.equal(xs, torch.cat([x for x, _ in loader(base, 4)]))
    with pytest.raises(ValueError, match="batch_size"):
        loader(base, 0)
    with pytest.raises(ValueError, match="limit"):
        loader(base, 2, limit=0)
