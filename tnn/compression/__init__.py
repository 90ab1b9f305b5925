"""Compression of pretrained CNNs into tensorial neural networks.

- :func:`compress` — ``compress(model, format="rtt", rate=0.1)`` returns a compressed copy with its
  per-layer report attached as ``model.tnn_report``;
- :class:`CompressionReport` / :class:`LayerReport` — the report as data (``to_dict``) and as a
  printed table (``table()``); ``compress(model, plan=report)`` rebuilds the architecture from it.
"""

from __future__ import annotations

from tnn.compression.core import compress, dense_flops, is_eligible, n_params
from tnn.compression.report import CompressionReport, LayerReport

__all__ = ["CompressionReport", "LayerReport", "compress", "dense_flops", "is_eligible", "n_params"]
