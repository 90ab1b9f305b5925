"""Safetensors files: a flat ``{name: tensor}`` container plus one JSON metadata object.

This module knows nothing about models: :mod:`tnn.compression.model_file` decides what the tensors and
the metadata are. The JSON object is stored under the safetensors string-metadata key
:data:`METADATA_KEY`; nothing in the file is ever executed when reading it.

``safetensors`` comes with the ``export`` extra and is imported only when these functions run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tnn.io.atomic import atomic_write
from tnn.io.checkpoint import CheckpointError
from tnn.io.extras import require

#: key of the JSON metadata inside the safetensors header
METADATA_KEY = "tnn"


def _require_safetensors() -> Any:
    # imported on use, not at the top: safetensors is an optional dependency (the 'export' extra)
    return require("safetensors.torch", "export", "reading or writing .safetensors files")


def _open_error(p: Path, exc: BaseException) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"safetensors file {str(p)!r} is truncated or corrupted ({first[:200]})")


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Write ``tensors`` and the JSON object ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file (conventionally ``*.safetensors``); its directory must exist.
    tensors : dict of str to Tensor
        E.g. a ``state_dict``; each tensor is copied to a contiguous CPU tensor of its own (safetensors
        refuses tensors sharing storage).
    metadata : dict
        Plain JSON data (no NaN / inf; see :func:`tnn.io.to_jsonable` with ``strict=True``).

    Raises
    ------
    ValueError
        ``metadata`` cannot be written as JSON.
    """
    st = _require_safetensors()
    try:
        header = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata is not plain JSON data: {exc}") from exc
    copies = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = st.save(copies, metadata={METADATA_KEY: header})
    atomic_write(path, lambda handle: handle.write(blob))


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tnn metadata of a safetensors file (``{}`` for a file written by another tool).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is not a valid safetensors file or its tnn metadata is not a JSON object.
    """
    _require_safetensors()
    from safetensors import safe_open  # optional dependency, see _require_safetensors

    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"safetensors file {str(p)!r} is a directory, not a file; give the file in it")
    if not p.is_file():
        raise FileNotFoundError(f"safetensors file {str(p)!r} does not exist")
    try:
        with safe_open(str(p), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError variants
        raise _open_error(p, exc) from exc
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"safetensors file {str(p)!r} has corrupted tnn metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"safetensors file {str(p)!r}: tnn metadata is not a JSON object")
    return meta


def read_safetensors_tensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, loaded on ``device``.

    Raises
    ------
    CheckpointError
        The file is truncated or corrupted.
    """
    st = _require_safetensors()
    p = Path(path)
    try:
        return st.load_file(str(p), device=str(device))
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError variants
        raise _open_error(p, exc) from exc
