"""``conv_einsum``: einsum generalised with convolutions, planned pairwise.

Semantics (see ``docs/algebra.md``): for a convolution index ``c`` the first operand carrying it is the
signal, every other carrier a filter. With filters ``f_1 .. f_m`` the result is PyTorch's
cross-correlation of the signal with the full *true* convolution ``g = f_1 * ... * f_m`` (size
``K = sum k_i - m + 1``), with the requested padding (computed for ``K``), stride and dilation. This is
what applying the filters one after another with full padding and then taking the requested output
window gives, so the value does not depend on the evaluation order.

Evaluation: each operand is first reduced (diagonals of repeated indices, sums over indices that
appear nowhere else); asymmetric or circular padding of a signal is applied then, symmetric zero
padding is left to the first ``F.conv`` step on that index. Then the pairwise path is executed, each
step being one torch primitive (:mod:`tnn.algebra.pairwise`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from .cost import Problem
from .options import ConvOption, normalize_conv_options
from .pairwise import ConvDim, conv_step, matmul_step, pad_dim, stride_dim, unfold_step
from .paths import find_path, naive_path, path_cost, path_flops, path_masks
from .spec import ParsedSpec, parse_spec

__all__ = [
    "conv_einsum",
    "conv_einsum_path",
    "conv_einsum_expression",
    "ConvEinsumExpression",
    "PathInfo",
    "StepInfo",
]

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepInfo:
    """One pairwise step of a plan.

    Attributes
    ----------
    operands : tuple of int
        Positions in the current operand list (opt_einsum's linear path format).
    equation : str
        ``"a,b->r"``, with ``"|c"`` listing the convolution indices evaluated by the step.
    kind : str
        ``"contraction"``, ``"outer product"``, ``"convolution"`` (one ``F.conv`` call) or
        ``"convolution (unfold)"`` (windows + einsum).
    flops : int
    size : int
        Number of elements of the result.
    """

    operands: tuple[int, int]
    equation: str
    kind: str
    flops: int
    size: int


@dataclass(frozen=True)
class PathInfo:
    """What :func:`conv_einsum_path` found; ``str(info)`` is a printable table.

    Attributes
    ----------
    spec : str
        The canonical specification.
    path : list of tuple of int
        The chosen path (linear format).
    naive_flops : int
        FLOPs of the left-to-right path.
    opt_flops : int
        FLOPs of the chosen path.
    largest_intermediate : int
        Elements of the largest step result (the output if there is no step).
    steps : tuple of StepInfo
    cost : float
        The planner's objective for the chosen path: FLOPs plus ``MEMORY_WEIGHT`` x elements moved.
    sizes : dict
        Sizes of the non-convolution indices.
    conv : dict
        Per convolution index: signal size, combined filter size, padding, stride, dilation, output size.
    """

    spec: str
    path: list[tuple[int, int]]
    naive_flops: int
    opt_flops: int
    largest_intermediate: int
    steps: tuple[StepInfo, ...]
    cost: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)
    conv: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """``naive_flops / opt_flops``."""
        return self.naive_flops / max(self.opt_flops, 1)

    def __str__(self) -> str:
        lines = [
            f"  Complete contraction:  {self.spec}",
            f"      Naive FLOP count:  {self.naive_flops:.4g}",
            f"  Optimized FLOP count:  {self.opt_flops:.4g}",
            f"   Theoretical speedup:  {self.speedup:.4g}",
            f"   Planner cost (FLOPs + memory):  {self.cost:.4g}",
            f"  Largest intermediate:  {self.largest_intermediate:.4g} elements",
        ]
        for c, d in self.conv.items():
            lines.append(
                f"  Convolution index {c}:  n={d['n']} K={d['kernel']} padding={d['padding']} "
                f"stride={d['stride']} dilation={d['dilation']} -> {d['out']}"
            )
        lines.append("-" * 88)
        lines.append(f"{'step':>4}  {'pair':<8} {'kind':<22} {'flops':>10} {'size':>10}  equation")
        lines.append("-" * 88)
        for k, s in enumerate(self.steps):
            lines.append(
                f"{k:>4}  {str(s.operands):<8} {s.kind:<22} {s.flops:>10.4g} {s.size:>10.4g}  {s.equation}"
            )
        return "\n".join(lines)


@dataclass
class _State:
    indices: str
    mask: int
    pending: frozenset[str]


#: a contraction step with fewer result elements than this is one ``torch.einsum`` call rather than a
#: ``bmm`` with its reshapes (per-call overheads dominate; see docs/benchmarks.md, "Algebra")
SMALL_PRODUCT = 4096


def _result_order(indices: frozenset[str], output: str, a: str, b: str, conv: dict) -> str:
    """Index order of a contraction result: output order, non-output indices next, convolution last."""
    if indices == frozenset(output):
        return output
    seen = a + b
    return "".join(
        sorted(
            indices,
            key=lambda i: (i in conv, output.index(i) if i in output else len(output) + seen.index(i)),
        )
    )


def _einsum_step(eq: str) -> Step:
    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum(eq, a, b)

    return fn


def _swap(fn: Step) -> Step:
    def swapped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return fn(b, a)

    return swapped


class _Plan:
    """A compiled evaluation for fixed operand shapes."""

    def __init__(self, spec: ParsedSpec, shapes: tuple[tuple[int, ...], ...], options: tuple[ConvOption, ...],
                 optimize: Any):
        problem = Problem(spec, shapes, options)
        self.problem = problem
        self.shapes = shapes
        n = spec.num_operands
        path = find_path(problem, optimize)
        self.path = path
        conv = problem.conv
        # single-operand preparation
        self.prep: list[tuple[int, Callable[[torch.Tensor], torch.Tensor]]] = []
        states = []
        for p, (term, red) in enumerate(zip(spec.inputs, problem.terms, strict=False)):
            fns: list[Callable[[torch.Tensor], torch.Tensor]] = []
            if term != red:
                fns.append(_unary_einsum(f"{term}->{red}"))
            pending = set()
            for dim, c in enumerate(red):
                ci = conv.get(c)
                if ci is None or ci.signal != p:
                    continue
                if not ci.filters:
                    fns.append(_pad_fn(dim, ci.pad[0], ci.pad[1], ci.circular, ci.stride))
                elif ci.circular or ci.pad[0] != ci.pad[1]:
                    fns.append(_pad_fn(dim, ci.pad[0], ci.pad[1], ci.circular, 1))
                elif ci.pad[0] > 0:
                    pending.add(c)
            if fns:
                self.prep.append((p, _chain(fns)))
            states.append(_State(red, 1 << p, frozenset(pending)))
        # pairwise steps
        self.steps: list[tuple[int, int, Step]] = []
        infos = []
        for (i, j), (ma, mb) in zip(path, path_masks(path, n), strict=False):
            sa, sb = states[i], states[j]
            fn, state, kind, eq = self._compile_step(sa, sb)
            self.steps.append((i, j, fn))
            for k in sorted((i, j), reverse=True):
                del states[k]
            states.append(state)
            node = problem.node(ma | mb)
            infos.append(StepInfo((i, j), eq, kind, problem.step_flops(ma, mb), node.numel))
        final = states[0].indices
        self.final_perm = None if final == spec.output else [final.index(i) for i in spec.output]
        out_node = problem.node(problem.full_mask)
        self.info = PathInfo(
            spec=str(spec),
            path=list(path),
            naive_flops=path_flops(problem, naive_path(n)),
            opt_flops=path_flops(problem, path),
            largest_intermediate=max((s.size for s in infos), default=out_node.numel),
            steps=tuple(infos),
            cost=path_cost(problem, path),
            sizes=dict(problem.sizes),
            conv={
                c: {"n": ci.n, "kernel": ci.kernel, "padding": ci.pad, "stride": ci.stride,
                    "dilation": ci.dilation, "out": ci.out}
                for c, ci in conv.items()
            },
        )

    def _compile_step(self, sa: _State, sb: _State) -> tuple[Step, _State, str, str]:
        problem = self.problem
        conv = problem.conv
        mask = sa.mask | sb.mask
        node = problem.node(mask)
        shared_conv = [c for c in sa.indices if c in conv and c in sb.indices]
        pending = (sa.pending | sb.pending) - set(shared_conv)
        if not shared_conv:
            r_idx = _result_order(node.indices, problem.spec.output, sa.indices, sb.indices, conv)
            eq = f"{sa.indices},{sb.indices}->{r_idx}"
            summed = (set(sa.indices) | set(sb.indices)) - set(r_idx)
            kind = "contraction" if summed else "outer product"
            big_a = problem.node(sa.mask).numel >= problem.node(sb.mask).numel
            orders = ((sa, sb, False), (sb, sa, True))
            # a small product is a few microseconds of arithmetic: one torch.einsum, which writes the
            # result in the order asked for, beats the reshapes and permutes around a bmm
            if node.numel < SMALL_PRODUCT:
                orders = ()
            for sx, sw, swap in orders if big_a else orders[::-1]:
                found = matmul_step(sx.indices, sw.indices, node.indices, problem.sizes)
                if found is not None:
                    fn, r_idx = found
                    eq = f"{sa.indices},{sb.indices}->{r_idx}"
                    return (_swap(fn) if swap else fn), _State(r_idx, mask, pending), kind, eq
            return _einsum_step(eq), _State(r_idx, mask, pending), kind, eq
        sig_a = [conv[c].signal for c in shared_conv if sa.mask >> conv[c].signal & 1]
        sig_b = [conv[c].signal for c in shared_conv if sb.mask >> conv[c].signal & 1]
        mixed = bool(sig_a) and bool(sig_b)
        if mixed or len(shared_conv) > 3:
            dims = tuple(
                self._dim(c, sa, mask, 0) if sa.mask >> conv[c].signal & 1 else self._dim(c, sb, mask, 1)
                for c in shared_conv
            )
            r_idx = _result_order(node.indices, problem.spec.output, sa.indices, sb.indices, conv)
            fn = unfold_step(sa.indices, sb.indices, dims, r_idx)
            kind = "convolution (unfold)"
        else:
            x_is_a = bool(sig_a) or (not sig_b and problem.node(sa.mask).numel >= problem.node(sb.mask).numel)
            sx, sw = (sa, sb) if x_is_a else (sb, sa)
            extra = self._extra_spatial(sx, sw, shared_conv)
            dims = tuple(
                ConvDim(c, "valid", 0) if c in extra else self._dim(c, sx, mask, 0)
                for c in sx.indices
                if c in shared_conv or c in extra
            )
            fn, r_idx = conv_step(sx.indices, sw.indices, dims, "".join(node.indices), problem.sizes, extra)
            if not x_is_a:
                fn = _swap(fn)
            kind = "convolution"
        eq = f"{sa.indices},{sb.indices}->{r_idx}|{''.join(shared_conv)}"
        return fn, _State(r_idx, mask, pending), kind, eq

    def _extra_spatial(self, sx: _State, sw: _State, shared_conv: list[str]) -> frozenset[str]:
        """Indices of ``sx`` only, carried as kernel-1 spatial dims to spare a transposition.

        These are the convolution indices of ``sx`` absent from ``sw`` (as ``w`` in
        ``bahw,ahc->bchw|h``), if the call stays within three spatial dimensions.
        """
        extra = [i for i in sx.indices if i not in sw.indices and i in self.problem.conv]
        if not extra or len(extra) + len(shared_conv) > 3:
            return frozenset()
        return frozenset(extra)

    def _dim(self, c: str, signal_state: _State, mask: int, side: int) -> ConvDim:
        """ConvDim of shared index ``c``; ``signal_state`` (on ``side``) holds its signal, if any."""
        ci = self.problem.conv[c]
        if not mask >> ci.signal & 1:
            return ConvDim(c, "full", -1)
        last = all(mask >> f & 1 for f in ci.filters)
        pad = ci.pad[0] if c in signal_state.pending else 0
        return ConvDim(c, "valid", side, pad, ci.dilation, ci.stride if last else 1)

    def run(self, operands: Sequence[torch.Tensor]) -> torch.Tensor:
        ops = list(operands)
        for p, fn in self.prep:
            ops[p] = fn(ops[p])
        for i, j, fn in self.steps:
            a, b = ops[i], ops[j]
            if i > j:
                del ops[i]
                del ops[j]
            else:
                del ops[j]
                del ops[i]
            ops.append(fn(a, b))
        out = ops[0]
        if self.final_perm is not None:
            out = out.permute(self.final_perm)
        return out


def _unary_einsum(eq: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum(eq, x)

    return fn


def _pad_fn(
    dim: int, left: int, right: int, circular: bool, stride: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return stride_dim(pad_dim(x, dim, left, right, circular), dim, stride)

    return fn


def _chain(fns: list[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    if len(fns) == 1:
        return fns[0]

    def fn(x: torch.Tensor) -> torch.Tensor:
        for f in fns:
            x = f(x)
        return x

    return fn


def _check_operands(operands: Sequence[Any]) -> None:
    for pos, op in enumerate(operands):
        if not isinstance(op, torch.Tensor):
            raise TypeError(f"operand {pos} must be a torch.Tensor, got {type(op).__name__}")
    if operands:
        dtypes = {op.dtype for op in operands}
        if len(dtypes) > 1:
            raise TypeError(f"operands must share one dtype, got {[str(op.dtype) for op in operands]}")


def _optimize_key(optimize: Any, n: int) -> Any:
    if isinstance(optimize, (str, bool)):
        return optimize
    from .paths import validate_path

    return tuple(validate_path(optimize, n))


def _shape(x: Any, pos: int) -> tuple[int, ...]:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (torch.Size, tuple, list)) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in x
    ):
        return tuple(int(s) for s in x)
    raise TypeError(f"operand {pos} must be a tensor or a shape (sequence of non-negative ints), got {x!r}")


@lru_cache(maxsize=512)
def _plan(spec: ParsedSpec, shapes: tuple[tuple[int, ...], ...], options: tuple[ConvOption, ...],
          optimize: Any) -> _Plan:
    return _Plan(spec, shapes, options, optimize)


def _typed(value: Any) -> Any:
    """A hashable key of an option value that tells ``1``, ``True`` and ``1.0`` apart."""
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _typed(v)) for k, v in value.items()))
    return (type(value), value)


_FAST: dict[Any, _Plan] = {}
_FAST_LIMIT = 1024


def _prepare(spec: str, shapes: tuple[tuple[int, ...], ...], padding: Any, stride: Any, dilation: Any,
             circular: Any, optimize: Any) -> _Plan:
    try:
        key = (spec, shapes, _typed(padding), _typed(stride), _typed(dilation), _typed(circular),
               _typed(optimize))
        found = _FAST.get(key)
    except TypeError:  # unhashable option: no fast path
        key, found = None, None
    if found is not None:
        return found
    parsed = parse_spec(spec)
    if len(shapes) != parsed.num_operands:
        raise ValueError(
            f"spec {spec!r} has {parsed.num_operands} input term(s) {list(parsed.inputs)} but "
            f"{len(shapes)} operand(s) were given"
        )
    options = normalize_conv_options(parsed.conv, padding, stride, dilation, circular)
    plan = _plan(parsed, shapes, options, _optimize_key(optimize, parsed.num_operands))
    if key is not None:
        if len(_FAST) >= _FAST_LIMIT:
            _FAST.clear()
        _FAST[key] = plan
    return plan


def conv_einsum(
    spec: str,
    *operands: torch.Tensor,
    padding: Any = 0,
    stride: Any = 1,
    dilation: Any = 1,
    circular: Any = False,
    optimize: Any = "auto",
) -> torch.Tensor:
    """Evaluate a generalised einsum with convolution indices.

    Parameters
    ----------
    spec : str
        E.g. ``"bshw,tshw->bthw|hw"`` (Conv2d), ``"bshw,shw->bshw|hw"`` (depthwise),
        ``"nabxy,rac,rbd,rxy->ncdxy|xy"`` (reshaped CP). Indices after ``|`` are convolution indices.
    *operands : torch.Tensor
        One tensor per input term, all of one dtype and device. Dimension ``k`` of operand ``p`` is
        index ``spec_inputs[p][k]``.
    padding, stride, dilation, circular
        PyTorch meaning; one value for all convolution indices, one per index (in the order listed
        after ``|``) or a dict keyed by index letter. ``padding`` also accepts ``(left, right)`` pairs and
        ``"valid"``, ``"same"``, ``"full"``.
    optimize : {"optimal", "greedy", "naive", "auto", "time"}, bool or list of pairs
        Path optimizer or an explicit path (opt_einsum's linear format). ``"optimal"`` is the exact
        minimum of the planner objective among paths with no more FLOPs than left to right;
        ``"time"`` drops that bound; the default ``"auto"`` takes the cheaper of the two by the
        layers' evaluation cost (FLOPs plus a per-element charge for every intermediate), so a
        chain of skinny steps with huge intermediates gives way to reconstructing a small kernel
        first (see :mod:`tnn.algebra.paths`).

    Returns
    -------
    torch.Tensor
        Indices in the order of the output term.

    Raises
    ------
    ValueError
        Malformed spec, operand count/shape mismatch, invalid options or path.
    TypeError
        An operand that is not a tensor, or mixed dtypes.
    """
    _check_operands(operands)
    shapes = tuple(tuple(op.shape) for op in operands)
    return _prepare(spec, shapes, padding, stride, dilation, circular, optimize).run(operands)


def conv_einsum_path(
    spec: str,
    *operands: Any,
    padding: Any = 0,
    stride: Any = 1,
    dilation: Any = 1,
    circular: Any = False,
    optimize: Any = "auto",
) -> tuple[list[tuple[int, int]], PathInfo]:
    """Plan a ``conv_einsum`` call without evaluating it.

    Parameters
    ----------
    spec, padding, stride, dilation, circular, optimize
        As for :func:`conv_einsum`.
    *operands : torch.Tensor or sequence of int
        Operands or their shapes.

    Returns
    -------
    path : list of tuple of int
        Linear path (as opt_einsum's ``contract_path``).
    info : PathInfo
        Naive and optimized FLOPs, largest intermediate, per-step table (``print(info)``).
    """
    shapes = tuple(_shape(x, pos) for pos, x in enumerate(operands))
    plan = _prepare(spec, shapes, padding, stride, dilation, circular, optimize)
    return list(plan.path), plan.info


class ConvEinsumExpression:
    """A planned ``conv_einsum``, reusable: ``expr(*operands)``.

    Calling with operands of other shapes than planned plans again for those shapes (cached), so a
    layer may use one expression for any batch size.
    """

    def __init__(self, spec: str, shapes: tuple[tuple[int, ...], ...], padding: Any, stride: Any,
                 dilation: Any, circular: Any, optimize: Any):
        self.spec = spec
        self._plan = _prepare(spec, shapes, padding, stride, dilation, circular, optimize)
        self._parsed = self._plan.problem.spec
        self._options = normalize_conv_options(self._parsed.conv, padding, stride, dilation, circular)
        self._optimize = _optimize_key(optimize, self._parsed.num_operands)

    @property
    def path(self) -> list[tuple[int, int]]:
        return list(self._plan.path)

    @property
    def info(self) -> PathInfo:
        return self._plan.info

    def __call__(self, *operands: torch.Tensor) -> torch.Tensor:
        plan = self._plan
        if len(operands) != len(plan.shapes):
            raise ValueError(
                f"expression {self.spec!r} takes {len(plan.shapes)} operand(s), got {len(operands)}"
            )
        shapes = tuple(tuple(op.shape) for op in operands)
        if shapes != plan.shapes:
            _check_operands(operands)
            plan = _plan(self._parsed, shapes, self._options, self._optimize)
        return plan.run(operands)

    def __repr__(self) -> str:
        return f"ConvEinsumExpression({self.spec!r}, shapes={self._plan.shapes})"


def conv_einsum_expression(
    spec: str,
    *shapes: Any,
    padding: Any = 0,
    stride: Any = 1,
    dilation: Any = 1,
    circular: Any = False,
    optimize: Any = "auto",
) -> ConvEinsumExpression:
    """Plan once for the given operand shapes (or tensors) and return a reusable callable."""
    sh = tuple(_shape(x, pos) for pos, x in enumerate(shapes))
    return ConvEinsumExpression(spec, sh, padding, stride, dilation, circular, optimize)
