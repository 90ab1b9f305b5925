"""Rank allocation under one parameter budget.

The paper gives every layer the same rate (``allocation="uniform"``). ``allocation="error"`` instead
spends one budget — at most ``rate`` of the compressed layers' parameters in all — where it buys the most:
each layer is decomposed at every rate of a grid (the target rate included, so the uniform choice is
always a candidate), and the per-layer rates are chosen to minimise the sum over layers of the squared
relative reconstruction error ``(||W_hat - W|| / ||W||)^2``, a data-free proxy for how far each layer
moves the network. Small layers, whose few parameters buy a large error reduction, end up above the
target rate and the large ones below it.

The choice is a multiple-choice knapsack, solved greedily on each layer's lower convex hull of
(parameters, error) points: the increments with the largest error reduction per added parameter are
taken first while they fit the budget.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ALLOCATIONS", "MAX_RATIO", "RATE_GRID", "CurvePoint", "allocate_rates", "error_curve"]

#: Values of ``compress(..., allocation=...)``.
ALLOCATIONS: tuple[str, ...] = ("uniform", "error")

#: No layer's rate leaves ``[rate / MAX_RATIO, rate * MAX_RATIO]``: at these rates every layer's error is
#: large (0.7-0.95 relative) and nearly flat, so the error alone would cut the largest layers to rank 1
#: and leave them no capacity for the training that follows.
MAX_RATIO = 4.0

#: Per-layer rates tried by the ``"error"`` allocation (the target rate is added to them).
RATE_GRID: tuple[float, ...] = (0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13,
                                0.16, 0.2, 0.25, 0.32, 0.4, 0.5)


@dataclass(frozen=True)
class CurvePoint:
    """One feasible rate of a layer: its target ``rate``, the ``params`` it keeps and the squared
    relative reconstruction ``error`` of the decomposition."""

    rate: float
    params: int
    error: float


def error_curve(
    build: Callable[[float], nn.Module | None], weight: torch.Tensor, rates: Sequence[float]
) -> list[CurvePoint]:
    """The feasible points of one layer.

    Parameters
    ----------
    build : callable
        ``build(rate)`` returns the decomposition-initialised tensorial layer at ``rate`` (with
        ``dense_weight()``), or ``None`` when the rate is infeasible for this layer.
    weight : torch.Tensor
        The pretrained kernel ``(T, S/g, kh, kw)`` or weight ``(T, S)``.
    rates : sequence of float

    Returns
    -------
    list of CurvePoint
        Sorted by rate; infeasible rates left out.
    """
    ref = weight.detach().to(torch.float64)
    norm = float(ref.norm()) or 1.0
    points = []
    for rate in sorted(set(rates)):
        layer = build(rate)
        if layer is None:
            continue
        with torch.no_grad():
            approx = layer.dense_weight().to(torch.float64)  # type: ignore[operator]
        err = float((approx - ref).norm()) / norm
        params = sum(p.numel() for p in layer.parameters())
        points.append(CurvePoint(rate, params, err * err))
    return points


def _hull(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """The lower convex hull of (params, error), error strictly decreasing: the increments along it have
    decreasing error reduction per parameter, which the greedy choice needs."""
    hull: list[CurvePoint] = []
    for p in sorted(points, key=lambda q: (q.params, q.error)):
        if hull and p.error >= hull[-1].error:
            continue
        while len(hull) >= 2 and _gain(hull[-2], hull[-1]) <= _gain(hull[-1], p):
            hull.pop()
        hull.append(p)
    return hull


def _gain(a: CurvePoint, b: CurvePoint) -> float:
    return (a.error - b.error) / max(b.params - a.params, 1)


def allocate_rates(
    curves: Mapping[str, Sequence[CurvePoint]], budget: int
) -> dict[str, CurvePoint]:
    """The point of each layer that minimises the summed error with at most ``budget`` parameters.

    Parameters
    ----------
    curves : mapping of layer name -> feasible points (:func:`error_curve`)
        Layers without a feasible point are left out of the result.
    budget : int
        Parameters the chosen points may keep in all.

    Returns
    -------
    dict of layer name -> CurvePoint

    Raises
    ------
    ValueError
        The smallest feasible point of every layer together exceeds ``budget``.
    """
    hulls = {name: _hull(pts) for name, pts in curves.items() if pts}
    chosen = {name: 0 for name in hulls}
    spent = sum(h[0].params for h in hulls.values())
    if spent > budget:
        raise ValueError(f"the smallest feasible ranks of the {len(hulls)} layers keep {spent:,} parameters, "
                         f"more than the budget of {budget:,}: choose a higher rate")
    heap = [(-_gain(h[0], h[1]), name) for name, h in hulls.items() if len(h) > 1]
    heapq.heapify(heap)
    while heap:
        _, name = heapq.heappop(heap)
        hull, i = hulls[name], chosen[name]
        extra = hull[i + 1].params - hull[i].params
        if spent + extra > budget:
            continue  # greedy: this layer stops here, the others may still fit
        spent += extra
        chosen[name] = i + 1
        if i + 2 < len(hull):
            heapq.heappush(heap, (-_gain(hull[i + 1], hull[i + 2]), name))
    return {name: hulls[name][i] for name, i in chosen.items()}
