"""CIFAR-10 from the official ``cifar-10-batches-py`` pickles (read safely) or the ``.npz`` batch layout.

npz layout: ``data_batch_1.npz`` ... ``data_batch_5.npz`` and ``test_batch.npz``, each with ``x`` uint8
``(N, 32, 32, 3)`` (NHWC, RGB) and ``y`` ``(N,)``. Pickle layout: files ``data_batch_1`` ...
``data_batch_5``, ``test_batch`` (and ``batches.meta``), each a pickled dict with bytes keys: ``b"data"``
uint8 ``(N, 3072)`` (channel-major 3x32x32 rows) and ``b"labels"`` (list of ints). The pickles are read
through :class:`RestrictedUnpickler`, which resolves no global except what numpy arrays need.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def _numpy_reconstruct():  # numpy >= 2 moved numpy.core to numpy._core
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds plain containers and numpy arrays.

    The allowed globals are numpy's ``_reconstruct`` (under ``numpy.core`` or ``numpy._core``),
    ``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode`` (used by protocol-2 pickles of bytes);
    any other global raises ``pickle.UnpicklingError``.
    """

    def find_class(self, module: str, name: str) -> object:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "_codecs" and name == "encode":
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def read_pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one official python batch: uint8 ``(N, 3, 32, 32)`` images and int64 ``(N,)`` labels."""
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"cannot read CIFAR batch {str(path)!r} (truncated, corrupted or unsafe): {err}"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR batch {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise ValueError(f"CIFAR batch {str(path)!r} lacks the 'data' array or 'labels' list")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"CIFAR batch {str(path)!r}: expected uint8 data (N, 3072) and N labels, "
            f"got {data.dtype} {data.shape} and {labels.shape[0]} labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_npz_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one ``.npz`` batch: uint8 ``(N, 3, 32, 32)`` images and int64 ``(N,)`` labels."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read CIFAR batch {str(path)!r} (truncated or corrupted?): {err}") from err
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.shape != (x.shape[0],):
        raise ValueError(
            f"CIFAR batch {str(path)!r}: expected x uint8 (N, 32, 32, 3) and y (N,), "
            f"got x {x.dtype} {x.shape} and y {y.shape}"
        )
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)


def find_cifar10_dir(root: Path) -> tuple[Path, str]:
    """Locate the batches under ``root``; returns ``(folder, "npz" | "pickle")``."""
    candidates = [
        root,
        root / "cifar10",
        root / "cifar-10-batches-py",
        root / "cifar10" / "cifar-10-batches-py",
    ]
    for folder in candidates:
        if (folder / "test_batch.npz").is_file():
            return folder, "npz"
        if (folder / "test_batch").is_file():
            return folder, "pickle"
    raise ValueError(
        f"no CIFAR-10 batches under {str(root)!r}: expected test_batch.npz / data_batch_1.npz ... or the "
        "official pickles test_batch / data_batch_1 ... in it, in cifar10/ or in cifar-10-batches-py/"
    )


def load_cifar10(root: str | os.PathLike[str], split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10 ``split`` as uint8 images ``(N, 3, 32, 32)`` (RGB) and int64 labels ``(N,)``.

    Parameters
    ----------
    root : path
        A folder with the npz batches or the official pickles, or one containing ``cifar10/`` or
        ``cifar-10-batches-py/``.
    split : {"train", "test"}
        The five training batches (50,000 images, in order) or the test batch (10,000).
    """
    folder, kind = find_cifar10_dir(Path(root))
    xs, ys = [], []
    for stem in CIFAR10_FILES[split]:
        path = folder / (f"{stem}.npz" if kind == "npz" else stem)
        if not path.is_file():
            raise ValueError(f"CIFAR-10 file {path.name!r} missing from {str(folder)!r}")
        x, y = read_npz_batch(path) if kind == "npz" else read_pickle_batch(path)
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"CIFAR batch {str(path)!r} holds labels outside 0..9")
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
