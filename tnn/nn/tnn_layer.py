"""A learnable layer defined by any ``conv_einsum`` string over a high-order input.

:class:`TNNLayer` is the general tensorial layer of the paper (Su et al., §3): its forward pass is one
generalized tensor operation (contractions, partial outer products, convolutions) between the input and
one or more learnable kernels, followed by a bias and an optional nonlinearity.

Example: a "tensorial dense layer" mapping a (4, 7, 4, 7) input to a (6, 6, 6, 6) output as a sum of
``z`` Kronecker products::

    TNNLayer("b i j k l, i p z, j q z, k r z, l s z -> b p q r s",
             sizes=dict(i=4, j=7, k=4, l=7, p=6, q=6, r=6, s=6, z=4))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tnn.algebra import conv_einsum_expression, parse_spec

__all__ = ["TNNLayer"]


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class TNNLayer(nn.Module):
    r"""A layer ``y = activation(conv_einsum(spec, x, K_1, ..., K_n) + bias)``.

    Parameters
    ----------
    spec : str
        A ``conv_einsum`` string (see :func:`tnn.conv_einsum`; spaces are ignored). The **first** operand
        is the layer's input ``x``; every further operand is a learnable kernel. Indices after ``|`` are
        convolution indices: the input is the signal, the kernels carrying the index are filters applied
        like the weight of :func:`torch.nn.functional.conv2d` (cross-correlation).
    sizes : mapping of str to int
        The size of every index that occurs in a kernel (for a convolution index: the filter length).
        Indices that occur only in the input take their size from the input at call time; give them here
        too when they are summed out, since the initialisation needs them.
    bias : bool or str, default True
        ``True``: a bias over the output's indices that some kernel carries and that are not convolution
        indices (e.g. ``"pqrs"`` above; ``"gt"`` for ``"bgshw,gtshw->bgthw|hw"``), broadcast over the
        rest (batch, spatial). A string of output indices chooses them explicitly; ``False`` for none.
        The bias starts at zero.
    activation : callable, optional
        Applied after the bias (e.g. ``torch.relu`` or an ``nn.Module``).
    padding, stride, dilation, circular
        Convolution options, passed to the algebra (an int / str for every convolution index, a
        sequence in the order listed after ``|``, or a dict keyed by index letter).
    gain : float, default 1.0
        Initialisation gain (e.g. ``sqrt(2)`` before a ReLU).
    optimize : str, default "optimal"
        Path optimizer of the algebra.
    device, dtype
        Where and how to create the kernels.

    Notes
    -----
    Initialisation is variance-preserving: every kernel entry is drawn i.i.d. from
    :math:`N(0, \sigma^2)` with :math:`\sigma^{2n} = \mathrm{gain}^2 / \mathrm{fan\_in}` for ``n``
    kernels, where ``fan_in`` is the number of products summed into one output entry: the product of
    the sizes of all summed indices and, for each convolution index, of the lengths of its filters.
    For an input with i.i.d. zero-mean entries of variance :math:`v` the output entries then have
    variance :math:`\mathrm{gain}^2 v` (away from zero padding).

    The evaluation plan (:func:`tnn.conv_einsum_expression`) is built once per input shape and cached;
    the cache is not part of the ``state_dict`` and is dropped on pickling.

    Attributes
    ----------
    kernels : nn.ParameterList
        The kernels, in spec order; kernel ``n`` has the shape of spec operand ``n + 1``.
    bias : nn.Parameter or None
        Shape ``[sizes[c] for c in bias_indices]``.
    bias_indices : str
    fan_in : int
    """

    def __init__(
        self,
        spec: str,
        sizes: Mapping[str, int],
        *,
        bias: bool | str = True,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        padding: Any = 0,
        stride: Any = 1,
        dilation: Any = 1,
        circular: Any = False,
        gain: float = 1.0,
        optimize: str = "optimal",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        parsed = parse_spec(spec)
        if parsed.num_operands < 2:
            raise ValueError(
                f"TNNLayer spec {spec!r} has {parsed.num_operands} operand; it needs the input and at least "
                "one kernel (e.g. 'bi,ij->bj')"
            )
        if not isinstance(sizes, Mapping):
            raise TypeError(f"sizes must be a mapping from index letter to size, got {type(sizes).__name__}")
        letters = set("".join(parsed.inputs))
        for key, value in sizes.items():
            if not isinstance(key, str) or key not in letters:
                raise ValueError(f"sizes has index {key!r} which does not occur in spec {spec!r}")
            if not _is_size(value):
                raise ValueError(f"size of index {key!r} must be a positive int, got {value!r}")
        kernel_terms = parsed.inputs[1:]
        for pos, term in enumerate(kernel_terms, start=1):
            missing = [c for c in dict.fromkeys(term) if c not in sizes]
            if missing:
                raise ValueError(
                    f"sizes lacks index {missing[0]!r} of kernel operand {pos} ({term!r}) of spec {spec!r}; "
                    "every kernel index needs a size"
                )
        if not callable(activation) and activation is not None:
            raise TypeError(f"activation must be callable or None, got {type(activation).__name__}")
        if not isinstance(gain, int | float) or not math.isfinite(gain) or gain <= 0:
            raise ValueError(f"gain must be a finite positive number, got {gain!r}")

        self.spec = str(parsed)
        self.parsed = parsed
        self.sizes = {k: int(v) for k, v in sizes.items()}
        self.options = {"padding": padding, "stride": stride, "dilation": dilation, "circular": circular}
        self.optimize = optimize
        self.activation = activation
        self.gain = float(gain)
        self.fan_in = self._fan_in()

        factory = {"device": device, "dtype": dtype}
        self.kernels = nn.ParameterList(
            nn.Parameter(torch.empty(*(self.sizes[c] for c in term), **factory)) for term in kernel_terms
        )
        self.bias_indices = self._bias_indices(bias)
        if self.bias_indices is None:
            self.register_parameter("bias", None)
        else:
            shape = tuple(self.sizes[c] for c in self.bias_indices)
            self.bias = nn.Parameter(torch.empty(shape, **factory))
        self._plans: dict[tuple[int, ...], Callable[..., torch.Tensor]] = {}
        self.reset_parameters()

    # ------------------------------------------------------------------ construction helpers
    def _fan_in(self) -> int:
        parsed = self.parsed
        fan = 1
        for c in dict.fromkeys("".join(parsed.inputs)):
            if c in parsed.conv:
                for pos in parsed.filters_of(c):
                    fan *= self.sizes[c] if pos > 0 else 1
            elif c not in parsed.output:
                if c not in self.sizes:
                    raise ValueError(
                        f"index {c!r} of spec {self.spec!r} is summed out of the input only; give its size "
                        "in sizes (the variance-preserving initialisation needs it)"
                    )
                fan *= self.sizes[c]
        return fan

    def _bias_indices(self, bias: bool | str) -> str | None:
        parsed = self.parsed
        if bias is False or bias is None:
            return None
        kernel_letters = set("".join(parsed.inputs[1:]))
        if bias is True:
            return "".join(c for c in parsed.output if c in kernel_letters and c not in parsed.conv)
        if not isinstance(bias, str):
            raise TypeError(f"bias must be a bool or a string of output indices, got {type(bias).__name__}")
        for c in bias:
            if c not in parsed.output or c in parsed.conv:
                raise ValueError(
                    f"bias index {c!r} must be a non-convolution index of the output {parsed.output!r} "
                    f"(convolution indices: {''.join(parsed.conv)!r})"
                )
            if c not in self.sizes:
                raise ValueError(f"bias index {c!r} needs a size in sizes")
            if bias.count(c) > 1:
                raise ValueError(f"bias index {c!r} is repeated in {bias!r}")
        return bias

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Variance-preserving re-initialisation of the kernels (see Notes); the bias is set to zero."""
        n = len(self.kernels)
        std = (self.gain**2 / self.fan_in) ** (1.0 / (2 * n))
        with torch.no_grad():
            for kernel in self.kernels:
                kernel.normal_(0.0, std, generator=generator)
            if self.bias is not None:
                self.bias.zero_()

    # ------------------------------------------------------------------ forward
    def _plan(self, shape: tuple[int, ...]) -> Callable[..., torch.Tensor]:
        plan = self._plans.get(shape)
        if plan is None:
            term = self.parsed.inputs[0]
            if len(shape) != len(term):
                raise ValueError(
                    f"TNNLayer input has {len(shape)} dims {shape}, but the input term {term!r} of spec "
                    f"{self.spec!r} has {len(term)} indices"
                )
            for c, n in zip(term, shape, strict=True):
                if c in self.sizes and c not in self.parsed.conv and self.sizes[c] != n:
                    raise ValueError(
                        f"input index {c!r} has size {n} but the layer was built with size {self.sizes[c]} "
                        f"(input shape {shape}, spec {self.spec!r})"
                    )
            shapes = [shape, *(tuple(k.shape) for k in self.kernels)]
            plan = conv_einsum_expression(self.spec, *shapes, optimize=self.optimize, **self.options)
            self._plans[shape] = plan
        return plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x : Tensor
            Shape matching the spec's first term (index sizes of kernel-shared, non-convolution indices
            must equal ``sizes``).

        Returns
        -------
        Tensor
            Indexed by the spec's output term.
        """
        y = self._plan(tuple(x.shape))(x, *self.kernels)
        if self.bias is not None:
            out = self.parsed.output
            view = [self.sizes[c] if c in self.bias_indices else 1 for c in out]
            order = sorted(self.bias_indices, key=out.index)
            bias = self.bias.permute(*(self.bias_indices.index(c) for c in order)) if order else self.bias
            y = y + bias.reshape(view)
        if self.activation is not None:
            y = self.activation(y)
        return y

    # ------------------------------------------------------------------ housekeeping
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plans"] = {}
        return state

    def extra_repr(self) -> str:
        shapes = ", ".join(str(tuple(k.shape)) for k in self.kernels)
        text = f"{self.spec!r}, kernels=[{shapes}], bias={self.bias_indices!r}"
        if self.activation is not None:
            text += f", activation={getattr(self.activation, '__name__', self.activation)!r}"
        return text
