"""Path optimizers for ``conv_einsum``.

A path is a list of pairs in opt_einsum's *linear* format: each pair names two positions in the
current operand list; both are removed and their result is appended at the end.

Optimizers (``optimize=``):

* ``"optimal"`` -- exhaustive dynamic programming over subsets of operands (exact minimum of the
  objective of :mod:`tnn.algebra.cost`, FLOPs plus ``MEMORY_WEIGHT`` x elements moved, outer products
  included) for up to ``OPTIMAL_LIMIT`` operands, greedy above that. The FLOP-only optimum is a
  candidate too; for pure contractions with many operands opt_einsum's ``"dp"`` is consulted.
* ``"greedy"`` -- repeatedly the cheapest pairwise step, preferring pairs that share an index; pure
  contractions use opt_einsum's ``"greedy"``.
* ``"naive"`` -- left to right: ``((x0 x1) x2) x3 ...``.
* ``"time"`` -- like ``"optimal"`` but without the bound below: the minimum of the FLOPs + memory
  objective even with more FLOPs than left to right (e.g. reconstructing a small kernel first, then
  one efficient convolution, instead of a chain of skinny steps with huge intermediates).
* ``"auto"`` (the default of ``conv_einsum``) -- the cheaper of the ``"optimal"`` path (``"greedy"``
  above ``OPTIMAL_LIMIT`` operands) and the ``"time"`` path by :func:`evaluation_cost`, the rule the
  tensorial layers use to choose between their two evaluations: FLOPs plus ``ELEMENT_COST`` per element
  of every step result. It keeps the FLOP-bounded path unless that path's intermediates cost more to
  move than the extra FLOPs of the other.
* an explicit path (list of pairs), validated.

Except with ``"time"`` and ``"auto"``, a path with more FLOPs than the naive one is never chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import opt_einsum

from .cost import ELEMENT_COST, Problem

__all__ = [
    "OPTIMAL_LIMIT",
    "OPTIMIZERS",
    "naive_path",
    "greedy_path",
    "optimal_path",
    "find_path",
    "path_masks",
    "path_flops",
    "path_cost",
    "evaluation_cost",
    "validate_path",
]

OPTIMAL_LIMIT = 10
OPTIMIZERS = ("optimal", "greedy", "naive", "auto", "time")


def naive_path(n: int) -> list[tuple[int, int]]:
    """Left to right: ``[(0, 1), (0, n - 2), (0, n - 3), ...]`` in linear format."""
    if n < 2:
        return []
    path = [(0, 1)]
    remaining = n - 1
    while remaining > 1:
        path.append((0, remaining - 1))
        remaining -= 1
    return path


def validate_path(path: Any, n: int) -> list[tuple[int, int]]:
    """Check an explicit path for ``n`` operands and return it as a list of int pairs."""
    if isinstance(path, (str, bytes)) or not isinstance(path, Sequence):
        raise ValueError(
            f"optimize must be one of {OPTIMIZERS}, a bool, or an explicit path (list of pairs); got {path!r}"
        )
    out = []
    size = n
    for step, pair in enumerate(path):
        if (
            not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair)
        ):
            raise ValueError(
                f"path step {step} is {pair!r}; each step must be a pair of operand positions (i, j)"
            )
        i, j = pair
        if i == j or not (0 <= i < size and 0 <= j < size):
            raise ValueError(
                f"path step {step} {tuple(pair)} is invalid: positions must be distinct and in [0, {size}) "
                "(the current operand list; results are appended at the end)"
            )
        out.append((i, j))
        size -= 1
    if size != 1:
        raise ValueError(f"the path has {len(out)} step(s) but {n} operands need {n - 1}")
    return out


def path_masks(path: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The (mask_a, mask_b) pairs combined by each step of a linear path."""
    current = [1 << p for p in range(n)]
    steps = []
    for i, j in path:
        a, b = current[i], current[j]
        for k in sorted((i, j), reverse=True):
            del current[k]
        current.append(a | b)
        steps.append((a, b))
    return steps


def path_flops(problem: Problem, path: Sequence[tuple[int, int]]) -> int:
    """Total FLOPs of a linear path."""
    return sum(problem.step_flops(a, b) for a, b in path_masks(path, problem.num_operands))


def path_cost(problem: Problem, path: Sequence[tuple[int, int]], memory_weight: float | None = None) -> float:
    """Planner objective of a linear path (FLOPs plus weighted memory traffic, see ``MEMORY_WEIGHT``)."""
    return sum(problem.step_cost(a, b, memory_weight) for a, b in path_masks(path, problem.num_operands))


def evaluation_cost(problem: Problem, path: Sequence[tuple[int, int]]) -> float:
    """FLOPs plus ``ELEMENT_COST`` per element of every step result: the cost of running a path.

    The same rule compares a tensorial layer's factor-by-factor evaluation with its kernel
    reconstruction (:mod:`tnn.nn`); it weighs memory far more than the planner objective
    (:func:`path_cost`), which only breaks ties between paths of similar FLOPs.
    """
    masks = path_masks(path, problem.num_operands)
    return sum(problem.step_flops(a, b) + ELEMENT_COST * problem.node(a | b).numel for a, b in masks)


def _tree_to_linear(order: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Convert steps given as (mask_a, mask_b) into linear positions."""
    current = [1 << p for p in range(n)]
    path = []
    for a, b in order:
        i, j = current.index(a), current.index(b)
        path.append((min(i, j), max(i, j)))
        for k in sorted((i, j), reverse=True):
            del current[k]
        current.append(a | b)
    return path


def greedy_path(problem: Problem, memory_weight: float | None = None) -> list[tuple[int, int]]:
    """Repeatedly combine the pair with the cheapest step (sharing an index if any pair does)."""
    n = problem.num_operands
    current = [1 << p for p in range(n)]
    order = []
    while len(current) > 1:
        best = None
        for x in range(len(current)):
            for y in range(x + 1, len(current)):
                a, b = current[x], current[y]
                shares = bool(problem.node(a).indices & problem.node(b).indices)
                key = (not shares, problem.step_cost(a, b, memory_weight), problem.node(a | b).numel)
                if best is None or key < best[0]:
                    best = (key, a, b)
        assert best is not None
        _, a, b = best
        current.remove(a)
        current.remove(b)
        current.append(a | b)
        order.append((a, b))
    return _tree_to_linear(order, n)


def optimal_path(problem: Problem, memory_weight: float | None = None) -> list[tuple[int, int]]:
    """Exact minimum-cost contraction tree by dynamic programming over subsets of operands.

    The cost is :meth:`Problem.step_cost` (``memory_weight=0``: FLOPs alone).
    """
    n = problem.num_operands
    if n > OPTIMAL_LIMIT:
        return greedy_path(problem, memory_weight)
    best: dict[int, tuple[float, int, int]] = {1 << p: (0, 0, 0) for p in range(n)}
    masks = sorted(range(1, 1 << n), key=lambda m: bin(m).count("1"))
    for mask in masks:
        if mask in best:
            continue
        low = mask & -mask
        choice = None
        sub = (mask - 1) & mask
        while sub:
            if sub & low:  # each unordered split once: the part holding the lowest operand
                other = mask ^ sub
                cost = best[sub][0] + best[other][0] + problem.step_cost(sub, other, memory_weight)
                if choice is None or cost < choice[0]:
                    choice = (cost, sub, other)
            sub = (sub - 1) & mask
        assert choice is not None
        best[mask] = choice
    order: list[tuple[int, int]] = []

    def emit(mask: int) -> None:
        _, a, b = best[mask]
        if a == 0:
            return
        emit(a)
        emit(b)
        order.append((a, b))

    emit(problem.full_mask)
    return _tree_to_linear(order, n)


def _opt_einsum_path(problem: Problem, strategy: str) -> list[tuple[int, int]] | None:
    """opt_einsum's path on the reduced pure-contraction problem (None if it is not pairwise)."""
    eq = ",".join(problem.terms) + "->" + problem.spec.output
    shapes = [tuple(problem.sizes[ch] for ch in term) for term in problem.terms]
    path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=strategy)
    if any(len(step) != 2 for step in path):
        return None
    return [tuple(step) for step in path]  # type: ignore[misc]


def find_path(problem: Problem, optimize: Any = "optimal") -> list[tuple[int, int]]:
    """Choose a linear path for ``problem`` according to ``optimize``.

    Parameters
    ----------
    problem : Problem
    optimize : {"optimal", "greedy", "naive", "auto", "time"}, bool or sequence of pairs
        ``True`` means ``"optimal"``, ``False`` ``"naive"``; ``"auto"`` searches like ``"optimal"`` up
        to ``OPTIMAL_LIMIT`` operands and like ``"greedy"`` above, then takes the cheaper by
        :func:`evaluation_cost` of the FLOP-bounded and the unbounded best paths.

    Raises
    ------
    ValueError
        Unknown optimizer name or invalid explicit path.
    """
    n = problem.num_operands
    if optimize is True:
        optimize = "optimal"
    elif optimize is False:
        optimize = "naive"
    if not isinstance(optimize, str):
        return validate_path(optimize, n)
    if optimize not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimize {optimize!r}: use one of {OPTIMIZERS}, a bool or an explicit path"
        )
    naive = naive_path(n)
    if n < 3 or optimize == "naive":
        return naive
    candidates = [naive]
    if optimize == "greedy" or (optimize == "auto" and n > OPTIMAL_LIMIT):
        if problem.is_pure:
            found = _opt_einsum_path(problem, "greedy")
            if found is not None:
                candidates.append(found)
        candidates += [greedy_path(problem), greedy_path(problem, 0)]
    else:
        candidates += [optimal_path(problem), optimal_path(problem, 0)]
        if problem.is_pure and n > OPTIMAL_LIMIT:
            found = _opt_einsum_path(problem, "dp")
            if found is not None:
                candidates.append(found)
    def best(paths: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
        return min(paths, key=lambda p: (path_cost(problem, p), path_flops(problem, p)))

    free = best(candidates)  # the lowest objective, whatever its FLOPs
    if optimize == "time":
        return free
    limit = path_flops(problem, naive)  # the others: never more FLOPs than left to right
    bounded = best([p for p in candidates if path_flops(problem, p) <= limit])
    if optimize != "auto":
        return bounded
    return min((bounded, free), key=lambda p: evaluation_cost(problem, p))
