"""Checkpoint and file I/O: atomic writes and versioned checkpoints with metadata.

- :func:`atomic_write` — write a file through a temporary file in the same directory, ``fsync`` and
  ``os.replace``, so that readers see either the old file or the complete new one, never a partial one;
- :func:`save_checkpoint` / :func:`load_checkpoint` — ``torch.save`` / ``torch.load(weights_only=True)``
  of a dict carrying a ``metadata`` entry (tnn version, model name, format, rate, ranks, step), with
  one-line errors for missing, truncated or corrupted files;
- :func:`write_safetensors` / :func:`read_safetensors_metadata` / :func:`read_safetensors_tensors` —
  the safetensors container (tensors plus one JSON metadata object), nothing executed when reading;
- :func:`claim` / :func:`release` — claim files, so that processes sharing a folder split its work;
- :func:`to_jsonable` — tensors, NumPy values, tuples, paths and nested dicts as plain JSON data.
"""

from __future__ import annotations

from tnn.io.atomic import atomic_open, atomic_write, atomic_write_text
from tnn.io.checkpoint import CheckpointError, checkpoint_metadata, load_checkpoint, save_checkpoint
from tnn.io.claims import claim, claim_holder, release
from tnn.io.extras import MissingExtraError, require
from tnn.io.jsonable import to_jsonable
from tnn.io.safetensors_file import read_safetensors_metadata, read_safetensors_tensors, write_safetensors

__all__ = [
    "CheckpointError",
    "MissingExtraError",
    "atomic_open",
    "atomic_write",
    "atomic_write_text",
    "checkpoint_metadata",
    "claim",
    "claim_holder",
    "load_checkpoint",
    "read_safetensors_metadata",
    "read_safetensors_tensors",
    "release",
    "require",
    "save_checkpoint",
    "to_jsonable",
    "write_safetensors",
]
