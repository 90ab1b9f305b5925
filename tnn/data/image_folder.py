"""ImageNet-style ImageFolder datasets: ``root/<split>/<class>/<image>`` decoded with PIL on access."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
SPLIT_DIRS = {"train": ("train",), "test": ("val", "test")}


def _pil():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow ships with matplotlib
        raise ImportError("ImageFolder datasets need Pillow to decode images: pip install pillow") from err
    return Image


def find_split_dir(root: Path, split: str) -> Path:
    """``root[/imagenet]/train`` for "train", ``.../val`` (or ``.../test``) for "test"."""
    for base in (root, root / "imagenet"):
        for name in SPLIT_DIRS[split]:
            if (base / name).is_dir():
                return base / name
    names = " or ".join(f"{n}/" for n in SPLIT_DIRS[split])
    raise ValueError(
        f"no ImageNet {split} folder under {str(root)!r}: expected {names} (in it or in imagenet/)"
    )


class ImageFolderDataset(Dataset):
    """Images in class subfolders, sorted by class name (label = index in sorted order).

    ``dataset[i]`` is ``(x, y)``: ``x`` float32 ``(3, image_size, image_size)``, normalised with
    ``mean``/``std`` after scaling to [0, 1]. Evaluation: shorter side resized to ``resize``, then a centre
    crop of ``image_size``. With ``augment``: the crop is at a random position and mirrored with
    probability 1/2 (drawn from torch's global generator).

    Parameters
    ----------
    root : path
        Folder of class subfolders holding JPEG/PNG files.
    mean, std : sequence of float
        Per-channel statistics.
    augment : bool
        Random crop and flip instead of the centre crop.
    image_size, resize : int
        Crop size and shorter-side size (224 and 256 for ImageNet).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        image_size: int = 224,
        resize: int = 256,
        name: str = "imagenet",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise ValueError(f"image folder {str(self.root)!r} has no class subfolders")
        self.samples: list[tuple[Path, int]] = []
        for label, cls in enumerate(self.classes):
            for path in sorted((self.root / cls).rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                    self.samples.append((path, label))
        if not self.samples:
            exts = ", ".join(IMAGE_EXTENSIONS)
            raise ValueError(f"image folder {str(self.root)!r} holds no images ({exts})")
        if resize < image_size:
            raise ValueError(f"resize ({resize}) must be >= image_size ({image_size})")
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32).view(-1, 1, 1)
        self.augment = bool(augment)
        self.image_size = int(image_size)
        self.resize = int(resize)
        self.name = name
        self._image = _pil()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        """int64 ``(N,)`` labels of all samples."""
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def load_uint8(self, index: int) -> torch.Tensor:
        """Decode, resize and crop sample ``index`` to uint8 ``(3, image_size, image_size)``."""
        path, _ = self.samples[index]
        image_mod = self._image
        try:
            with image_mod.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                scale = self.resize / min(w, h)
                nw, nh = max(self.resize, round(w * scale)), max(self.resize, round(h * scale))
                img = img.resize((nw, nh), image_mod.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot decode image {str(path)!r}: {err}") from err
        s = self.image_size
        if self.augment:
            top = int(torch.randint(0, nh - s + 1, ()))
            left = int(torch.randint(0, nw - s + 1, ()))
        else:
            top, left = (nh - s) // 2, (nw - s) // 2
        x = torch.from_numpy(array[top : top + s, left : left + s].copy()).permute(2, 0, 1)
        if self.augment and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x.contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.load_uint8(index).to(torch.float32) / 255.0
        return (x - self.mean) / self.std, self.samples[index][1]
