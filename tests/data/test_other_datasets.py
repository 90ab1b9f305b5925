"""digits, synthetic, ImageNet-style folders, get_dataset errors, normalisation table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tnn.data import DATASETS, ImageFolderDataset, get_dataset, normalization


def test_digits_split_is_fixed_and_disjoint() -> None:
    from sklearn.datasets import load_digits

    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    assert len(train) == 1437 and len(test) == 360
    assert train.tensors()[0].shape == (1437, 1, 28, 28) and train.tensors()[0].dtype == torch.uint8
    again = get_dataset("digits", "train")
    assert torch.equal(train.tensors()[0], again.tensors()[0])
    both = torch.cat([train.tensors()[1], test.tensors()[1]])
    assert torch.bincount(both).tolist() == np.bincount(load_digits().target).tolist()
    # independent reference: fixed permutation, then separable bilinear upsampling (half-pixel centres)
    sk = load_digits()
    order = np.random.default_rng(0).permutation(1797)[1437:]
    a = np.zeros((28, 8))
    for i in range(28):
        src = max((i + 0.5) * 8 / 28 - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1, w = min(i0 + 1, 7), src - i0
        a[i, i0] += 1 - w
        a[i, i1] += w
    ref = np.einsum("ij,njk,lk->nil", a, sk.images[order] * 255 / 16, a)
    got = test.tensors()[0][:, 0].numpy().astype(float)
    assert np.abs(got - ref).max() <= 0.5 + 1e-6
    assert test.tensors()[1].tolist() == sk.target[order].tolist()


def test_synthetic_shapes_and_determinism() -> None:
    a = get_dataset("synthetic", "train", model="lenet5")
    assert a.tensors()[0].shape == (512, 1, 28, 28)
    b = get_dataset("synthetic", "train", model="lenet5")
    assert torch.equal(a.tensors()[0], b.tensors()[0])
    c = get_dataset("synthetic", "test", size=16, image_shape=(3, 8, 8), num_classes=3)
    assert c.tensors()[0].shape == (16, 3, 8, 8) and int(c.tensors()[1].max()) < 3
    with pytest.raises(TypeError, match="colour"):
        get_dataset("digits", colour=True)


def _write_images(root: Path) -> dict[str, list[tuple[int, int, int]]]:
    from PIL import Image

    colours = {"cat": [(255, 0, 0), (0, 255, 0)], "ant": [(10, 20, 30)], "dog": [(0, 0, 255)]}
    for cls, cols in colours.items():
        (root / cls).mkdir(parents=True)
        for i, col in enumerate(cols):
            Image.new("RGB", (40 + 10 * i, 36), col).save(root / cls / f"{i}.png")
    return colours


def test_image_folder(tmp_path: Path) -> None:
    colours = _write_images(tmp_path / "imagenet" / "val")
    (tmp_path / "imagenet" / "val" / "dog" / "notes.txt").write_text("not an image")
    ds = get_dataset("imagenet", "test", data_dir=tmp_path, image_size=16, resize=20)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["ant", "cat", "dog"] and len(ds) == 4
    assert ds.labels.tolist() == [0, 1, 1, 2]
    mean, std = normalization("resnet50")
    for i, (cls, col) in enumerate([("ant", colours["ant"][0]), ("cat", colours["cat"][0])]):
        x, y = ds[i]
        assert x.shape == (3, 16, 16) and y == ds.classes.index(cls)
        expected = (torch.tensor(col, dtype=torch.float32) / 255 - torch.tensor(mean)) / torch.tensor(std)
        assert torch.allclose(x, expected.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)
    aug = get_dataset(
        "imagenet", "val", data_dir=tmp_path / "imagenet", augment=True, image_size=16, resize=20
    )
    assert aug[3][0].shape == (3, 16, 16)
    (tmp_path / "imagenet" / "val" / "cat" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="1.png"):
        ds[2]
    with pytest.raises(ValueError, match="no ImageNet train folder"):
        get_dataset("imagenet", "train", data_dir=tmp_path)


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_images(tmp_path / "imagenet" / "train")
    monkeypatch.setenv("TNN_DATA_DIR", str(tmp_path))
    assert len(get_dataset("imagenet", "train", image_size=8, resize=8)) == 4
    monkeypatch.delenv("TNN_DATA_DIR")
    with pytest.raises(ValueError, match="TNN_DATA_DIR"):
        get_dataset("cifar10")


def test_get_dataset_errors(tmp_path: Path) -> None:
    assert DATASETS == ("mnist", "cifar10", "imagenet", "digits", "synthetic")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*mnist.*synthetic"):
        get_dataset("svhn")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        get_dataset("digits", "dev")
    with pytest.raises(ValueError, match="does not exist"):
        get_dataset("cifar10", data_dir=tmp_path / "absent")
    with pytest.raises(ValueError, match="normalises 3 channels but dataset 'digits' has 1"):
        get_dataset("digits", model="resnet32")


def test_normalization_table() -> None:
    assert normalization("lenet5") == ((0.1307,), (0.3081,))
    assert normalization("resnet32") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("resnet50") == normalization("resnet110")
    from tnn.models import get_model

    ds = get_dataset("synthetic", "test", size=4, model=get_model("lenet5"))
    assert ds.tensors()[0].shape == (4, 1, 28, 28) and ds.mean.flatten().tolist() == pytest.approx([0.1307])
    with pytest.raises(ValueError, match="no normalisation for model 'vgg'"):
        normalization("vgg")
