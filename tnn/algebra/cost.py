"""The planning problem of a ``conv_einsum`` call: sizes, intermediates and FLOP counts.

An intermediate is identified by the set of original operands it combines (a bit mask): its indices
and sizes do not depend on the order in which those operands were combined. For a convolution index
``c`` with signal size ``n``, padding ``(pl, pr)``, dilation ``d``, stride ``s`` and filters of sizes
``k_1 .. k_m``:

* an intermediate holding the signal and the filters ``F`` has size ``n + pl + pr - d * sum_{f in F}
  (k_f - 1)`` along ``c``, then ``floor((. - 1) / s) + 1`` once every filter is in (stride is applied by
  the step that brings in the last filter);
* an intermediate holding only filters ``F`` has size ``1 + sum_{f in F} (k_f - 1)`` (their full
  convolution).

FLOPs of a pairwise step follow opt_einsum's convention: the product of the sizes of every index in
the step, doubled when something is summed. A convolution index shared by both operands counts
``output size x kernel size`` (the kernel is the filter operand; for a filter-filter step, the smaller
one).

This module is the project's one cost model: the path planner's objective (:data:`MEMORY_WEIGHT`), the
per-element cost a tensorial layer charges when it chooses between evaluating its factors and
reconstructing its kernel (:data:`ELEMENT_COST`), and the FLOPs of a dense convolution or linear layer
(:func:`dense_conv_flops`, :func:`dense_linear_flops`, the step of :data:`DENSE_CONV_SPEC` /
:data:`DENSE_LINEAR_SPEC` in the model above) that compression reports compare tensorial layers with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .options import ConvOption, normalize_conv_options, resolve_padding
from .spec import ParsedSpec, parse_spec

__all__ = [
    "ConvIndex",
    "Node",
    "Problem",
    "MEMORY_WEIGHT",
    "ELEMENT_COST",
    "STEP_COST",
    "DENSE_CONV_SPEC",
    "DENSE_LINEAR_SPEC",
    "dense_conv_flops",
    "dense_linear_flops",
]

#: FLOPs charged per element read or written by a step in the planner's objective
#: (``flops + MEMORY_WEIGHT * (|A| + |B| + |result|)``): a CPU does tens of FLOPs in the time it moves
#: one element, so a path of cheap but huge or skinny steps is not preferred to one efficient step.
#: 0 makes the optimizers minimise FLOPs alone.
MEMORY_WEIGHT = 32

#: Cost, in FLOPs, charged per element of every step result (intermediates and output) when a tensorial
#: layer chooses between its two evaluations (factor by factor, or kernel reconstruction then one dense
#: op; see :mod:`tnn.nn`). FLOPs alone favour the factor-by-factor evaluation far too often: its steps
#: are memory-bound (few channels, permutes and copies between steps) while one dense convolution is
#: compute-bound. The value is a rough CPU roofline (one float32 element written, permuted and read
#: again costs about as long as 100-300 FLOPs of a well-blocked convolution); see docs/benchmarks.md.
#: It is larger than :data:`MEMORY_WEIGHT` because it compares whole evaluations, where the planner's
#: weight only breaks ties between paths of one contraction.
ELEMENT_COST = 256.0
#: Cost, in FLOPs, charged per torch call (pairwise step) when a layer chooses its evaluation without
#: autograd: a call costs tens of microseconds of dispatch and Python whatever its size (a few MFLOPs
#: of a dense convolution on one CPU core), which decides small inputs (batch 1) and is noise at
#: batch 128.
STEP_COST = 3.0e6

#: ``conv_einsum`` string of a dense grouped 2-D convolution: input ``(B, g, S/g, H, W)``, kernel
#: ``(g, T/g, S/g, kh, kw)``, output ``(B, g, T/g, H', W')``.
DENSE_CONV_SPEC = "bgshw,gtshw->bgthw|hw"
#: ``conv_einsum`` string of a dense linear layer: input ``(B, S)``, weight ``(T, S)``, output ``(B, T)``.
DENSE_LINEAR_SPEC = "bs,ts->bt"


@dataclass(frozen=True)
class ConvIndex:
    """Everything the planner and the evaluator need to know about one convolution index."""

    name: str
    signal: int  # operand position of the signal
    filters: tuple[int, ...]  # operand positions of the filters
    n: int  # signal size (unpadded)
    kernels: tuple[tuple[int, int], ...]  # (operand, size) of each filter
    kernel: int  # K, size of the full convolution of all filters
    pad: tuple[int, int]
    stride: int
    dilation: int
    circular: bool
    out: int  # output size

    def kernel_of(self, op: int) -> int:
        for p, k in self.kernels:
            if p == op:
                return k
        raise KeyError(op)


@dataclass(frozen=True)
class Node:
    """An intermediate: the operands it combines, its indices and their sizes."""

    mask: int
    indices: frozenset[str]
    sizes: dict[str, int] = field(compare=False, hash=False)

    @property
    def numel(self) -> int:
        total = 1
        for i in self.indices:
            total *= self.sizes[i]
        return total


def _shape_error(spec: ParsedSpec, message: str) -> ValueError:
    return ValueError(f"{message} (spec {str(spec)!r})")


class Problem:
    """Sizes and symbolic intermediates of one ``conv_einsum`` call.

    Parameters
    ----------
    spec : ParsedSpec
    shapes : tuple of tuple of int
        One shape per operand.
    options : tuple of ConvOption
        One per convolution index, in ``spec.conv`` order.

    Raises
    ------
    ValueError
        Wrong number of operands, wrong number of dimensions, inconsistent sizes of a
        non-convolution index, an empty filter, or a non-positive convolution output size.
    """

    def __init__(
        self, spec: ParsedSpec, shapes: tuple[tuple[int, ...], ...], options: tuple[ConvOption, ...]
    ):
        self.spec = spec
        self.shapes = shapes
        n_ops = spec.num_operands
        if len(shapes) != n_ops:
            raise _shape_error(
                spec,
                f"the spec has {n_ops} input term(s) {list(spec.inputs)} but {len(shapes)} operand(s) "
                "were given",
            )
        conv_set = set(spec.conv)
        sizes: dict[str, int] = {}
        where: dict[str, int] = {}
        for pos, (term, shape) in enumerate(zip(spec.inputs, shapes, strict=False)):
            if len(shape) != len(term):
                raise _shape_error(
                    spec,
                    f"operand {pos} has {len(shape)} dimension(s) {tuple(shape)} but its term {term!r} "
                    f"has {len(term)} index(es)",
                )
            for ch, size in zip(term, shape, strict=False):
                if ch in conv_set:
                    continue
                if ch in sizes and sizes[ch] != size:
                    raise _shape_error(
                        spec,
                        f"index {ch!r} has size {sizes[ch]} in operand {where[ch]} but size {size} "
                        f"in operand {pos}",
                    )
                sizes.setdefault(ch, size)
                where.setdefault(ch, pos)
        self.sizes = sizes
        self.conv: dict[str, ConvIndex] = {}
        for c, opt in zip(spec.conv, options, strict=False):
            sig = spec.signal_of(c)
            filters = spec.filters_of(c)
            n = shapes[sig][spec.inputs[sig].index(c)]
            kernels = tuple((f, shapes[f][spec.inputs[f].index(c)]) for f in filters)
            for f, k in kernels:
                if k < 1:
                    raise _shape_error(
                        spec, f"convolution index {c!r} has an empty filter (size {k}) in operand {f}"
                    )
            kernel = 1 + sum(k - 1 for _, k in kernels)
            pad = resolve_padding(opt, kernel)
            span = n + pad[0] + pad[1] - opt.dilation * (kernel - 1)
            if span < 1:
                raise _shape_error(
                    spec,
                    f"convolution index {c!r} has no valid output: signal size {n} (operand {sig}), padding "
                    f"{pad}, combined filter size {kernel} (filter sizes {[k for _, k in kernels]}), "
                    f"dilation {opt.dilation}",
                )
            if opt.circular and n == 0 and pad != (0, 0):
                raise _shape_error(spec, f"convolution index {c!r}: cannot pad an empty signal circularly")
            out = (span - 1) // opt.stride + 1
            self.conv[c] = ConvIndex(
                c, sig, filters, n, kernels, kernel, pad, opt.stride, opt.dilation, opt.circular, out
            )
        out_set = set(spec.output)
        reduced = []
        for pos, term in enumerate(spec.inputs):
            others = set("".join(t for p, t in enumerate(spec.inputs) if p != pos))
            keep = []
            for ch in term:
                if ch not in keep and (ch in out_set or ch in others):
                    keep.append(ch)
            reduced.append("".join(keep))
        #: per operand, its distinct indices that are needed beyond it (order of first occurrence)
        self.terms: tuple[str, ...] = tuple(reduced)
        self._term_sets = tuple(frozenset(t) for t in reduced)
        self._out_set = frozenset(out_set)
        self.full_mask = (1 << n_ops) - 1
        self._nodes: dict[int, Node] = {}
        self._steps: dict[tuple[int, int], int] = {}

    @property
    def num_operands(self) -> int:
        return self.spec.num_operands

    @property
    def is_pure(self) -> bool:
        """True when the spec has no convolution index."""
        return not self.conv

    def node(self, mask: int) -> Node:
        """The intermediate combining the operands in ``mask``."""
        found = self._nodes.get(mask)
        if found is not None:
            return found
        raw: set[str] = set()
        outside: set[str] = set(self._out_set)
        for pos, ts in enumerate(self._term_sets):
            if mask >> pos & 1:
                raw |= ts
            else:
                outside |= ts
        indices = frozenset(raw & outside)
        sizes = {}
        for i in indices:
            ci = self.conv.get(i)
            if ci is None:
                sizes[i] = self.sizes[i]
                continue
            inside = [k for f, k in ci.kernels if mask >> f & 1]
            if mask >> ci.signal & 1:
                length = ci.n + ci.pad[0] + ci.pad[1] - ci.dilation * sum(k - 1 for k in inside)
                if len(inside) == len(ci.kernels):
                    length = (length - 1) // ci.stride + 1
            else:
                length = 1 + sum(k - 1 for k in inside)
            sizes[i] = length
        node = Node(mask, indices, sizes)
        self._nodes[mask] = node
        return node

    def step_cost(self, a: int, b: int, memory_weight: float | None = None) -> float:
        """Planner objective of combining ``a`` and ``b``: FLOPs plus weighted memory traffic."""
        weight = MEMORY_WEIGHT if memory_weight is None else memory_weight
        traffic = self.node(a).numel + self.node(b).numel + self.node(a | b).numel
        return self.step_flops(a, b) + weight * traffic

    def step_flops(self, a: int, b: int) -> int:
        """FLOPs of combining the intermediates ``a`` and ``b`` (bit masks, disjoint)."""
        key = (a, b) if a < b else (b, a)
        found = self._steps.get(key)
        if found is not None:
            return found
        na, nb, nr = self.node(a), self.node(b), self.node(a | b)
        flops = 1
        inner = False
        for i in na.indices | nb.indices:
            ci = self.conv.get(i)
            if ci is not None and i in na.indices and i in nb.indices:
                inner = True
                if a >> ci.signal & 1:
                    kernel = nb.sizes[i]
                elif b >> ci.signal & 1:
                    kernel = na.sizes[i]
                else:
                    kernel = min(na.sizes[i], nb.sizes[i])
                flops *= nr.sizes[i] * kernel
            else:
                flops *= na.sizes[i] if i in na.indices else nb.sizes[i]
                if i not in nr.indices:
                    inner = True
        if inner:
            flops *= 2
        self._steps[key] = flops
        return flops


def _single_step_flops(spec: str, shapes: tuple[tuple[int, ...], ...], **options: Any) -> int:
    """FLOPs of a two-operand ``conv_einsum`` spec: its one pairwise step, in this module's model."""
    parsed = parse_spec(spec)
    conv_options = normalize_conv_options(parsed.conv, **options)
    return Problem(parsed, shapes, conv_options).step_flops(1, 2)


def dense_conv_flops(
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int],
    input_size: Sequence[int],
    *,
    batch: int = 1,
    groups: int = 1,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
) -> int:
    """FLOPs of a dense (grouped) 2-D convolution: the step :data:`DENSE_CONV_SPEC` (bias excluded).

    That is ``2 x B x T x (S / g) x kh x kw x H' x W'`` (two FLOPs per multiply-accumulate, opt_einsum's
    convention), the same model in which :meth:`tnn.nn.TensorialConv2d.flops` counts a tensorial layer,
    so dense and tensorial figures compare.

    Parameters
    ----------
    in_channels, out_channels : int
        ``S`` and ``T``, both divisible by ``groups``.
    kernel_size : sequence of int
        ``(kh, kw)``.
    input_size : sequence of int
        ``(H, W)`` of the input, before padding.
    batch : int, optional
        Number of samples (default 1).
    groups : int, optional
        PyTorch's ``groups`` (default 1).
    stride, dilation : int, pair of int or dict, optional
        As for :func:`tnn.algebra.conv_einsum` (``h`` then ``w``).
    padding : int, pair of int, str or dict, optional
        As for :func:`tnn.algebra.conv_einsum`: one value, one per spatial index, or ``"valid"`` /
        ``"same"`` (PyTorch's meaning, the extra element on the right).

    Returns
    -------
    int
        FLOPs of the ``batch`` samples together.

    Raises
    ------
    ValueError
        Invalid options, or no valid output position.
    """
    g = groups
    kh, kw = kernel_size
    shapes = (
        (batch, g, in_channels // g, *input_size),
        (g, out_channels // g, in_channels // g, kh, kw),
    )
    return _single_step_flops(DENSE_CONV_SPEC, shapes, padding=padding, stride=stride, dilation=dilation)


def dense_linear_flops(in_features: int, out_features: int, *, batch: int = 1) -> int:
    """FLOPs of a dense linear layer: the step :data:`DENSE_LINEAR_SPEC` (bias excluded).

    That is ``2 x B x S x T``, in the model of :func:`dense_conv_flops`.

    Parameters
    ----------
    in_features, out_features : int
        ``S`` and ``T``.
    batch : int, optional
        Number of input rows (default 1).

    Returns
    -------
    int
        FLOPs of the ``batch`` rows together.
    """
    shapes = ((batch, in_features), (out_features, in_features))
    return _single_step_flops(DENSE_LINEAR_SPEC, shapes)
