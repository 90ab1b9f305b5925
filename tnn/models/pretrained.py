"""Loading checkpoints into the models of :mod:`tnn.models`, safely (``weights_only=True``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from tnn.io.checkpoint import load_weights_only, verify_zip_integrity

_PREFIXES = ("module.", "_orig_mod.")


def _read(path: Path) -> object:
    if path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is a directory, not a file; give the file in it")
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist or is not a file")

    verify_zip_integrity(path)  # torch.load does not check CRCs: flipped bytes would load silently
    try:
        return load_weights_only(path)
    except Exception as err:  # truncated zip, bad pickle, unsafe globals, ...
        raise ValueError(
            f"checkpoint {str(path)!r} cannot be read "
            "(truncated, corrupted or not a weights-only torch file): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err


def extract_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint object with ``module.`` (DataParallel) prefixes stripped.

    Accepts a raw state_dict or a dict holding one under ``"state_dict"`` or ``"model"``.
    """
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source} holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{source} is not a state_dict: entry {key!r} is a {type(value).__name__}")
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_pretrained(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a checkpoint into ``model`` (in place) after checking that it fits exactly.

    Parameters
    ----------
    model : nn.Module
        The target model, e.g. ``get_model("resnet32")``.
    path : str or PathLike
        A file written by ``torch.save`` (zip or legacy format) holding a state_dict, or a dict with the
        state_dict under ``"state_dict"`` or ``"model"``. It is read with
        ``torch.load(path, map_location="cpu", weights_only=True)``; ``module.`` prefixes are stripped.

    Returns
    -------
    nn.Module
        ``model``, with the checkpoint's parameters and buffers.

    Raises
    ------
    ValueError
        If the file is missing, truncated or corrupted (the message names the file), or if its keys or
        shapes differ from the model's ("checkpoint does not fit model resnet32: missing [...],
        unexpected [...], shape mismatch [...]"). ``num_batches_tracked`` buffers may be absent.
    """
    path = Path(path)
    state = extract_state_dict(_read(path), source=f"checkpoint {str(path)!r}")
    own = model.state_dict()
    name = getattr(model, "arch", type(model).__name__)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected {_short(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch {_short(mismatched)}")
        raise ValueError(f"checkpoint {str(path)!r} does not fit model {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)
    return model


def _short(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"
