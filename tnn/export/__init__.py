"""Deployment: ONNX export and safetensors files of (compressed) models.

- :func:`export_onnx` — ``torch.onnx.export`` (dynamo) to a ``.onnx`` file, checked in onnxruntime
  against PyTorch (max abs difference <= 1e-4 by default);
- :func:`save_safetensors` / :func:`load_safetensors` — weights as safetensors plus JSON metadata
  (tnn version, model, format, rate, ranks, compression plan) from which the tensorial layers are
  rebuilt; nothing is unpickled or executed when loading.

``onnx``, ``onnxscript``, ``onnxruntime`` and ``safetensors`` come with the ``export`` extra and are
imported only when these functions run.
"""

from __future__ import annotations

from tnn.export.onnx_export import OnnxExport, export_onnx, onnx_max_abs_diff, require_onnx, run_onnx
from tnn.export.safetensors_io import (
    METADATA_KEY,
    load_safetensors,
    read_safetensors_metadata,
    safetensors_metadata,
    save_safetensors,
)

__all__ = [
    "METADATA_KEY",
    "OnnxExport",
    "export_onnx",
    "load_safetensors",
    "onnx_max_abs_diff",
    "read_safetensors_metadata",
    "require_onnx",
    "run_onnx",
    "safetensors_metadata",
    "save_safetensors",
]
