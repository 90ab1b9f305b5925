"""What :class:`~tnn.nn.TensorialConv2d` and :class:`~tnn.nn.TensorialLinear` share.

A tensorial layer holds the factors of its kernel in one of the formats of :mod:`tnn.formats` (an
``nn.ParameterList`` called ``factors``) and an optional ``bias``. Its forward pass evaluates the
format's ``conv_einsum`` string (input, factors -> output) with a plan made for the actual input shape
and cached per (shape, dtype, device). For every new input shape two evaluations are costed with the
algebra's FLOP model and the cheaper one is kept:

- ``"factors"``: the whole network, input included, contracted in the FLOP-optimal pairwise order
  (``optimize="optimal"``), i.e. factor by factor;
- ``"dense"``: reconstruct the kernel from the factors, then one ``F.conv2d`` / ``F.linear``.

The costs compared are the planned FLOPs plus :data:`tnn.algebra.cost.ELEMENT_COST` per element of every
step result, because the factor-by-factor steps are memory-bound where one dense convolution is
compute-bound.

The choice and both costs are exposed by :meth:`TensorialLayer.plan` (and :meth:`TensorialLayer.flops`).

Without autograd (``torch.no_grad()`` / ``torch.inference_mode()``, or factors that do not require
grad) the ``"dense"`` evaluation reuses a cached kernel, rebuilt only when a factor changed (its
``_version`` counter or storage moved: an optimizer step, ``load_state_dict``, ``.to()``); its cost then
drops the reconstruction, and :attr:`Plan.inference_mode` is chosen with that cost.
:func:`tnn.nn.optimize_for_inference` replaces the model's guess by a measurement per layer and input
shape.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tnn.algebra.cost import ELEMENT_COST, STEP_COST
from tnn.formats import Format, KernelGeometry, check_rate, get_format

__all__ = ["TensorialLayer", "Plan"]

INITS = ("decompose", "random")
EVALUATIONS = ("auto", "factors", "dense")


@dataclass(frozen=True)
class Plan:
    """How a layer evaluates one input shape.

    Attributes
    ----------
    mode : str
        ``"factors"`` (one ``conv_einsum`` over input and factors) or ``"dense"`` (kernel, then the
        dense op).
    factors_flops : int
        Planned FLOPs of the ``"factors"`` evaluation (the algebra's cost model).
    dense_flops : int
        Planned FLOPs of the kernel reconstruction plus the dense op, in the same model.
    factors_cost, dense_cost : float
        The FLOPs plus :data:`~tnn.algebra.cost.ELEMENT_COST` per element written by each step (what
        ``"auto"`` compares).
    inference_mode : str
        The evaluation used without autograd, where the ``"dense"`` one reuses a cached kernel (its
        cost, :attr:`cached_dense_cost`, excludes the reconstruction).
    cached_dense_cost : float
        :attr:`dense_cost` without the kernel reconstruction. Both evaluations are charged
        :data:`~tnn.algebra.cost.STEP_COST` per torch call in that comparison.
    """

    mode: str
    factors_flops: int
    dense_flops: int
    factors_cost: float = 0.0
    dense_cost: float = 0.0
    inference_mode: str = ""
    cached_dense_cost: float = 0.0

    @property
    def flops(self) -> int:
        return self.factors_flops if self.mode == "factors" else self.dense_flops


class TensorialLayer(nn.Module):
    """Base class: factors, bias, rank selection, plan cache, ``from_dense`` / ``to_dense``.

    Subclasses set ``_geometry``-related arguments and implement :meth:`_dense_forward`,
    :meth:`_factor_operand` / :meth:`_factor_output` (reshape between the layer's input / output and the
    folded ``conv_einsum`` operands), :meth:`_conv_options` and :meth:`to_dense`.
    """

    format: str
    ranks: tuple[int, ...]
    geometry: KernelGeometry

    def _setup(
        self,
        geometry: KernelGeometry,
        fmt: Format,
        rate: float | None,
        rank: int | Sequence[int] | None,
        bias: bool,
        factory: dict[str, Any],
    ) -> None:
        dtype = factory.get("dtype")
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise TypeError(
                f"{type(self).__name__}: dtype must be a floating-point torch.dtype, got {dtype!r}"
            )
        if rank is not None:
            ranks = fmt.check_ranks(geometry, rank)
        elif rate is not None:
            ranks = fmt.ranks_for_rate(geometry, rate)
        else:
            raise ValueError(
                f"{type(self).__name__}: give a compression rate (rate=, in (0, 1]) or ranks (rank=)"
            )
        self.format = fmt.name
        self.geometry = geometry
        self.ranks = tuple(int(r) for r in ranks)
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(s, **factory)) for s in fmt.factor_shapes(geometry, self.ranks)]
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(geometry.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self._plans: dict[tuple, tuple[Plan, Any]] = {}
        self._inference_modes: dict[tuple, str] = {}
        self._kernel_cache: tuple[tuple, torch.Tensor] | None = None
        self._evaluation = "auto"
        self.reset_parameters()

    # ------------------------------------------------------------------ properties
    @property
    def evaluation(self) -> str:
        """``"auto"`` (default: the cheaper plan per input shape), ``"factors"`` or ``"dense"`` (forced)."""
        return self._evaluation

    @evaluation.setter
    def evaluation(self, value: str) -> None:
        if value not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {value!r}")
        self._evaluation = value
        self._clear_caches()

    @property
    def format_object(self) -> Format:
        return get_format(self.format)

    @property
    def dense_weight_params(self) -> int:
        """Weight parameters of the equivalent dense layer (bias excluded)."""
        return self.geometry.dense_params

    @property
    def weight_params(self) -> int:
        """Weight parameters of this layer: the total size of its factors (bias excluded)."""
        return sum(p.numel() for p in self.factors)

    @property
    def compression_rate(self) -> float:
        """Achieved rate: :attr:`weight_params` / :attr:`dense_weight_params`."""
        return self.weight_params / self.dense_weight_params

    @property
    def spec(self) -> str:
        """The ``conv_einsum`` string of the forward pass (input, factors -> output)."""
        return self.format_object.spec(self.geometry, self.ranks)

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Variance-preserving random factors (see :meth:`tnn.formats.Format.random_init`), bias as in
        ``nn.Conv2d`` / ``nn.Linear``."""
        ref = self.factors[0]
        values = self.format_object.random_init(
            self.geometry, self.ranks, generator=generator, dtype=ref.dtype, device=ref.device
        )
        with torch.no_grad():
            for p, v in zip(self.factors, values, strict=True):
                p.copy_(v)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.geometry.s * self.geometry.spatial_size)
                self.bias.uniform_(-bound, bound, generator=generator)

    def dense_weight(self) -> torch.Tensor:
        """The dense kernel ``(T, S/g, kh, kw)`` / weight ``(T, S)`` of the factors (differentiable)."""
        return self.format_object.reconstruct(list(self.factors), self.geometry, self.ranks)

    # ------------------------------------------------------------------ dense counterpart
    #: The dense module a layer of this class replaces (``nn.Conv2d`` / ``nn.Linear``).
    DENSE: type[nn.Module] = nn.Module

    @staticmethod
    def _dense_arguments(module: Any) -> dict[str, Any]:
        """The constructor arguments the dense module and its tensorial copy share (shape, bias, ...)."""
        raise NotImplementedError

    @classmethod
    def from_dense(
        cls,
        module: nn.Module,
        format: str = "rtt",
        rate: float | None = None,
        rank: int | Sequence[int] | None = None,
        init: str | None = "decompose",
        *,
        m: int | None = None,
    ) -> Any:
        """A tensorial copy of ``module`` (an instance of :attr:`DENSE`) at ``rate`` or ``rank``.

        ``init="decompose"`` (default) sets the factors by decomposing the pretrained kernel in the format
        (:meth:`tnn.formats.Format.decompose`, computed in float64); ``init="random"`` keeps the
        variance-preserving random factors. The bias is copied in both cases.
        """
        if not isinstance(module, cls.DENSE):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{cls.DENSE.__name__}, "
                            f"got {type(module).__name__}")
        layer = cls(**cls._dense_arguments(module), format=format, rate=rate, rank=rank, m=m,
                    device=module.weight.device, dtype=module.weight.dtype)
        layer._load_dense(module, init)
        return layer

    def to_dense(self) -> nn.Module:
        """A :attr:`DENSE` module computing the same function (kernel reconstructed from the factors)."""
        ref = self.factors[0]
        dense = self.DENSE(**self._dense_arguments(self), device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.dense_weight())
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    def _load_dense(self, module: nn.Module, init: str | None) -> None:
        init = "decompose" if init is None else init
        if init not in INITS:
            raise ValueError(f"{type(self).__name__}.from_dense: init must be one of {INITS}, got {init!r}")
        with torch.no_grad():
            if init == "decompose":
                weight = module.weight.detach().to(torch.float64)
                values = self.format_object.decompose(weight, self.geometry, self.ranks)
                for p, v in zip(self.factors, values, strict=True):
                    p.copy_(v.to(dtype=p.dtype, device=p.device))
            if self.bias is not None and module.bias is not None:
                self.bias.copy_(module.bias.detach())
            elif self.bias is not None:
                self.bias.zero_()

    # ------------------------------------------------------------------ planning / forward
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plans"] = {}
        state["_kernel_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_inference_modes", {})
        state.setdefault("_kernel_cache", None)
        super().__setstate__(state)

    def _apply(self, fn: Any, recurse: bool = True) -> TensorialLayer:  # .to(), .double(), ...: new plans
        self._clear_caches()
        return super()._apply(fn, recurse)

    def _clear_caches(self) -> None:
        self._plans = {}
        self._inference_modes = {}
        self._kernel_cache = None

    def _factor_list(self) -> list[torch.Tensor]:
        """The factors, in order (iterating the ``ParameterList`` itself converts every index to a
        string key: slow at a few microseconds per call of a small layer)."""
        return list(self.factors._parameters.values())  # type: ignore[arg-type]

    def _needs_grad(self, factors: Sequence[torch.Tensor] | None = None) -> bool:
        """Whether this call records autograd through the factors (then nothing is cached)."""
        if not torch.is_grad_enabled():
            return False
        return any(p.requires_grad for p in (self._factor_list() if factors is None else factors))

    def _weight(self, factors: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The dense kernel for this call: rebuilt under autograd, otherwise cached.

        The cache is keyed by every factor's storage address and ``_version`` counter, which any
        in-place change through the parameter (optimizer step, ``copy_``, ``load_state_dict``)
        increments. Writing through ``p.data`` bypasses the counter: call ``layer._clear_caches()``
        after such an edit.
        """
        factors = self._factor_list() if factors is None else factors
        if torch.compiler.is_compiling() or torch.compiler.is_exporting() or self._needs_grad(factors):
            return self.dense_weight()
        key = tuple((p.data_ptr(), p._version) for p in factors)
        cached = self._kernel_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            weight = self.dense_weight().contiguous()
        self._kernel_cache = (key, weight)
        return weight

    @staticmethod
    def _symbolic(shape: Sequence[Any]) -> bool:
        """Whether a shape holds symbolic sizes (``torch.export`` with dynamic dims, e.g. ONNX export
        with a dynamic batch): such calls take the batch-independent ``"dense"`` evaluation, which
        needs no per-shape plan."""
        return any(not isinstance(d, int) for d in shape)

    def _mode_for(
        self, folded: tuple[int, ...], plan: Plan, factors: Sequence[torch.Tensor] | None = None
    ) -> str:
        """``"factors"`` or ``"dense"`` for this call (:attr:`Plan.inference_mode` without autograd)."""
        if self._needs_grad(factors):
            return plan.mode
        return self._no_grad_mode(folded, plan)

    def _no_grad_mode(self, folded: tuple[int, ...], plan: Plan) -> str:
        if self._evaluation != "auto":
            return plan.mode
        return self._inference_modes.get(folded, plan.inference_mode)

    def inference_mode(self, input_shape: Sequence[int]) -> str:
        """The evaluation (``"factors"`` or ``"dense"``) used without autograd for inputs of
        ``input_shape``: the one :meth:`set_inference_mode` forced, else the cost model's."""
        batched = self._batched_shape(tuple(input_shape))
        return self._no_grad_mode(self._folded_shape(batched), self.plan(batched))

    def set_inference_mode(self, input_shape: Sequence[int], mode: str | None) -> None:
        """Force the evaluation used without autograd for inputs of ``input_shape`` (``None``: the
        cost model's :attr:`Plan.inference_mode` again). Used by :func:`tnn.nn.optimize_for_inference`."""
        folded = self._folded_shape(self._batched_shape(tuple(input_shape)))
        if mode is None:
            self._inference_modes.pop(folded, None)
        elif mode not in ("factors", "dense"):
            raise ValueError(f"inference mode must be 'factors' or 'dense', got {mode!r}")
        else:
            self._inference_modes[folded] = mode

    def _conv_options(self) -> dict[str, Any]:
        return {}

    def _folded_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def _dense_op_spec(self, x_shape: tuple[int, ...]) -> tuple[str, list[tuple[int, ...]]]:
        """``conv_einsum`` string and shapes of the equivalent dense op (for its cost only)."""
        raise NotImplementedError

    def _make_plan(
        self, folded: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> tuple[Plan, Any]:
        from tnn.algebra import conv_einsum_expression, conv_einsum_path

        fmt = self.format_object
        shapes = [tuple(p.shape) for p in self.factors]
        opts = self._conv_options()
        _, info = conv_einsum_path(self.spec, folded, *shapes, optimize="optimal", **opts)
        _, rec = conv_einsum_path(fmt.kernel_equation(self.geometry, self.ranks), *shapes, optimize="optimal")
        dense_spec, dense_shapes = self._dense_op_spec(folded)
        _, dense = conv_einsum_path(dense_spec, *dense_shapes, optimize="optimal", **opts)
        factors_flops = int(info.opt_flops)
        dense_flops = int(rec.opt_flops) + int(dense.opt_flops)
        factors_cost = factors_flops + ELEMENT_COST * sum(st.size for st in info.steps)
        kernel_size = math.prod(self.geometry.weight_shape)
        out_size = dense.steps[-1].size if dense.steps else dense.largest_intermediate
        dense_cost = dense_flops + ELEMENT_COST * (sum(st.size for st in rec.steps) + kernel_size + out_size)
        cached_cost = int(dense.opt_flops) + ELEMENT_COST * out_size + STEP_COST
        if self._evaluation == "auto":
            mode = "factors" if factors_cost <= dense_cost else "dense"
            per_call = factors_cost + STEP_COST * len(info.steps)
            inference = "factors" if per_call <= cached_cost else "dense"
        else:
            mode = inference = self._evaluation
        # the plan of conv_einsum_path above is cached: this only wraps it
        expr = conv_einsum_expression(self.spec, folded, *shapes, optimize="optimal", **opts)
        plan = Plan(mode, factors_flops, dense_flops, factors_cost, dense_cost, inference, cached_cost)
        return plan, expr

    def _plan_for(
        self, folded: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> tuple[Plan, Any]:
        key = (folded, dtype, device)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = self._make_plan(folded, dtype, device)
        return found

    def plan(self, input_shape: Sequence[int]) -> Plan:
        """The :class:`Plan` used for inputs of ``input_shape`` (a batch of 1 if the batch is omitted)."""
        folded = self._folded_shape(self._batched_shape(tuple(input_shape)))
        ref = self.factors[0]
        return self._plan_for(folded, ref.dtype, ref.device)[0]

    def flops(self, input_shape: Sequence[int]) -> int:
        """Planned FLOPs of the forward pass for ``input_shape`` (without bias), in the algebra's cost
        model; the batch may be omitted (then 1)."""
        return self.plan(input_shape).flops

    def _batched_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"{self._dims_repr()}, format={self.format!r}, ranks={self.ranks}, "
            f"rate={self.compression_rate:.4g}, bias={self.bias is not None}"
        )

    def _dims_repr(self) -> str:
        raise NotImplementedError


def check_size(owner: str, name: str, value: Any) -> int:
    """A positive int argument (channels, features, groups); TypeError / ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be a positive int, got {value!r}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value}")
    return value


def check_input(owner: str, x: Any) -> None:
    """The layer input must be a tensor (TypeError naming the type otherwise)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: input must be a torch.Tensor, got {type(x).__name__}")


def check_optional_rate(rate: float | None) -> float | None:
    return None if rate is None else check_rate(rate)
