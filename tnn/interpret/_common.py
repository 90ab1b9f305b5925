"""Helpers shared by the design modules: factor hand-over to/from ``TensorialConv2d`` and ``TNNLayer``.

Every design writes its factors with *semantic* letters — ``s`` input channels, ``t`` output channels,
``h``/``w`` kernel rows/columns — plus its own rank letters. A format's network (``tnn.formats``) uses
the same semantic roles with its own rank letters; :func:`_letter_map` matches the two by the semantic
letters each factor carries, so the designs never depend on a format's factor order or rank letters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tnn.algebra import normalize_conv_options, parse_spec
from tnn.interpret.stages import ConvStage, Stage
from tnn.nn.conv import TensorialConv2d
from tnn.nn.tnn_layer import TNNLayer

SEMANTIC = "sthw"


def conv_stages(stages: Sequence[Stage], count: int, design: str) -> list[ConvStage]:
    """Check that ``stages`` are exactly ``count`` convolutions; return them."""
    if len(stages) != count or not all(isinstance(st, ConvStage) for st in stages):
        kinds = ", ".join(type(st).__name__ for st in stages)
        raise ValueError(f"a {design} is {count} Conv2d layer(s) (BatchNorm folded); got stages [{kinds}]")
    return list(stages)  # type: ignore[arg-type]


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _letter_map(mine: Sequence[str], theirs: Sequence[str], semantic: dict[str, str]) -> dict[str, str]:
    """Map my letters to theirs; ``semantic`` maps my semantic letters to theirs."""
    inverse = {v: k for k, v in semantic.items()}
    pairs = []
    for their in theirs:
        key = frozenset(inverse[c] for c in their if c in inverse)
        matches = [m for m in mine if frozenset(c for c in m if c in SEMANTIC) == key]
        if len(matches) != 1:
            raise ValueError(
                f"cannot match factor {their!r} of the format to the design's factors {list(mine)}"
            )
        pairs.append((matches[0], their))
    mapping = dict(semantic)
    changed = True
    while changed:
        changed = False
        for m, their in pairs:
            free_m = [c for c in m if c not in mapping]
            free_t = [c for c in their if c not in mapping.values()]
            if len(free_m) == 1 and len(free_t) == 1:
                mapping[free_m[0]] = free_t[0]
                changed = True
    if any(c not in mapping for m in mine for c in m):
        raise ValueError(f"cannot match the rank letters of {list(mine)} to the format's {list(theirs)}")
    return mapping


def _semantic(layer: Any) -> dict[str, str]:
    ins, outs, _ = layer.geometry.letters()
    if layer.geometry.m != 1 or layer.geometry.groups != 1:
        raise ValueError(f"expected a baseline-format layer with groups=1, got {layer.geometry.describe()}")
    return {"s": ins, "t": outs, "h": "h", "w": "w"}


def to_tensorial(
    format: str,
    factors: Sequence[tuple[str, torch.Tensor]],
    conv: dict[str, Any],
    in_channels: int,
    out_channels: int,
    bias: torch.Tensor | None,
) -> nn.Module:
    """A ``TensorialConv2d`` of ``format`` holding ``factors`` (given with semantic letters).

    ``conv`` holds ``kernel_size``, ``stride``, ``padding``, ``dilation`` and ``padding_mode``
    (see :func:`conv_geometry`).
    """
    ranks = {c: t.shape[term.index(c)] for term, t in factors for c in term if c not in SEMANTIC}
    sizes = list(ranks.values())
    last_error: Exception | None = None
    for order in dict.fromkeys(itertools.permutations(sizes)):
        try:
            layer = TensorialConv2d(
                in_channels,
                out_channels,
                format=format,
                rank=tuple(order),
                bias=bias is not None,
                dtype=factors[0][1].dtype,
                **conv,
            )
        except ValueError as err:
            last_error = err
            continue
        net = layer.format_object.network(layer.geometry, layer.ranks)
        mapping = _letter_map([t for t, _ in factors], net.factors, _semantic(layer))
        by_term = dict(factors)
        new = []
        for their in net.factors:
            mine = next(t for t in by_term if {mapping[c] for c in t} == set(their))
            new.append(torch.einsum(f"{''.join(mapping[c] for c in mine)}->{their}", by_term[mine]))
        if [tuple(t.shape) for t in new] != [tuple(p.shape) for p in layer.factors]:
            continue
        with torch.no_grad():
            for p, t in zip(layer.factors, new, strict=True):
                p.copy_(t)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer
    raise ValueError(f"the design's ranks {sizes} do not fit format {format!r}: {last_error}")


def conv_geometry(conv: ConvStage) -> dict[str, Any]:
    """The ``TensorialConv2d`` keyword arguments reproducing ``conv``'s window."""
    return {
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "padding_mode": "circular" if conv.circular else "zeros",
    }


def from_tensorial(layer: Any, format: str, terms: Sequence[str]) -> list[torch.Tensor]:
    """The factors of a ``TensorialConv2d`` in ``format``, rewritten with the design's letters ``terms``."""
    if not isinstance(layer, TensorialConv2d):
        raise TypeError(f"expected a TensorialConv2d, got {type(layer).__name__}")
    if layer.format != format:
        raise ValueError(f"expected a TensorialConv2d in format {format!r}, got format {layer.format!r}")
    require(layer.groups == 1, f"expected groups=1, got groups={layer.groups}")
    require(
        layer.padding_mode in ("zeros", "circular"),
        f"padding_mode {layer.padding_mode!r} has no Conv2d-chain equivalent here (use zeros/circular)",
    )
    net = layer.format_object.network(layer.geometry, layer.ranks)
    mapping = _letter_map(terms, net.factors, _semantic(layer))
    out = []
    for mine in terms:
        their = next(t for t in net.factors if set(t) == {mapping[c] for c in mine})
        tensor = layer.factors[net.factors.index(their)].detach()
        out.append(torch.einsum(f"{their}->{''.join(mapping[c] for c in mine)}", tensor))
    return out


def tensorial_conv_args(layer: Any) -> dict[str, Any]:
    """``stride``/``padding``/``dilation``/``padding_mode`` of a ``TensorialConv2d`` for ``nn.Conv2d``."""
    return {
        "stride": tuple(layer.stride),
        "padding": layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),
        "dilation": tuple(layer.dilation),
        "padding_mode": layer.padding_mode,
    }


def new_conv(weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1, **kwargs: Any) -> nn.Conv2d:
    """An ``nn.Conv2d`` holding ``weight`` ``(T, S/groups, kh, kw)`` and ``bias``."""
    t, s_per_group, kh, kw = weight.shape
    conv = nn.Conv2d(
        s_per_group * groups,
        t,
        (kh, kw),
        groups=groups,
        bias=bias is not None,
        dtype=weight.dtype,
        device=weight.device,
        **kwargs,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def new_tnn_layer(
    spec: str,
    kernels: Sequence[torch.Tensor],
    bias: torch.Tensor | None,
    options: dict[str, Any] | None = None,
    bias_indices: str | bool = True,
) -> TNNLayer:
    """A :class:`TNNLayer` for ``spec`` holding ``kernels`` and ``bias`` (shaped like the layer's bias)."""
    parsed = parse_spec(spec)
    sizes: dict[str, int] = {}
    for term, k in zip(parsed.inputs[1:], kernels, strict=True):
        sizes.update(zip(term, k.shape, strict=True))
    layer = TNNLayer(
        spec,
        sizes,
        bias=bias_indices if bias is not None else False,
        dtype=kernels[0].dtype,
        **(options or {}),
    )
    with torch.no_grad():
        for p, k in zip(layer.kernels, kernels, strict=True):
            p.copy_(k)
        if bias is not None:
            layer.bias.copy_(bias.reshape(layer.bias.shape))
    return layer


def tnn_layer_conv_args(layer: TNNLayer, spec: str) -> dict[str, Any]:
    """Check that ``layer`` is a :class:`TNNLayer` for ``spec``; its options as ``nn.Conv2d`` kwargs."""
    if not isinstance(layer, TNNLayer):
        raise TypeError(f"expected a TNNLayer, got {type(layer).__name__}")
    if layer.spec != str(parse_spec(spec)):
        raise ValueError(f"expected a TNNLayer with spec {str(parse_spec(spec))!r}, got {layer.spec!r}")
    conv = layer.parsed.conv
    if not conv:
        return {}
    opts = normalize_conv_options(
        conv,
        layer.options["padding"],
        layer.options["stride"],
        layer.options["dilation"],
        layer.options["circular"],
    )
    padding = []
    for c, o in zip(conv, opts, strict=True):
        if isinstance(o.padding, str) or o.padding[0] != o.padding[1]:
            raise ValueError(
                f"padding {o.padding!r} of index {c!r} has no nn.Conv2d equivalent (use symmetric ints)"
            )
        padding.append(o.padding[0])
    circular = {o.circular for o in opts}
    require(len(circular) == 1, "circular padding must be the same on both spatial indices")
    return {
        "stride": tuple(o.stride for o in opts),
        "padding": tuple(padding),
        "dilation": tuple(o.dilation for o in opts),
        "padding_mode": "circular" if circular.pop() else "zeros",
    }
