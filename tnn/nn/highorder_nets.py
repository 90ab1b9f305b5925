"""Networks that keep the structure of a high-order input, built from :class:`TNNLayer` s.

A *tensorial dense layer* maps an input tensor ``X[b, i_0, ..., i_{N-1}]`` to ``Y[b, o_0, ..., o_{N-1}]``
with a weight that is a sum of ``R`` Kronecker products of small matrices (a CP decomposition of the
dense weight over the ``(i_n, o_n)`` mode pairs, i.e. the ``rcp`` format of a linear layer, applied to
the input without flattening it)::

    Y[b, o_0..o_{N-1}] = sum_{i, z} X[b, i_0..i_{N-1}] U_0[i_0, o_0, z] ... U_{N-1}[i_{N-1}, o_{N-1}, z]

    spec (N = 3):  "b ijk, i p z, j q z, k r z -> b pqr"

With one factor per mode it has ``R * sum_n I_n O_n`` weights instead of ``prod_n I_n O_n``
(``mode_groups`` lets consecutive modes share a factor). :class:`HighOrderMLP` stacks
such layers (ReLU in between) and ends with a dense classifier over the last hidden tensor; :func:`flat_mlp`
is the flattened baseline of the same depth. Examples: MNIST images seen as ``(4, 7, 4, 7)`` tensors
(row ``= 7 i + j``, column ``= 7 k + l``) and CIFAR-10 images as ``(H, W, C) = (32, 32, 3)`` tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tnn.nn.tnn_layer import TNNLayer

__all__ = ["tensorial_dense_spec", "tensorial_dense", "HighOrderMLP", "flat_mlp"]

_IN, _OUT, _RANK, _CLASS = "ijklmnae", "pqrstuvw", "z", "c"


def _shape(value: Sequence[int], name: str) -> tuple[int, ...]:
    shape = tuple(value)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {value!r}")
    if len(shape) > len(_IN):
        raise ValueError(f"{name} has order {len(shape)}; at most {len(_IN)} modes are supported")
    return shape


def _mode_groups(order: int, mode_groups: Sequence[int] | None) -> tuple[int, ...]:
    if mode_groups is None:
        return (1,) * order
    groups = tuple(mode_groups)
    if any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in groups) or sum(groups) != order:
        raise ValueError(
            f"mode_groups must be positive ints summing to the order {order}, got {mode_groups!r}"
        )
    return groups


def tensorial_dense_spec(order: int, mode_groups: Sequence[int] | None = None) -> str:
    """The ``conv_einsum`` string of an order-``order`` tensorial dense layer (see the module docstring).

    ``mode_groups`` splits the modes into consecutive groups that share one factor (default: one factor
    per mode); e.g. ``(2, 2)`` on order 4 gives ``"bijkl,ijpqz,klrsz->bpqrs"`` (a 28 x 28 image folded
    as ``(4, 7, 4, 7)``: one factor for the rows, one for the columns).
    """
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= len(_IN):
        raise ValueError(f"order must be an int in 1..{len(_IN)}, got {order!r}")
    ins, outs = _IN[:order], _OUT[:order]
    factors, start = [], 0
    for size in _mode_groups(order, mode_groups):
        factors.append(ins[start : start + size] + outs[start : start + size] + _RANK)
        start += size
    return f"b{ins},{','.join(factors)}->b{outs}"


def tensorial_dense(
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    rank: int,
    mode_groups: Sequence[int] | None = None,
    **kwargs: object,
) -> TNNLayer:
    """A :class:`TNNLayer` mapping ``(B, *in_shape)`` to ``(B, *out_shape)``: ``rank`` Kronecker terms.

    ``kwargs`` go to :class:`TNNLayer` (``bias``, ``activation``, ``gain``, ``dtype`` …). The bias spans
    the whole output tensor.
    """
    in_shape, out_shape = _shape(in_shape, "in_shape"), _shape(out_shape, "out_shape")
    if len(in_shape) != len(out_shape):
        raise ValueError(f"in_shape {in_shape} and out_shape {out_shape} must have the same order")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    n = len(in_shape)
    sizes = dict(zip(_IN, in_shape, strict=False)) | dict(zip(_OUT, out_shape, strict=False)) | {_RANK: rank}
    return TNNLayer(tensorial_dense_spec(n, mode_groups), sizes, **kwargs)  # type: ignore[arg-type]


class HighOrderMLP(nn.Module):
    """``depth`` tensorial dense layers with ReLU, then a dense classifier over the last hidden tensor.

    Parameters
    ----------
    input_shape : sequence of int
        Per-sample shape of the high-order input, e.g. ``(4, 7, 4, 7)``.
    hidden_shape : sequence of int
        Per-sample shape of every hidden tensor (same order as the input).
    num_classes : int
    depth : int
        Number of hidden (tensorial) layers; the classifier makes ``depth + 1`` layers in all.
    rank : int
        Number of Kronecker terms of each tensorial layer.
    mode_groups : sequence of int, optional
        Consecutive modes sharing one factor (see :func:`tensorial_dense_spec`); default one per mode.
    permute : sequence of int, optional
        Applied to the input before it is reshaped to ``(B, *input_shape)``; e.g. ``(0, 2, 3, 1)`` turns
        CIFAR's ``(B, C, H, W)`` images into ``(B, H, W, C)`` tensors.

    Shapes: input ``(B, ...)`` with ``prod(...) = prod(input_shape)``; output ``(B, num_classes)`` logits.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden_shape: Sequence[int],
        num_classes: int,
        depth: int = 2,
        rank: int = 4,
        permute: Sequence[int] | None = None,
        mode_groups: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = _shape(input_shape, "input_shape")
        self.hidden_shape = _shape(hidden_shape, "hidden_shape")
        if len(self.hidden_shape) != len(self.input_shape):
            raise ValueError(
                f"hidden_shape {self.hidden_shape} must have the order of input_shape {self.input_shape}"
            )
        for name, value in (("num_classes", num_classes), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.permute = tuple(permute) if permute is not None else None
        layers: list[nn.Module] = []
        shape = self.input_shape
        for _ in range(depth):
            layers.append(
                tensorial_dense(
                    shape, self.hidden_shape, rank, mode_groups, activation=torch.relu, gain=math.sqrt(2)
                )
            )
            shape = self.hidden_shape
        self.features = nn.Sequential(*layers)
        n = len(shape)
        sizes = dict(zip(_OUT, shape, strict=False)) | {_CLASS: num_classes}
        self.classifier = TNNLayer(f"b{_OUT[:n]},{_OUT[:n]}{_CLASS}->b{_CLASS}", sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.permute is not None:
            x = x.permute(*self.permute)
        x = x.reshape(x.shape[0], *self.input_shape)
        return self.classifier(self.features(x))


def flat_mlp(in_features: int, width: int, num_classes: int, depth: int = 2) -> nn.Sequential:
    """The flattened baseline: ``Flatten``, ``depth`` x (``Linear(width)``, ReLU), ``Linear(num_classes)``."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_features
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
