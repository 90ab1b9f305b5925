"""Dataset names and the factory :func:`get_dataset`."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from tnn.data.cifar import CIFAR10_CLASSES, load_cifar10
from tnn.data.digits import load_digits
from tnn.data.image_folder import ImageFolderDataset, find_split_dir
from tnn.data.mnist import MNIST_MIRRORS, download_mnist, find_mnist_dir, load_mnist
from tnn.data.normalization import DEFAULT_MODEL, normalization
from tnn.data.synthetic import make_synthetic
from tnn.data.tensor_dataset import ImageTensorDataset
from tnn.models import model_info

#: Names accepted by :func:`get_dataset`.
DATASETS: tuple[str, ...] = ("mnist", "cifar10", "imagenet", "digits", "synthetic")
#: Environment variable naming the default data root.
DATA_DIR_ENV = "TNN_DATA_DIR"
_SPLITS = {"train": "train", "test": "test", "val": "test"}
#: Augmentation per dataset: (random-crop padding, horizontal flip).
_AUGMENT = {"mnist": (2, False), "digits": (2, False), "cifar10": (4, True), "synthetic": (4, True)}


def _data_root(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV)
        if not data_dir:
            raise ValueError(f"no data directory: pass data_dir (--data-dir) or set {DATA_DIR_ENV}")
    return Path(data_dir)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir``, else ``$TNN_DATA_DIR``; ValueError if neither names an existing folder."""
    path = _data_root(data_dir)
    if not path.is_dir():
        raise ValueError(f"data directory {str(path)!r} does not exist")
    return path


def get_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    augment: bool = False,
    model: str | nn.Module | None = None,
    **kw: object,
) -> Dataset:
    """Build a dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`:

        - ``"mnist"``: 60,000 / 10,000 images ``(1, 28, 28)`` from the IDX files (gz or not) in
          ``data_dir``, ``data_dir/mnist`` or ``data_dir/MNIST/raw``; ``download=True`` fetches them first
          (md5-verified, from ``mirrors`` or the default mirrors) into ``data_dir/mnist`` when absent;
        - ``"cifar10"``: 50,000 / 10,000 images ``(3, 32, 32)`` from npz batches or the official
          ``cifar-10-batches-py`` pickles in ``data_dir``, ``data_dir/cifar10`` or
          ``data_dir/cifar-10-batches-py``;
        - ``"imagenet"``: an :class:`ImageFolderDataset` over ``data_dir[/imagenet]/train`` or ``/val``
          (keywords ``image_size``, ``resize``);
        - ``"digits"``: scikit-learn's digits upsampled to ``(1, 28, 28)``, 1437 train / 360 test (offline);
        - ``"synthetic"``: random class templates plus noise (keywords ``size``, ``image_shape``,
          ``num_classes``, ``seed``) in the input shape of ``model`` (:func:`tnn.models.model_info`).
    split : {"train", "test"}
        ``"val"`` is accepted as a synonym of ``"test"``.
    data_dir : path, optional
        Data root or the dataset's own folder; defaults to ``$TNN_DATA_DIR``. Unused by digits/synthetic.
    augment : bool
        Random crop with padding (4 for CIFAR, 2 for MNIST/digits) plus horizontal flip (CIFAR and
        synthetic only); random crop + flip for ImageNet.
    model : str or nn.Module, optional
        Model (name, or a model with an ``arch`` attribute such as those of :func:`tnn.models.get_model`)
        whose normalisation to apply (:func:`tnn.data.normalization`); defaults to lenet5 for
        MNIST/digits, resnet32 for CIFAR-10 and synthetic, resnet50 for ImageNet.

    Returns
    -------
    Dataset
        An :class:`ImageTensorDataset` (uint8 in memory, normalised on access; fast batches through
        :func:`tnn.data.loader`) or, for ImageNet, an :class:`ImageFolderDataset`.

    Raises
    ------
    ValueError
        Unknown name or split, missing folder or files, truncated or corrupted files.
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    name = name.lower()
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: train, test (or val)")
    split = _SPLITS[split]
    model = getattr(model, "arch", model) or DEFAULT_MODEL[name]
    mean, std = normalization(model)
    download = bool(kw.pop("download", False))
    mirrors = kw.pop("mirrors", MNIST_MIRRORS)
    if name == "imagenet":
        folder = find_split_dir(resolve_data_dir(data_dir), split)
        return ImageFolderDataset(folder, mean, std, augment=augment, **kw)  # type: ignore[arg-type]
    classes = None
    if name == "mnist":
        root = _data_root(data_dir)
        if download:
            try:
                find_mnist_dir(root)
            except ValueError:
                download_mnist(root / "mnist", mirrors=mirrors)  # type: ignore[arg-type]
        images, labels = load_mnist(resolve_data_dir(root), split)
    elif name == "cifar10":
        images, labels = load_cifar10(resolve_data_dir(data_dir), split)
        classes = CIFAR10_CLASSES
    elif name == "digits":
        images, labels = load_digits(split)
    else:
        kw.setdefault("image_shape", model_info(model).input_shape)
        images, labels = make_synthetic(split, **kw)  # type: ignore[arg-type]
        kw = {}
    if kw:
        raise TypeError(f"unexpected keyword arguments for dataset {name!r}: {', '.join(kw)}")
    if images.shape[1] != len(mean) and len(mean) != 1:
        raise ValueError(
            f"model {model!r} normalises {len(mean)} channels but dataset {name!r} has {images.shape[1]}"
        )
    padding, flip = _AUGMENT[name]
    return ImageTensorDataset(
        images,
        labels,
        mean,
        std,
        augment=augment,
        crop_padding=padding,
        hflip=flip,
        classes=classes,
        name=name,
    )
