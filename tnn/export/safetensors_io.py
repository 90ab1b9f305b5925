"""Safetensors save / load of (compressed) models, with the metadata that rebuilds the tensorial layers.

A file written by :func:`save_safetensors` holds

- every entry of the model's ``state_dict`` as a tensor (contiguous, CPU, shared storage undone);
- the safetensors string metadata ``{"tnn": <JSON>}`` where the JSON object carries ``tnn_version``,
  ``model`` (a name of :data:`tnn.models.MODELS`, or ``None``), ``format``, ``rate``, ``ranks``
  (``{layer_name: ranks}``), ``step`` and ``plan`` (``CompressionReport.to_dict()``, or ``None`` for a
  dense model).

These are the safetensors cases of :func:`tnn.compression.save_model` / :func:`tnn.compression.load_model`,
which write and read the file and rebuild the architecture (``get_model(model)`` then
``compress(..., plan=plan)`` with random init, nothing decomposed) before loading the tensors strictly.
Nothing in the file is ever executed: safetensors is a flat tensor container and the metadata is JSON.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from tnn.compression.model_file import load_model, model_metadata, save_model
from tnn.io import read_safetensors_metadata, to_jsonable
from tnn.io.safetensors_file import METADATA_KEY

__all__ = ["METADATA_KEY", "load_safetensors", "read_safetensors_metadata", "safetensors_metadata",
           "save_safetensors"]


def safetensors_metadata(model: nn.Module, /, **extra: Any) -> dict[str, Any]:
    """The metadata :func:`save_safetensors` writes for ``model`` (plain, JSON-safe values).

    :func:`tnn.compression.model_metadata` (same parameters) with NaN / inf floats replaced by ``None``.
    """
    return to_jsonable(model_metadata(model, **extra), strict=True)


def save_safetensors(
    path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``model.state_dict()`` and its rebuild metadata to ``path`` (atomically).

    Parameters
    ----------
    path : path-like
        Destination file (conventionally ``*.safetensors``; written as safetensors whatever its name);
        its directory must exist.
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
    return save_model(path, model, metadata, file_format="safetensors")


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
        The dense architecture to rebuild on (default: ``tnn.models.get_model(metadata["model"])``,
        or ``get_model(expect_model)`` when the file names no model).
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
        or metadata that names no model while neither ``model`` nor ``expect_model`` is given.
    """
    return load_model(path, model_name=expect_model, model=model, device=device, file_format="safetensors")
