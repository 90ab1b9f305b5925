"""Existing network designs interpreted as TNN expressions (issue 6 §3).

Each design module gives the ``conv_einsum`` string, ``<design>_as_conv_einsum(block)`` returning a
:class:`TNNExpression` (unpacks as ``spec, operands, options``; plus the affine offset of biases and
folded BatchNorms) and a pair of converters to the corresponding tensorial layer and back:

- ``Conv2d`` / ``Linear``: the dense kernel; ``conv2d_to_tnn`` / ``tnn_to_conv2d``, ``linear_to_tnn`` /
  ``tnn_to_linear`` (a :class:`~tnn.nn.TNNLayer`);
- group convolution (ResNeXt): a partial outer product over the group index; ``group_conv_to_tnn`` /
  ``tnn_to_group_conv``;
- depthwise separable (Xception, MobileNet): ``cp``; ``depthwise_separable_to_tnn`` /
  ``tnn_to_depthwise_separable``;
- the 1x1-kxk-1x1 bottleneck: ``tk`` (Tucker-2); ``bottleneck_to_tnn`` / ``tnn_to_bottleneck``;
- ResNeXt's bottleneck (grouped kxk): block-term Tucker; ``resnext_to_tnn`` / ``tnn_to_resnext``;
- ``k x 1`` then ``1 x k`` (Inception): ``svd``; ``spatially_separable_to_tnn`` /
  ``tnn_to_spatially_separable``;
- interleaved group convolutions: two kernels over folded channels; ``igc_to_tnn`` / ``tnn_to_igc``.

:func:`as_conv_einsum` recognises the design of a block automatically. Nonlinearities break exact
equality and are outside the interpretation (``ValueError``). See ``docs/interpretations.md``.
"""

from tnn.interpret.bottleneck import (
    bottleneck_as_conv_einsum,
    bottleneck_spec,
    bottleneck_to_tnn,
    tnn_to_bottleneck,
)
from tnn.interpret.dense import (
    conv2d_as_conv_einsum,
    conv2d_spec,
    conv2d_to_tnn,
    linear_as_conv_einsum,
    linear_spec,
    linear_to_tnn,
    tnn_to_conv2d,
    tnn_to_linear,
)
from tnn.interpret.expression import TNNExpression
from tnn.interpret.group import (
    group_conv_as_conv_einsum,
    group_conv_spec,
    group_conv_to_tnn,
    tnn_to_group_conv,
)
from tnn.interpret.igc import igc_as_conv_einsum, igc_block, igc_spec, igc_to_tnn, tnn_to_igc
from tnn.interpret.registry import DESIGNS, as_conv_einsum
from tnn.interpret.resnext import resnext_as_conv_einsum, resnext_spec, resnext_to_tnn, tnn_to_resnext
from tnn.interpret.separable import (
    depthwise_separable_as_conv_einsum,
    depthwise_separable_spec,
    depthwise_separable_to_tnn,
    tnn_to_depthwise_separable,
)
from tnn.interpret.spatial import (
    spatially_separable_as_conv_einsum,
    spatially_separable_spec,
    spatially_separable_to_tnn,
    tnn_to_spatially_separable,
)
from tnn.interpret.stages import parse_block

__all__ = [
    "DESIGNS",
    "TNNExpression",
    "as_conv_einsum",
    "parse_block",
    "conv2d_spec",
    "conv2d_as_conv_einsum",
    "conv2d_to_tnn",
    "tnn_to_conv2d",
    "linear_spec",
    "linear_as_conv_einsum",
    "linear_to_tnn",
    "tnn_to_linear",
    "group_conv_spec",
    "group_conv_as_conv_einsum",
    "group_conv_to_tnn",
    "tnn_to_group_conv",
    "depthwise_separable_spec",
    "depthwise_separable_as_conv_einsum",
    "depthwise_separable_to_tnn",
    "tnn_to_depthwise_separable",
    "bottleneck_spec",
    "bottleneck_as_conv_einsum",
    "bottleneck_to_tnn",
    "tnn_to_bottleneck",
    "spatially_separable_spec",
    "spatially_separable_as_conv_einsum",
    "spatially_separable_to_tnn",
    "tnn_to_spatially_separable",
    "resnext_spec",
    "resnext_as_conv_einsum",
    "resnext_to_tnn",
    "tnn_to_resnext",
    "igc_block",
    "igc_spec",
    "igc_as_conv_einsum",
    "igc_to_tnn",
    "tnn_to_igc",
]
