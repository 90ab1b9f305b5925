"""Compression of pretrained CNNs into tensorial neural networks.

- :func:`compress` — ``compress(model, format="rtt", rate=0.1)`` returns a compressed copy with its
  per-layer report attached as ``model.tnn_report``;
- :class:`CompressionReport` / :class:`LayerReport` — the report as data (``to_dict``) and as a
  printed table (``table()``); ``compress(model, plan=report)`` rebuilds the architecture from it;
- :func:`save_model` / :func:`load_model` — ``.pt`` and ``.safetensors`` model files whose metadata
  rebuilds the compressed architecture (:func:`rebuild_model`); :func:`compressed_metadata` builds it.
"""

from __future__ import annotations

from tnn.compression.core import compress, dense_flops, is_eligible, n_params
from tnn.compression.model_file import (
    compressed_metadata,
    load_model,
    model_metadata,
    rebuild_model,
    save_model,
)
from tnn.compression.report import CompressionReport, LayerReport

__all__ = [
    "CompressionReport",
    "LayerReport",
    "compress",
    "compressed_metadata",
    "dense_flops",
    "is_eligible",
    "load_model",
    "model_metadata",
    "n_params",
    "rebuild_model",
    "save_model",
]
