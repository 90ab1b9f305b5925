"""``compress(model, format, rate)``: replace every eligible Conv2d / Linear by a tensorial layer.

Index conventions follow PyTorch: a ``Conv2d`` weight is ``(C_out, C_in/groups, k_h, k_w)``, a ``Linear``
weight ``(out_features, in_features)``. The compression rate of a layer is
``parameters(tensorial layer) / parameters(dense layer)`` (weights and biases), so ``rate=0.1`` keeps
about 10% of the parameters.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tnn import nn as tnn_nn
from tnn.algebra.cost import dense_conv_flops, dense_linear_flops
from tnn.compression.allocation import ALLOCATIONS, MAX_RATIO, RATE_GRID, allocate_rates, error_curve
from tnn.compression.report import COMPRESSED, DENSE, SKIPPED, CompressionReport, LayerReport
from tnn.formats import check_format, check_rate
from tnn.io import to_jsonable

_INITS = ("decompose", "random")


def _tensorial_class(module: nn.Module) -> Any:
    """The tensorial layer class that replaces ``module`` (``TensorialConv2d`` or ``TensorialLinear``)."""
    if isinstance(module, nn.Conv2d):
        return tnn_nn.TensorialConv2d
    return tnn_nn.TensorialLinear


def is_eligible(module: nn.Module) -> bool:
    """Whether ``module`` is a dense layer that :func:`compress` can replace (``Conv2d`` or ``Linear``)."""
    return isinstance(module, (nn.Conv2d, nn.Linear)) and not isinstance(
        module, (nn.modules.lazy.LazyModuleMixin,)
    )


def is_unsupported(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution :func:`compress` keeps dense (``Conv1d``, ``Conv3d``,
    transposed convolutions)."""
    return isinstance(module, nn.modules.conv._ConvNd) and not is_eligible(module)


def _aliases(model: nn.Module) -> dict[int, list[str]]:
    """Every name of each submodule: a module used at several places (weight tying) has several."""
    names: dict[int, list[str]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        if name:
            names.setdefault(id(mod), []).append(name)
    return names


def _rank_values(ranks: Any) -> list[int]:
    """The integers of a layer's ranks (formats nest them in tuples, lists or dicts)."""
    plain = to_jsonable(ranks)
    if isinstance(plain, dict):
        plain = list(plain.values())
    if isinstance(plain, list):
        return [v for item in plain for v in _rank_values(item)]
    return [int(plain)] if isinstance(plain, (int, float)) else []


def n_params(module: nn.Module) -> int:
    """Number of parameters of ``module`` (shared parameters counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def dense_flops(module: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of a dense ``Conv2d`` / ``Linear`` for ONE sample: 2 x multiply-accumulates (bias excluded).

    Counted by the algebra's cost model (:func:`tnn.algebra.cost.dense_conv_flops`,
    :func:`tnn.algebra.cost.dense_linear_flops`), the one :meth:`tnn.nn.TensorialConv2d.flops` uses, so
    dense and tensorial figures compare.

    Parameters
    ----------
    module : nn.Conv2d or nn.Linear
    input_shape : sequence of int
        Shape of one input sample without the batch dimension: ``(C_in, H, W)`` for a convolution,
        ``(..., in_features)`` for a linear layer.

    Returns
    -------
    int
        FLOPs of one sample.

    Raises
    ------
    TypeError
        If ``module`` is neither an ``nn.Conv2d`` nor an ``nn.Linear``.
    """
    if isinstance(module, nn.Conv2d):
        padding: Any = module.padding
        if not isinstance(padding, str):
            padding = dict(zip("hw", padding, strict=True))
        return dense_conv_flops(
            module.in_channels, module.out_channels, module.kernel_size, tuple(input_shape[-2:]),
            groups=module.groups, padding=padding, stride=dict(zip("hw", module.stride, strict=True)),
            dilation=dict(zip("hw", module.dilation, strict=True)),
        )
    if isinstance(module, nn.Linear):
        lead = math.prod(input_shape[:-1]) if len(input_shape) > 1 else 1
        return dense_linear_flops(module.in_features, module.out_features, batch=lead)
    raise TypeError(f"dense_flops expects nn.Conv2d or nn.Linear, got {type(module).__name__}")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


def _check_patterns(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of glob patterns on module names, got {value!r}")
    return list(value)


def _input_shapes(
    model: nn.Module, names: list[str], input_shape: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """Per-sample input shape of each named module, recorded by one forward pass on zeros."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in names:
        def hook(mod: nn.Module, args: tuple[Any, ...], _name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor):
                shapes.setdefault(_name, tuple(args[0].shape[1:]))

        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        ref = next(iter(model.parameters()), None)
        x = torch.zeros((1, *input_shape), dtype=ref.dtype if ref is not None else torch.float32,
                        device=ref.device if ref is not None else "cpu")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                try:
                    model(x)
                except RuntimeError as exc:  # wrong channels / too small for the model
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise ValueError(
                        f"input_shape {tuple(input_shape)} does not fit the model (one sample, batch "
                        f"omitted, e.g. (3, 32, 32)): {first}"
                    ) from exc
        finally:
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _tensorial_flops(layer: nn.Module, shape: tuple[int, ...] | None) -> int | None:
    if shape is None or not hasattr(layer, "flops"):
        return None
    try:
        return int(layer.flops(shape))
    except (TypeError, ValueError):
        return None


def compress(
    model: nn.Module,
    format: str = "rtt",
    rate: float = 0.1,
    *,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
    init: str | None = None,
    plan: CompressionReport | Sequence[LayerReport | dict[str, Any]] | dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    classifier_rank_floor: bool = True,
    allocation: str = "uniform",
) -> nn.Module:
    """Map a (pretrained) CNN to a tensorial neural network at a target compression rate.

    Every ``nn.Conv2d`` / ``nn.Linear`` whose qualified name matches ``include`` (default: all) and not
    ``exclude`` is replaced by :class:`tnn.nn.TensorialConv2d` / :class:`tnn.nn.TensorialLinear` built
    with ``from_dense(layer, format=format, rate=rate, init=init)``: ranks are chosen so that the layer
    keeps at most ``rate`` of its parameters, and the factors are initialised by decomposing the
    pretrained kernel. A layer whose budget cannot be met (tiny or depthwise layers; the layer class
    raises ``ValueError``) stays dense and is reported with the reason, and so do other convolutions
    (``Conv1d``, ``Conv3d``, transposed), which no format supports. A module used at several places
    (weight tying) is compressed once and the one tensorial layer is used at each place.

    Parameters
    ----------
    model : nn.Module
        Any model built from standard modules. It is deep-copied and never modified.
    format : str
        One of :data:`tnn.FORMATS` (``"rcp"``, ``"rtt"``, ``"cp"``, ``"tk"``, ``"tt"``, ...).
    rate : float
        Target compression rate, in ``(0, 1]``: of every layer (``allocation="uniform"``), or of the
        compressed layers together (``allocation="error"``).
    include, exclude : list of str, optional
        Glob patterns (``fnmatch``) on module names, e.g. ``["layer*"]`` or ``["conv1", "linear"]``.
        A layer is compressed when it matches some ``include`` pattern (all layers if ``None``) and
        no ``exclude`` pattern.
    init : {"decompose", "random"}, optional
        Initialisation of the tensorial layers; default ``"decompose"`` (from the dense weights), or
        ``"random"`` when rebuilding from a ``plan``.
    plan : CompressionReport, list of rows, or ``report.to_dict()``, optional
        Rebuild a previously compressed architecture: each row with status ``"compressed"`` is
        replaced in its recorded ``format`` with its recorded ``ranks``; other layers stay dense;
        ``format``, ``rate``, ``include`` and ``exclude`` are ignored. With the default
        ``init="random"`` nothing is decomposed; then load the compressed checkpoint's ``state_dict``.
    input_shape : sequence of int, optional
        Shape of one input sample, e.g. ``(3, 32, 32)``; when given, the report includes the
        FLOPs (per sample, 2 x multiply-accumulates) of every layer before and after.
    classifier_rank_floor : bool
        Keep the model's last ``nn.Linear`` (the classifier of the models of :mod:`tnn.models`) dense
        when one of its ranks in ``format`` would be below its number of outputs (classes): the
        network collapses. Default ``True``; ignored with a ``plan``.
    allocation : {"uniform", "error"}
        ``"uniform"`` (default, the paper's rule): every layer keeps at most ``rate`` of its parameters.
        ``"error"``: one budget of ``rate`` times the compressible layers' parameters, spread over the
        layers to minimise their summed squared relative reconstruction error
        (:mod:`tnn.compression.allocation`; each layer is decomposed at ~10 rates within a factor
        :data:`~tnn.compression.allocation.MAX_RATIO` of ``rate`` first). Ignored with a ``plan``.

    Returns
    -------
    nn.Module
        The compressed copy. Its attribute ``tnn_report`` is the :class:`CompressionReport`
        (``model.tnn_report.table()`` prints it; ``.to_dict()`` is plain data for JSON and checkpoints).

    Raises
    ------
    ValueError
        Unknown format, rate outside ``(0, 1]``, unknown init, a plan naming a layer that does not
        exist or has another shape.
    TypeError
        ``model`` is not an ``nn.Module``; patterns are not strings.

    Examples
    --------
    >>> small = tnn.compress(resnet, format="rtt", rate=0.1, input_shape=(3, 32, 32))
    >>> print(small.tnn_report.table())
    >>> rebuilt = tnn.compress(fresh_resnet, plan=small.tnn_report)  # same architecture, random init
    >>> rebuilt.load_state_dict(small.state_dict())
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"compress expects an nn.Module, got {type(model).__name__}")
    include_p = _check_patterns(include, "include")
    exclude_p = _check_patterns(exclude, "exclude")
    rows_plan = _normalise_plan(plan) if plan is not None else None
    if init is None:
        init = "random" if rows_plan is not None else "decompose"
    if init not in _INITS:
        raise ValueError(f"init must be one of {list(_INITS)}, got {init!r}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {list(ALLOCATIONS)}, got {allocation!r}")
    if rows_plan is None:
        check_format(format)
        try:
            rate = check_rate(rate)
        except ValueError as exc:
            raise ValueError(f"rate must be a number in (0, 1], got {rate!r}") from exc

    new = copy.deepcopy(model)
    aliases = _aliases(new)
    candidates = [(name, mod) for name, mod in new.named_modules()
                  if name and (is_eligible(mod) or is_unsupported(mod))]
    names = [name for name, _ in candidates]
    linears = [name for name, mod in candidates if isinstance(mod, nn.Linear)]
    classifier = linears[-1] if linears and classifier_rank_floor else None
    if rows_plan is not None:
        unknown = sorted(set(rows_plan) - set(names))
        if unknown:
            raise ValueError(
                f"compression plan names layers not in the model: {unknown[:5]}"
                f" (model's Conv2d/Linear layers: {names[:8]}{'...' if len(names) > 8 else ''})"
            )
    eligible = [name for name, mod in candidates if is_eligible(mod)]
    shapes = _input_shapes(new, eligible, input_shape) if input_shape is not None else {}
    report = CompressionReport(
        format=format if rows_plan is None else _plan_format(rows_plan),
        rate=rate if rows_plan is None else None,
        model_params_before=n_params(model),
        allocation=allocation if rows_plan is None else "plan",
    )

    def build(name: str, dense: nn.Module, layer_rate: float, layer_init: str) -> nn.Module:
        """The tensorial layer at ``layer_rate``; ValueError (the reason) when it must stay dense."""
        layer = _tensorial_class(dense).from_dense(dense, format=format, rate=layer_rate, init=layer_init)
        low = min(_rank_values(getattr(layer, "ranks", None)), default=0)
        if name == classifier and isinstance(dense, nn.Linear) and low < dense.out_features:
            raise ValueError(f"classifier: rank {low} at this rate would be below its {dense.out_features} "
                             f"outputs")
        return layer

    allocated: dict[str, float] | None = None  # per-layer rates of the "error" allocation
    if rows_plan is None and allocation == "error":
        selected = [(name, dense) for name, dense in candidates
                    if is_eligible(dense) and _selection_reason(name, include_p, exclude_p) is None]
        allocated = _allocated_rates(selected, rate, build)
    for name, dense in candidates:
        shape = tuple(dense.weight.shape)
        kind = type(dense).__name__ if is_unsupported(dense) else (
            "Conv2d" if isinstance(dense, nn.Conv2d) else "Linear")
        before = n_params(dense)
        fl_before = dense_flops(dense, shapes[name]) if name in shapes else None
        row = LayerReport(name=name, kind=kind, shape=shape, format="dense", ranks=None, params_before=before,
                          params_after=before, flops_before=fl_before, flops_after=fl_before)
        if is_unsupported(dense):
            row.status, row.reason = DENSE, f"{kind} is not supported (formats replace Conv2d and Linear)"
            report.layers.append(row)
            continue
        if rows_plan is not None:
            target = rows_plan.get(name)
            if target is not None and tuple(target.shape) != shape:
                raise ValueError(
                    f"compression plan row {name!r} has weight shape {tuple(target.shape)}, the model's layer"
                    f" has {shape}: the plan was made for another architecture"
                )
            if target is None or target.status != COMPRESSED:
                row.status = target.status if target is not None else SKIPPED
                row.reason = target.reason if target is not None else "not in plan"
                report.layers.append(row)
                continue
            layer = _tensorial_class(dense).from_dense(
                dense, format=target.format, rank=target.ranks, init=init
            )
        else:
            skipped = _selection_reason(name, include_p, exclude_p)
            if skipped is not None:
                row.status, row.reason = SKIPPED, skipped
                report.layers.append(row)
                continue
            if allocated is not None and name not in allocated:
                row.status, row.reason = DENSE, "no feasible rank at any rate the allocation tried"
                report.layers.append(row)
                continue
            try:
                layer = build(name, dense, rate if allocated is None else allocated[name], init)
            except ValueError as exc:
                row.status, row.reason = DENSE, str(exc).splitlines()[0] if str(exc) else "budget infeasible"
                report.layers.append(row)
                continue
        layer.train(dense.training)
        for alias in aliases.get(id(dense), [name]):  # a shared module is replaced at every place
            _set_submodule(new, alias, layer)
        row.format = str(getattr(layer, "format", format))
        row.ranks = to_jsonable(getattr(layer, "ranks", None))
        row.params_after = n_params(layer)
        row.flops_after = _tensorial_flops(layer, shapes.get(name))
        row.status = COMPRESSED
        report.layers.append(row)
    report.model_params_after = n_params(new)
    new.tnn_report = report  # type: ignore[assignment]
    return new


def _selection_reason(name: str, include: list[str] | None, exclude: list[str] | None) -> str | None:
    """Why ``include`` / ``exclude`` leave layer ``name`` out, or ``None`` when it is selected."""
    if include is not None and not _matches(name, include):
        return "not matched by include"
    if exclude is not None and _matches(name, exclude):
        return "matched by exclude"
    return None


def _allocated_rates(
    selected: Sequence[tuple[str, nn.Module]], rate: float, build: Any
) -> dict[str, float]:
    """Per-layer rates of the ``"error"`` allocation (:mod:`tnn.compression.allocation`): at most ``rate``
    of the parameters of the layers that have a feasible rank at some tried rate, in all."""

    def attempt(name: str, dense: nn.Module) -> Any:
        def at(layer_rate: float) -> nn.Module | None:
            try:
                return build(name, dense, layer_rate, "decompose")
            except ValueError:
                return None
        return at

    grid = sorted({r for r in RATE_GRID if rate / MAX_RATIO <= r <= rate * MAX_RATIO} | {rate})
    curves = {name: error_curve(attempt(name, dense), dense.weight, grid) for name, dense in selected}
    budget = int(rate * sum(n_params(dense) for name, dense in selected if curves[name]))
    return {name: point.rate for name, point in allocate_rates(curves, budget).items()}


def _normalise_plan(plan: Any) -> dict[str, LayerReport]:
    if isinstance(plan, CompressionReport):
        rows = plan.layers
    elif isinstance(plan, dict):
        rows = CompressionReport.from_dict(plan).layers
    elif isinstance(plan, (list, tuple)):
        rows = [r if isinstance(r, LayerReport) else LayerReport.from_dict(r) for r in plan]
    else:
        raise TypeError(
            f"plan must be a CompressionReport, a list of rows or report.to_dict(), got {type(plan).__name__}"
        )
    return {row.name: row for row in rows}


def _plan_format(rows: dict[str, LayerReport]) -> str:
    fmts = sorted({row.format for row in rows.values() if row.status == COMPRESSED})
    return fmts[0] if len(fmts) == 1 else ",".join(fmts) or "dense"


__all__ = ["compress", "dense_flops", "is_eligible", "is_unsupported", "n_params", "DENSE",
           "SKIPPED", "COMPRESSED"]
