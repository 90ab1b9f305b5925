"""Capturing stage outputs and splitting a model's parameters into stages.

A *stage boundary* is a module name; the stage output is that module's output (a forward hook). The
parameters of stage ``k`` are those of the modules that run before boundary ``k`` finishes and did not
belong to an earlier stage — found by tracing one forward pass, so any model built from standard
modules works, whatever its nesting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

#: Name of the implicit last stage whose output is the model output.
OUTPUT = "<output>"


class _Stop(Exception):
    """Raised by a boundary hook to end a forward pass early."""


class StageForward(nn.Module):
    """``StageForward(model, boundary)(x)`` is the output of module ``boundary`` when ``model(x)`` runs.

    The forward pass stops right after the boundary module (later modules do not run). With
    ``boundary == OUTPUT`` it is ``model(x)``.

    Parameters
    ----------
    model : nn.Module
    boundary : str
        A module name of ``model`` (as in ``named_modules``) or :data:`OUTPUT`.
    """

    def __init__(self, model: nn.Module, boundary: str) -> None:
        super().__init__()
        self.model = model
        self.boundary = boundary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == OUTPUT:
            return self.model(x)
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, _a: Any, out: Any) -> None:
            captured.append(out)
            raise _Stop

        handle = self.model.get_submodule(self.boundary).register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"stage boundary {self.boundary!r} did not run in the forward pass")
        out = captured[0]
        if not isinstance(out, torch.Tensor):
            kind = type(out).__name__
            raise TypeError(f"stage boundary {self.boundary!r} outputs {kind}, expected a tensor")
        return out


def check_boundaries(model: nn.Module, boundaries: Sequence[str]) -> list[str]:
    """Validate stage boundary names against ``model``; returns them as a list."""
    if isinstance(boundaries, str) or not all(isinstance(b, str) for b in boundaries):
        raise TypeError(f"stages must be a list of module names, got {boundaries!r}")
    names = {name for name, _ in model.named_modules() if name}
    unknown = [b for b in boundaries if b != OUTPUT and b not in names]
    if unknown:
        top = [n for n in names if "." not in n]
        raise ValueError(f"unknown stage module(s) {unknown}; top-level modules of the model: {sorted(top)}")
    if len(set(boundaries)) != len(boundaries):
        raise ValueError(f"stage boundaries repeat: {list(boundaries)}")
    return list(boundaries)


def split_parameters(
    model: nn.Module, boundaries: Sequence[str], example: torch.Tensor
) -> list[list[tuple[str, nn.Parameter]]]:
    """Parameters trained in each stage, found by tracing ``model(example)``.

    Parameters
    ----------
    model : nn.Module
    boundaries : list of str
        Stage boundaries in forward order; the last may be :data:`OUTPUT`.
    example : Tensor
        An input batch (only its forward pass is traced; no gradient).

    Returns
    -------
    list of list of (name, Parameter)
        One list per boundary. A module belongs to the first stage whose boundary finishes after the
        module starts. Parameters of modules that run after the last boundary, or never, are in no stage.

    Raises
    ------
    ValueError
        If the boundaries do not finish in the given order.
    """
    counter = [0]
    first_call: dict[str, int] = {}
    finish: dict[str, int] = {}
    handles = []
    modules = dict(model.named_modules())
    for name, mod in modules.items():
        def pre(_m: nn.Module, _a: Any, _name: str = name) -> None:
            counter[0] += 1
            first_call.setdefault(_name, counter[0])

        handles.append(mod.register_forward_pre_hook(pre))
    for b in boundaries:
        if b == OUTPUT:
            continue

        def post(_m: nn.Module, _a: Any, _o: Any, _name: str = b) -> None:
            counter[0] += 1
            finish.setdefault(_name, counter[0])

        handles.append(modules[b].register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    counter[0] += 1
    ends = []
    for b in boundaries:
        if b == OUTPUT:
            ends.append(counter[0])
        elif b not in finish:
            raise ValueError(f"stage boundary {b!r} did not run in the forward pass")
        else:
            ends.append(finish[b])
    if ends != sorted(ends):
        raise ValueError(f"stage boundaries {list(boundaries)} are not in forward order")
    out: list[list[tuple[str, nn.Parameter]]] = [[] for _ in boundaries]
    seen: set[int] = set()
    owned = []
    for name, mod in modules.items():
        # a parameter runs when its nearest called ancestor runs (e.g. factors held in a ParameterList)
        when = None
        probe = name
        while True:
            if probe in first_call:
                when = first_call[probe]
                break
            if not probe:
                break
            probe = probe.rpartition(".")[0]
        for pname, p in mod.named_parameters(recurse=False):
            owned.append((when, f"{name}.{pname}" if name else pname, p))
    # the root module "" always runs first: parameters owned directly by it go with the first stage
    for when, full, p in sorted((o for o in owned if o[0] is not None), key=lambda o: o[0]):
        stage = next((k for k, end in enumerate(ends) if when < end), None)
        if stage is None or id(p) in seen:
            continue
        seen.add(id(p))
        out[stage].append((full, p))
    return out
