"""Tensorial layers: ordinary ``nn.Module`` s whose kernels are tensor networks.

- :class:`TensorialConv2d`, :class:`TensorialLinear` — drop-in replacements for ``nn.Conv2d`` /
  ``nn.Linear`` in any format of :data:`tnn.FORMATS`, built with ``from_dense`` from a pretrained layer;
- :class:`TNNLayer` — a learnable layer defined by any conv_einsum string over high-order inputs;
- :func:`optimize_for_inference` — per layer and input shape, the measured faster of factor-by-factor
  evaluation and a cached dense kernel.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TensorialConv2d": "tnn.nn.conv",
    "TensorialLinear": "tnn.nn.linear",
    "TNNLayer": "tnn.nn.tnn_layer",
    "optimize_for_inference": "tnn.nn.inference",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tnn.nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
