"""Datasets: MNIST (IDX files), CIFAR-10 (official pickles or npz batches), ImageNet folders, ``digits``.

- :func:`get_dataset` / :data:`DATASETS` — build by name; data root from ``data_dir`` or ``$TNN_DATA_DIR``;
- :func:`loader` — fast, reproducible batches with whole-batch augmentation and normalisation;
- :func:`normalization` — per-model ``(mean, std)``;
- :func:`download_mnist` — md5-verified download of the MNIST files.
"""

from __future__ import annotations

from tnn.data.image_folder import ImageFolderDataset
from tnn.data.loader import BatchLoader, loader
from tnn.data.mnist import download_mnist
from tnn.data.normalization import normalization
from tnn.data.registry import DATA_DIR_ENV, DATASETS, get_dataset
from tnn.data.tensor_dataset import ImageTensorDataset

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "BatchLoader",
    "ImageFolderDataset",
    "ImageTensorDataset",
    "download_mnist",
    "get_dataset",
    "loader",
    "normalization",
]
