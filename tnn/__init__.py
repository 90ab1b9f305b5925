"""tnn — Tensorial Neural Networks for PyTorch.

The package is layered, each layer importing only the ones before it::

    tnn.algebra         conv_einsum: contraction, convolution, partial outer product
    tnn.decompositions  CP, Tucker, Tensor-Train, Tensor-Ring (torch-native)
    tnn.formats         the compression formats (svd, cp, tk, tt, tr, rcp, rtk, rtt, rtr)
    tnn.nn              tensorial layers (TensorialConv2d, TensorialLinear, TNNLayer)
    tnn.compression     compress(model, format, rate): pretrained CNN -> TNN
    tnn.train           sequential (data-reconstruction) and end-to-end training
    tnn.cli             the ``tnn`` command line

Top-level names are imported lazily so that ``import tnn`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "conv_einsum": "tnn.algebra",
    "conv_einsum_path": "tnn.algebra",
    "conv_einsum_expression": "tnn.algebra",
    "FORMATS": "tnn.formats",
    "compress": "tnn.compression",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
