"""Inference mode of the tensorial layers: the faster evaluation per layer and input shape, measured.

Without autograd every :class:`~tnn.nn.TensorialConv2d` / :class:`~tnn.nn.TensorialLinear` already
reuses a cached dense kernel (rebuilt only after its factors change) and picks, per input shape, the
cheaper of factor-by-factor evaluation and that kernel by the cost model (:attr:`Plan.inference_mode`).
:func:`optimize_for_inference` replaces the cost model's guess by timing both evaluations on the
layer's real input.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tnn.nn._tensorial import TensorialLayer

__all__ = ["optimize_for_inference", "layer_inputs", "median_times", "INFERENCE_MODES"]

INFERENCE_MODES = ("factors", "dense")
#: timing budget per evaluation and cap on repetitions of :func:`optimize_for_inference`
MIN_SECONDS = 0.02
MAX_REPS = 50


def median_times(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Median wall time of each function over interleaved runs, after one warm-up run each.

    At least ``reps`` runs; more (up to :data:`MAX_REPS`) for fast functions, so that each function
    is timed for about :data:`MIN_SECONDS` in all (sub-millisecond calls are the noisiest).
    """
    t0 = time.perf_counter()
    for fn in fns.values():
        fn()
    warm = (time.perf_counter() - t0) / len(fns)
    reps = max(reps, min(MAX_REPS, int(MIN_SECONDS / max(warm, 1e-6))))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def layer_inputs(model: nn.Module, example_input: Any) -> dict[str, tuple[TensorialLayer, torch.Tensor]]:
    """Run ``model(example_input)`` once (no grad) and return each tensorial layer's first input.

    Returns
    -------
    dict
        ``name -> (layer, input)`` in the order the layers are first called (layers that never run are
        absent).
    """
    captured: dict[str, tuple[TensorialLayer, torch.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, TensorialLayer):

            def hook(mod: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
                if name not in captured and args and isinstance(args[0], torch.Tensor):
                    captured[name] = (mod, args[0].detach())  # type: ignore[assignment]

            handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    return captured


def optimize_for_inference(
    model: nn.Module, example_input: Any, *, measure: bool = True, reps: int = 5
) -> dict[str, str]:
    """Prepare a (compressed) model for fast inference on inputs shaped like ``example_input``.

    Puts ``model`` in eval mode, runs it once on ``example_input`` to see each tensorial layer's input
    shape, and for every layer in ``evaluation="auto"`` times its two evaluations without autograd —
    factor by factor (``"factors"``) and one dense op with the cached kernel (``"dense"``) — on that
    input, keeping the faster one for that shape. Results are exact either way; only speed differs.
    Training again (autograd on) uses the training plan; a changed factor only rebuilds the cached
    kernel. Calling it again (e.g. for another batch size) adds or replaces choices.

    Parameters
    ----------
    model : nn.Module
        Any module containing :class:`~tnn.nn.TensorialConv2d` / :class:`~tnn.nn.TensorialLinear`.
    example_input : Tensor (or what ``model`` takes as its one argument)
        An input of the deployment shape (batch size included).
    measure : bool
        ``False``: keep the cost model's choice (:attr:`Plan.inference_mode`), only warm the caches.
    reps : int
        Minimum interleaved timed repetitions per evaluation (the median is compared); fast layers
        get more, up to about 20 ms of timing per evaluation.

    Returns
    -------
    dict
        Module name -> the chosen evaluation, ``"factors"`` or ``"dense"``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize_for_inference expects an nn.Module, got {type(model).__name__}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    model.eval()
    chosen: dict[str, str] = {}
    for name, (layer, x) in layer_inputs(model, example_input).items():
        shape = tuple(x.shape)
        if layer.evaluation != "auto":
            chosen[name] = layer.evaluation
            continue
        if not measure:
            layer.set_inference_mode(shape, None)
            chosen[name] = layer.plan(shape).inference_mode
            continue

        def run(mode: str, layer: TensorialLayer = layer, x: torch.Tensor = x, shape: tuple = shape) -> None:
            layer.set_inference_mode(shape, mode)
            with torch.no_grad():
                layer(x)

        times = median_times({m: (lambda m=m: run(m)) for m in INFERENCE_MODES}, reps)
        best = min(INFERENCE_MODES, key=times.__getitem__)
        layer.set_inference_mode(shape, best)
        chosen[name] = best
    return chosen
