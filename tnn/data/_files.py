"""Small helpers shared by the loaders: reading possibly-gzipped files with clear errors."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path


def read_bytes(path: Path) -> bytes:
    """Return the content of ``path``, decompressed if it ends in ``.gz``; ValueError naming it on failure."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"cannot read {str(path)!r} (truncated or corrupted?): {err}") from err


def find_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (uncompressed first)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None
