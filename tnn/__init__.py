"""tnn — Tensorial Neural Networks for PyTorch.

The package is layered, each layer importing only the ones before it::

    tnn.algebra         conv_einsum: contraction, convolution, partial outer product
    tnn.decompositions  CP, Tucker, Tensor-Train, Tensor-Ring (torch-native)
    tnn.formats         the compression formats (svd, cp, tk, tt, tr, rcp, rtk, rtt, rtr)
    tnn.nn              tensorial layers (TensorialConv2d, TensorialLinear, TNNLayer)
    tnn.models          LeNet-5, CIFAR ResNets, ResNet-50 and what the library knows about each
    tnn.data            MNIST, CIFAR-10, ImageNet folders, digits
    tnn.compression     compress(model, format, rate): pretrained CNN -> TNN; model files
    tnn.train           the training loop, sequential training, fine-tuning, evaluation
    tnn.recipes         compress_and_train: the whole pipeline under a named budget
    tnn.interpret       existing designs (depthwise-separable, bottleneck, ...) as TNNs
    tnn.export          ONNX and safetensors
    tnn.experiments     the paper's tables and the convergence study
    tnn.cli             the ``tnn`` command line

Subpackages and the top-level names are imported on first use (``tnn.nn.TensorialConv2d`` works
after ``import tnn``), so ``import tnn`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Subpackages reachable as attributes of ``tnn``.
SUBPACKAGES = ("algebra", "decompositions", "formats", "nn", "models", "data", "compression", "train",
               "recipes", "interpret", "export", "experiments", "cli", "io")

_EXPORTS = {
    "conv_einsum": "tnn.algebra",
    "conv_einsum_path": "tnn.algebra",
    "conv_einsum_expression": "tnn.algebra",
    "FORMATS": "tnn.formats",
    "compress": "tnn.compression",
    "compress_and_train": "tnn.recipes",
}

__all__ = ["__version__", *_EXPORTS, *SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in SUBPACKAGES:
        value: Any = importlib.import_module(f"tnn.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'tnn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
