"""MNIST: IDX parsing (gz or not), real files, errors, md5-verified download through file:// mirrors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tnn.data import download_mnist, get_dataset
from tnn.data.mnist import MNIST_FILES, load_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fake_mnist(folder: Path, n: int, gz: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        for stem, array in zip(MNIST_FILES[split], (images, labels), strict=True):
            data = _idx(array)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_fake_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    images, labels = _write_fake_mnist(tmp_path / "mnist", 7, gz)
    x, y = load_mnist(tmp_path, "test")  # found under root/mnist
    assert x.dtype == torch.uint8 and x.shape == (7, 1, 28, 28)
    assert np.array_equal(x[:, 0].numpy(), images) and np.array_equal(y.numpy(), labels)
    ds = get_dataset("mnist", "train", data_dir=tmp_path / "mnist")
    xi, yi = ds[3]
    expected = (torch.from_numpy(images[3]).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(xi[0], expected, atol=1e-6) and yi == int(labels[3])


def test_torchvision_layout(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path / "MNIST" / "raw", 3, gz=False)
    assert len(get_dataset("mnist", "test", data_dir=tmp_path)) == 3


def test_real_mnist(datasets_dir: Path) -> None:
    train = get_dataset("mnist", "train", data_dir=datasets_dir)
    test = get_dataset("mnist", "test", data_dir=datasets_dir / "mnist")
    assert train.tensors()[0].shape == (60000, 1, 28, 28) and test.tensors()[0].shape == (10000, 1, 28, 28)
    assert torch.bincount(train.tensors()[1]).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.tensors()[1]).tolist() == TEST_COUNTS
    mean = train.tensors()[0].double().mean().item() / 255
    assert abs(mean - 0.1307) < 1e-4


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        get_dataset("mnist", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no MNIST files under"):
        get_dataset("mnist", data_dir=tmp_path)
    _write_fake_mnist(tmp_path, 5, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])  # truncated gzip stream
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        get_dataset("mnist", "test", data_dir=tmp_path)
    raw = tmp_path / "raw"
    _write_fake_mnist(raw, 5, gz=False)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])  # truncated payload
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        load_mnist(raw, "test")
    path.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 40)
    with pytest.raises(ValueError, match="bad magic"):
        load_mnist(raw, "test")
    (raw / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*missing"):
        load_mnist(raw, "train")


def test_download_from_file_mirror(tmp_path: Path, datasets_dir: Path) -> None:
    # no network: a file:// mirror holding the real files exercises fetching and md5 verification
    mirror = tmp_path / "mirror"
    shutil.copytree(datasets_dir / "mnist", mirror)
    target = download_mnist(tmp_path / "data" / "mnist", mirrors=[f"file://{tmp_path}/bad/", mirror.as_uri()])
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in mirror.iterdir())
    assert len(get_dataset("mnist", "test", data_dir=tmp_path / "data")) == 10000
    fresh = get_dataset(
        "mnist", "test", data_dir=tmp_path / "fresh", download=True, mirrors=[mirror.as_uri()]
    )
    assert len(fresh) == 10000 and (tmp_path / "fresh" / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    # a corrupted mirror file fails the md5 check
    broken = tmp_path / "broken"
    shutil.copytree(mirror, broken)
    (broken / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    with pytest.raises(RuntimeError, match="t10k-labels-idx1-ubyte.gz.*md5"):
        download_mnist(tmp_path / "other", mirrors=[broken.as_uri()])
    assert not (tmp_path / "other" / "t10k-labels-idx1-ubyte.gz").exists()
