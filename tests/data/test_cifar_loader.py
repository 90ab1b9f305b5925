"""CIFAR-10: npz batches (real data, checked against published sha256), official pickles, errors."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tnn.data import get_dataset
from tnn.data.cifar import CIFAR10_FILES, load_cifar10


def _fake_batches(folder: Path, n: int = 4, protocol: int = 2) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    for i, stem in enumerate(CIFAR10_FILES["train"] + CIFAR10_FILES["test"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{j}.png".encode() for j in range(n)]}  # fmt: skip
        with open(folder / stem, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        out[stem] = (data, labels)
    return out


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_batches(tmp_path: Path, protocol: int) -> None:
    batches = _fake_batches(tmp_path / "cifar-10-batches-py", protocol=protocol)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    expected = np.concatenate([batches[s][0] for s in CIFAR10_FILES["train"]]).reshape(-1, 3, 32, 32)
    assert np.array_equal(x.numpy(), expected)
    assert y.tolist() == sum((batches[s][1] for s in CIFAR10_FILES["train"]), [])
    test = get_dataset("cifar10", "test", data_dir=tmp_path / "cifar-10-batches-py")
    img, label = test[1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    ref = (torch.from_numpy(batches["test_batch"][0][1].reshape(3, 32, 32)).float() / 255 - mean) / std
    assert torch.allclose(img, ref, atol=1e-6) and label == batches["test_batch"][1][1]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_foreign_globals_is_refused(tmp_path: Path) -> None:
    _fake_batches(tmp_path / "c")
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch.*(posix|os|nt)\.system"):
        load_cifar10(tmp_path / "c", "test")


def test_truncated_pickle_and_npz(tmp_path: Path, datasets_dir: Path) -> None:
    _fake_batches(tmp_path / "p")
    path = tmp_path / "p" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="data_batch_3"):
        load_cifar10(tmp_path / "p", "train")
    folder = tmp_path / "npz"
    folder.mkdir()
    good = (datasets_dir / "cifar10" / "test_batch.npz").read_bytes()
    (folder / "test_batch.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="test_batch.npz"):
        load_cifar10(folder, "test")
    with pytest.raises(ValueError, match="data_batch_1.npz.*missing"):
        load_cifar10(folder, "train")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CIFAR-10 batches under"):
        get_dataset("cifar10", data_dir=tmp_path)


def test_real_npz_matches_published_checksums(datasets_dir: Path) -> None:
    sums = json.loads((datasets_dir / "cifar10" / "checksums.json").read_text())
    x, y = load_cifar10(datasets_dir, "test")
    assert x.shape == (10000, 3, 32, 32)
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == sums["test_batch"]["sha256_data_rows_chw"]
    assert torch.bincount(y).tolist() == sums["test_batch"]["class_counts"]
    train = get_dataset("cifar10", "train", data_dir=datasets_dir / "cifar10")
    images, labels = train.tensors()
    assert images.shape == (50000, 3, 32, 32)
    assert hashlib.sha256(images[:10000].numpy().tobytes()).hexdigest() == sums["data_batch_1"][
        "sha256_data_rows_chw"
    ]
    expected = np.sum([sums[f"data_batch_{i}"]["class_counts"] for i in range(1, 6)], axis=0)
    assert torch.bincount(labels).tolist() == expected.tolist()
