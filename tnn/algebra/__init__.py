"""The generalized tensor algebra of Tensorial Neural Networks.

``conv_einsum`` evaluates einsum-like strings with convolution indices (after ``|``), e.g.
``conv_einsum("bshw,tshw->bthw|hw", x, w, padding=1)`` is ``F.conv2d(x, w, padding=1)``.
"""

from .contract import (
    ConvEinsumExpression,
    PathInfo,
    StepInfo,
    conv_einsum,
    conv_einsum_expression,
    conv_einsum_path,
)
from .options import ConvOption, normalize_conv_options
from .spec import ParsedSpec, parse_spec

__all__ = [
    "conv_einsum",
    "conv_einsum_path",
    "conv_einsum_expression",
    "ConvEinsumExpression",
    "PathInfo",
    "StepInfo",
    "ParsedSpec",
    "parse_spec",
    "ConvOption",
    "normalize_conv_options",
]
