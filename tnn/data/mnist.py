"""MNIST from the four original IDX files (gzipped or not), with an optional verified download."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tnn.data._files import find_file, read_bytes

#: IDX file stems per split: (images, labels).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: md5 of the published gzipped files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def parse_idx(data: bytes, path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (type code 0x08) with ``ndim`` dimensions.

    Layout: two zero bytes, the type code, the number of dimensions, then one big-endian uint32 per
    dimension and the data in C order.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number)")
    if data[2] != 0x08 or data[3] != ndim:
        raise ValueError(
            f"{str(path)!r}: expected IDX uint8 (type 0x08) with {ndim} dimensions, "
            f"got type 0x{data[2]:02x} with {data[3]} dimensions"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{str(path)!r} is truncated (header incomplete)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(
            f"{str(path)!r} has {len(data)} bytes, expected {expected} for shape {dims} (truncated?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_mnist_dir(root: Path) -> Path:
    """The folder holding the IDX files: ``root`` itself, ``root/mnist``, ``root/MNIST/raw`` or similar."""
    candidates = [root, root / "mnist", root / "MNIST", root / "raw"]
    candidates += [root / "mnist" / "raw", root / "MNIST" / "raw"]
    for folder in candidates:
        if folder.is_dir() and find_file(folder, MNIST_FILES["test"][0]) is not None:
            return folder
    raise ValueError(
        f"no MNIST files under {str(root)!r}: expected {MNIST_FILES['test'][0]}[.gz] etc. in it or in "
        "mnist/ or MNIST/raw/"
    )


def load_mnist(root: str | os.PathLike[str], split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Read MNIST ``split`` as uint8 images ``(N, 1, 28, 28)`` and int64 labels ``(N,)``.

    Parameters
    ----------
    root : path
        A folder holding the four IDX files (``.gz`` or not), or one containing ``mnist/`` or ``MNIST/raw/``.
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    """
    folder = find_mnist_dir(Path(root))
    paths = []
    for stem in MNIST_FILES[split]:
        path = find_file(folder, stem)
        if path is None:
            raise ValueError(f"MNIST file {stem}[.gz] missing from {str(folder)!r}")
        paths.append(path)
    images = parse_idx(read_bytes(paths[0]), paths[0], 3)
    labels = parse_idx(read_bytes(paths[1]), paths[1], 1)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(
            f"MNIST {split}: {str(paths[0])!r} holds {images.shape} images but {str(paths[1])!r} "
            f"{labels.shape[0]} labels (expected (N, 28, 28) and N)"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{str(paths[1])!r} holds label {int(labels.max())}, expected 0..9")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_mnist(
    root: str | os.PathLike[str], mirrors: Sequence[str] = MNIST_MIRRORS, timeout: float = 60.0
) -> Path:
    """Download the four gzipped IDX files into ``root`` (created), verifying each md5.

    Files already present with the right md5 are kept. Each file is tried from each mirror in turn
    (any URL scheme urllib supports) and only renamed into place once its md5 matches.

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    RuntimeError
        If a file cannot be fetched with the right md5 from any mirror.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_MD5.items():
        target = root / name
        if target.is_file() and _md5(target) == md5:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            tmp = root / f".{name}.part"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                got = _md5(tmp)
                if got != md5:
                    errors.append(f"{url}: md5 {got} != {md5}")
                    continue
                os.replace(tmp, target)
                break
            except OSError as err:
                errors.append(f"{url}: {err}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise RuntimeError(f"could not download {name} with md5 {md5}: " + "; ".join(errors))
    return root
