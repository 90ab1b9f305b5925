"""Checkpoints: a dict saved with ``torch.save`` atomically, loaded with ``weights_only=True``.

A checkpoint written by :func:`save_checkpoint` is a dict with at least

- ``"metadata"``: a dict of plain values — ``tnn_version``, ``model``, ``format``, ``rate``, ``ranks``,
  ``step`` and anything else the writer adds (:func:`checkpoint_metadata` builds it);
- ``"model"``: the model's ``state_dict``;

and optionally ``"optimizer"``, ``"rng"`` (RNG states) and training-loop position entries.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from tnn import __version__
from tnn.io.atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted or does not fit the model."""


def checkpoint_metadata(
    *,
    model: str | None = None,
    format: str | None = None,
    rate: float | None = None,
    ranks: Any = None,
    step: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """Build the ``metadata`` entry of a checkpoint (plain Python values only).

    Parameters
    ----------
    model : str, optional
        Model name (as in ``tnn.models.MODELS``).
    format : str, optional
        Compression format, ``None`` for a dense model.
    rate : float, optional
        Target compression rate.
    ranks : any, optional
        Per-layer ranks, e.g. ``{layer_name: ranks}``; the compression plan goes in ``extra["plan"]``.
    step : int
        Training step at which the checkpoint was written.
    **extra
        Further plain values.
    """
    meta: dict[str, Any] = {
        "tnn_version": __version__,
        "model": model,
        "format": format,
        "rate": rate,
        "ranks": ranks,
        "step": int(step),
    }
    meta.update(extra)
    return meta


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Save ``payload`` (a dict with a ``"metadata"`` entry) to ``path`` atomically.

    The parent directory must exist. ``payload`` must hold only tensors, plain Python containers and
    scalars, so that :func:`load_checkpoint` can read it with ``weights_only=True``.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"checkpoint payload must be a dict, got {type(payload).__name__}")
    if "metadata" not in payload:
        raise ValueError("checkpoint payload needs a 'metadata' entry (see tnn.io.checkpoint_metadata)")
    atomic_write(path, lambda handle: torch.save(payload, handle))


def verify_zip_integrity(path: str | os.PathLike[str]) -> None:
    """Check the CRC-32 of every entry of a zip-format ``torch.save`` file (a no-op for other files).

    ``torch.load`` does not verify checksums, so flipped bytes inside tensor data would load silently.

    Raises
    ------
    CheckpointError
        An entry's data does not match its checksum, or the zip structure is damaged.
    """
    p = Path(path)
    if not zipfile.is_zipfile(p):
        return
    try:
        with zipfile.ZipFile(p) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {str(p)!r} is truncated or corrupted ({exc})") from exc
    if bad is not None:
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupted: entry {bad!r} fails its CRC-32 check")


def load_weights_only(path: Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` without torch's warning about a raw pickle's protocol
    (such a file is refused with a one-line error by the callers, the warning only adds noise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Returns
    -------
    dict
        The saved dict. Checkpoints written by other tools (a bare ``state_dict``, or
        ``{"state_dict": ...}``) are returned as they are.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is truncated, corrupted, or not a dict.
    """
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"checkpoint {str(p)!r} is a directory, not a file; give the file in it")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    verify_zip_integrity(p)
    try:
        obj = load_weights_only(p, map_location)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError,
            KeyError, IndexError, AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in first:
            # torch's weights-only message talks about its own defaults; say what matters here
            first = "not a torch.save file of tensors and plain containers"
        raise CheckpointError(
            f"checkpoint {str(p)!r} is truncated or corrupted (torch.load failed: {first[:200]})"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(p)!r} holds a {type(obj).__name__}, expected a dict")
    return obj
