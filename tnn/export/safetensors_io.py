"""Safetensors save / load of (compressed) models, with the metadata that rebuilds the tensorial layers.

A file written by :func:`save_safetensors` holds

- every entry of the model's ``state_dict`` as a tensor (contiguous, CPU, shared storage undone);
- the safetensors string metadata ``{"tnn": <JSON>}`` where the JSON object carries ``tnn_version``,
  ``model`` (a name of :data:`tnn.models.MODELS`, or ``None``), ``format``, ``rate``, ``ranks``
  (``{layer_name: ranks}``), ``step`` and ``plan`` (``CompressionReport.to_dict()``, or ``None`` for a
  dense model).

:func:`load_safetensors` rebuilds the architecture (``get_model(model)`` then
``compress(..., plan=plan)`` with random init, nothing decomposed) and loads the tensors strictly.
Nothing in the file is ever executed: safetensors is a flat tensor container and the metadata is JSON.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tnn.io import CheckpointError, atomic_write, checkpoint_metadata

__all__ = ["METADATA_KEY", "load_safetensors", "read_safetensors_metadata", "safetensors_metadata",
           "save_safetensors"]

#: key of the JSON metadata inside the safetensors header
METADATA_KEY = "tnn"


def _require_safetensors() -> Any:
    try:
        import safetensors.torch as st
    except ModuleNotFoundError as exc:  # pragma: no cover - installed with the 'export' extra
        raise ModuleNotFoundError(
            "safetensors is not installed; install tnn with the 'export' extra (pip install 'tnn[export]')"
        ) from exc
    return st


def _plain(value: Any) -> Any:
    """``value`` as JSON-safe plain data (tuples become lists, tensors/NumPy values lists or numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def safetensors_metadata(model: nn.Module, /, **extra: Any) -> dict[str, Any]:
    """The metadata :func:`save_safetensors` writes for ``model`` (plain, JSON-safe values).

    Parameters
    ----------
    model : nn.Module
        A model of :mod:`tnn.models` (its ``arch`` attribute names it) or the result of
        :func:`tnn.compress` (its ``tnn_report`` gives the format, rate, ranks and rebuild plan).
    **extra
        Overrides / additions, e.g. ``model="resnet32"``, ``step=1200``.
    """
    report = getattr(model, "tnn_report", None)
    meta: dict[str, Any] = {"model": getattr(model, "arch", None)}
    if report is not None:
        meta.update(
            format=report.format,
            rate=report.rate,
            ranks={row.name: row.ranks for row in report.compressed},
            plan=report.to_dict(),
        )
    meta.update(extra)
    step = meta.pop("step", 0)
    return _plain(checkpoint_metadata(step=int(step or 0), **meta))


def save_safetensors(
    path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``model.state_dict()`` and its rebuild metadata to ``path`` (atomically).

    Parameters
    ----------
    path : path-like
        Destination file (conventionally ``*.safetensors``); its directory must exist.
    model : nn.Module
        Dense or compressed model (see :func:`safetensors_metadata`).
    metadata : dict, optional
        Extra or overriding metadata entries (``model``, ``step``, ...), plain values.

    Returns
    -------
    dict
        The metadata written.

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Module`` or ``metadata`` is not a dict.
    ValueError
        The metadata cannot be written as JSON.
    """
    st = _require_safetensors()
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_safetensors expects an nn.Module, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of plain values, got {type(metadata).__name__}")
    meta = safetensors_metadata(model, **(metadata or {}))
    try:
        header = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata is not plain JSON data: {exc}") from exc
    # clone: safetensors refuses tensors sharing storage, and wants contiguous CPU tensors
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = st.save(tensors, metadata={METADATA_KEY: header})
    atomic_write(path, lambda handle: handle.write(blob))
    return meta


def _open_error(p: Path, exc: BaseException) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"safetensors file {str(p)!r} is truncated or corrupted ({first[:200]})")


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tnn metadata of a safetensors file (``{}`` for a file written by another tool).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is not a valid safetensors file or its tnn metadata is not a JSON object.
    """
    from safetensors import safe_open

    p = Path(path)
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


def load_safetensors(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    expect_model: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a file written by :func:`save_safetensors`, rebuilding the compressed architecture.

    Parameters
    ----------
    path : path-like
    model : nn.Module, optional
        The dense architecture to rebuild on (default: ``tnn.models.get_model(metadata["model"])``).
        When the metadata holds a compression plan it is applied with ``compress(model, plan=...)``.
    expect_model : str, optional
        Refuse a file whose metadata names another model.
    device : str or torch.device
        Where the tensors are loaded.

    Returns
    -------
    (model, metadata)
        The rebuilt model (in eval mode) with the file's weights, and the metadata.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError (a ValueError)
        Truncated or corrupted file, a file for another model, tensors that do not fit the architecture,
        or metadata that names no model while ``model`` is not given.
    """
    st = _require_safetensors()
    p = Path(path)
    meta = read_safetensors_metadata(p)
    name = meta.get("model")
    if expect_model is not None and name is not None and name != expect_model:
        raise CheckpointError(f"safetensors file {str(p)!r} holds a {name!r} model, not {expect_model!r}")
    if model is None:
        if not name:
            raise CheckpointError(
                f"safetensors file {str(p)!r} does not name its model; pass the architecture as model="
            )
        from tnn.models import get_model

        model = get_model(name)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    plan = meta.get("plan")
    if plan:
        from tnn.compression import compress

        try:
            model = compress(model, plan=plan)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"safetensors file {str(p)!r}: its compression plan does not fit the model ({exc})"
            ) from exc
    try:
        tensors = st.load_file(str(p), device=str(device))
    except Exception as exc:
        raise _open_error(p, exc) from exc
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"safetensors file {str(p)!r} does not fit the model: {first}") from exc
    model.to(device)
    model.eval()
    return model, meta
