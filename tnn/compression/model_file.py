"""Model files: save a (compressed) model with the metadata that rebuilds it, and load it back.

Two file formats, chosen by the file name (``*.safetensors``, anything else is a ``torch.save`` file)
or by ``file_format=``:

- ``.pt`` — a tnn checkpoint ``{"metadata": {...}, "model": state_dict}`` written by
  :func:`tnn.io.save_checkpoint` (training checkpoints also carry ``"optimizer"``, ``"rng"``,
  ``"position"``, ...; only ``"model"`` is read here), or a foreign pretrained ``state_dict``
  (loaded by :func:`tnn.models.load_pretrained`); always read with ``weights_only=True``;
- ``.safetensors`` — the ``state_dict`` plus the same metadata as JSON (:mod:`tnn.io.safetensors_file`).

The metadata (:func:`tnn.io.checkpoint_metadata`) holds ``tnn_version``, ``model`` (a name of
:data:`tnn.models.MODELS`), ``format``, ``rate``, ``ranks`` (``{layer_name: ranks}``), ``step`` and,
for a compressed model, ``plan`` (``CompressionReport.to_dict()``). A compressed model is rebuilt by
:func:`rebuild_model` only: ``get_model(name)`` then ``compress(..., plan=plan)`` with random init
(nothing decomposed), before the saved weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tnn.compression.core import compress
from tnn.compression.report import CompressionReport
from tnn.io import (
    CheckpointError,
    checkpoint_metadata,
    load_checkpoint,
    read_safetensors_metadata,
    read_safetensors_tensors,
    save_checkpoint,
    to_jsonable,
    write_safetensors,
)
from tnn.models import extract_state_dict, get_model, load_pretrained

__all__ = ["compressed_metadata", "load_model", "model_metadata", "rebuild_model", "save_model"]

FileFormat = Literal["pt", "safetensors"]


def compressed_metadata(model_name: str | None, report: CompressionReport, **extra: Any) -> dict[str, Any]:
    """Metadata of a compressed model: name, format, rate, per-layer ranks and the rebuild plan.

    Parameters
    ----------
    model_name : str or None
        Name of the dense architecture in :data:`tnn.models.MODELS`.
    report : CompressionReport
        ``compressed.tnn_report`` as attached by :func:`tnn.compress`.
    **extra
        Further entries (e.g. ``dataset="digits"``); they override the ones above.

    Returns
    -------
    dict
        ``{"model", "format", "rate", "ranks", "plan", **extra}``; ``ranks`` maps each compressed
        layer's name to its ranks and ``plan`` is ``report.to_dict()``.
    """
    return {
        "model": model_name,
        "format": report.format,
        "rate": report.rate,
        "ranks": {row.name: row.ranks for row in report.compressed},
        "plan": report.to_dict(),
        **extra,
    }


def model_metadata(model: nn.Module, /, **extra: Any) -> dict[str, Any]:
    """The metadata :func:`save_model` writes for ``model`` (plain values, not yet JSON-sanitised).

    Parameters
    ----------
    model : nn.Module
        A model of :mod:`tnn.models` (its ``arch`` attribute names it) or the result of
        :func:`tnn.compress` (its ``tnn_report`` gives the format, rate, ranks and rebuild plan).
    **extra
        Overrides / additions, e.g. ``model="resnet32"``, ``step=1200``.

    Returns
    -------
    dict
        :func:`tnn.io.checkpoint_metadata` of the above (``step`` defaults to 0).
    """
    name = getattr(model, "arch", None)
    report = getattr(model, "tnn_report", None)
    meta = compressed_metadata(name, report) if report is not None else {"model": name}
    meta.update(extra)
    step = meta.pop("step", 0)
    return checkpoint_metadata(step=int(step or 0), **meta)


def rebuild_model(
    model_name: str | None,
    metadata: Mapping[str, Any],
    *,
    model: nn.Module | None = None,
    source: str = "metadata",
) -> nn.Module:
    """The architecture described by ``metadata``, with random weights.

    Parameters
    ----------
    model_name : str or None
        Dense architecture to build with :func:`tnn.models.get_model` (ignored when ``model`` is given).
    metadata : mapping
        Checkpoint metadata; when it holds a compression ``plan`` the dense model is compressed with
        ``compress(model, plan=plan)`` (no decomposition), otherwise it is returned dense.
    model : nn.Module, optional
        The dense architecture to rebuild on instead of ``get_model(model_name)`` (not modified).
    source : str
        What the metadata came from, for error messages (e.g. ``"checkpoint 'run/model.pt'"``).

    Returns
    -------
    nn.Module
        The dense or compressed model (a compressed one carries its ``tnn_report``).

    Raises
    ------
    CheckpointError (a ValueError)
        No model is named, or the plan does not fit the architecture.
    """
    if model is None:
        if not model_name:
            raise CheckpointError(f"{source} does not name its model; give model_name (--model)")
        model = get_model(model_name)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    plan = metadata.get("plan")
    if not plan:
        return model
    try:
        rebuilt = compress(model, plan=plan)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{source}: its compression plan does not fit the model ({exc})") from exc
    # the requested rate is not part of the architecture: carry it over so it is saved again
    rate = metadata.get("rate")
    if rate is None and isinstance(plan, Mapping):
        rate = plan.get("rate")
    rebuilt.tnn_report.rate = rate
    return rebuilt


def _file_format(path: Path, file_format: FileFormat | None) -> FileFormat:
    if file_format is None:
        return "safetensors" if path.name.lower().endswith(".safetensors") else "pt"
    if file_format not in ("pt", "safetensors"):
        raise ValueError(f"file_format must be 'pt' or 'safetensors', got {file_format!r}")
    return file_format


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    metadata: Mapping[str, Any] | None = None,
    *,
    file_format: FileFormat | None = None,
) -> dict[str, Any]:
    """Write ``model.state_dict()`` and its rebuild metadata to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file; its directory must exist. ``*.safetensors`` writes safetensors, any other
        name a ``torch.save`` checkpoint ``{"metadata", "model"}``.
    model : nn.Module
        Dense or compressed model (see :func:`model_metadata`).
    metadata : mapping, optional
        Extra or overriding entries (``model``, ``step``, ``plan``, ...; see :func:`compressed_metadata`).
    file_format : {"pt", "safetensors"}, optional
        Overrides the choice by file name.

    Returns
    -------
    dict
        The metadata written: plain JSON data; for safetensors, NaN / inf floats became ``None``.

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Module`` or ``metadata`` is not a mapping.
    ValueError
        The metadata cannot be written as JSON (safetensors).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_model expects an nn.Module, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of plain values, got {type(metadata).__name__}")
    p = Path(path)
    fmt = _file_format(p, file_format)
    meta = to_jsonable(model_metadata(model, **(metadata or {})), strict=fmt == "safetensors")
    if fmt == "safetensors":
        write_safetensors(p, model.state_dict(), meta)
    else:
        save_checkpoint(p, {"metadata": meta, "model": model.state_dict()})
    return meta


def _check_name(what: str, meta: Mapping[str, Any], model_name: str | None) -> str | None:
    """The model name to build: the file's, refusing one that differs from ``model_name``."""
    saved = meta.get("model")
    if model_name is not None and saved and saved != model_name:
        raise CheckpointError(f"{what} holds a {saved!r} model, not {model_name!r}")
    return saved or model_name


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], what: str, name: str | None) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the file."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        kind = "compressed model" if getattr(model, "tnn_report", None) is not None else "model"
        raise CheckpointError(f"{what} does not fit the {kind}{f' {name}' if name else ''}: {first}") from exc


def load_model(
    path: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    model: nn.Module | None = None,
    device: str | torch.device = "cpu",
    file_format: FileFormat | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model file, rebuilding the compressed architecture from its metadata.

    Parameters
    ----------
    path : path-like
        A tnn ``.pt`` checkpoint (final model or training checkpoint), a foreign ``torch.save``
        ``state_dict`` (optionally under ``"state_dict"`` / ``"model"``, ``module.`` prefixes allowed),
        or a ``.safetensors`` file written by :func:`save_model`.
    model_name : str, optional
        Expected architecture: a file whose metadata names another model is refused; needed when the
        file does not name its model (foreign state_dicts) and ``model`` is not given.
    model : nn.Module, optional
        The dense architecture to rebuild on instead of ``get_model(...)``; it is modified in place
        only for a dense (plan-less) file.
    device : str or torch.device
        Where the returned model lives.
    file_format : {"pt", "safetensors"}, optional
        Overrides the choice by file name (``*.safetensors`` or not).

    Returns
    -------
    (model, metadata)
        The model (in eval mode) with the file's weights, and the file's metadata (``{}`` for a
        foreign state_dict).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError (a ValueError)
        Truncated or corrupted file, a file of another model, no model name, or weights / plan that do
        not fit the architecture.
    ValueError
        A foreign state_dict does not fit the model (from :func:`tnn.models.load_pretrained`).
    """
    p = Path(path)
    if _file_format(p, file_format) == "safetensors":
        what = f"safetensors file {str(p)!r}"
        meta = read_safetensors_metadata(p)
        name = _check_name(what, meta, model_name)
        built = rebuild_model(name, meta, model=model, source=what)
        _load_strict(built, read_safetensors_tensors(p, device), what, name)
    else:
        what = f"checkpoint {str(p)!r}"
        ckpt = load_checkpoint(p)
        meta = ckpt["metadata"] if isinstance(ckpt.get("metadata"), dict) else {}
        name = _check_name(what, meta, model_name)
        built = rebuild_model(name, meta, model=model, source=what)
        if meta.get("plan"):
            _load_strict(built, extract_state_dict(ckpt, source=what), what, name)
        else:
            load_pretrained(built, p)
    return built.to(device).eval(), meta
