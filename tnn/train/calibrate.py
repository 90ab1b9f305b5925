"""Data-fitted initialisation of a compressed network: fit each tensorial layer to the teacher's activations.

Right after :func:`tnn.compression.compress` every tensorial layer approximates its pretrained kernel
(``min ||W_hat - W||``); through a deep network the per-layer errors compound. :func:`fit_layers` refits the
tensorial layers one after the other in forward order, each on the input it actually receives from its
already-fitted compressed predecessors, so that each layer corrects the drift accumulated before it.

For one layer with unfolded input patches ``P`` of shape ``(K, M)`` (``K = S*kh*kw`` for a convolution,
``S`` for a linear layer, plus one row of ones when the layer has a bias; ``M`` = images x output
positions) and target outputs ``Y`` of shape ``(T, M)``, the objective is the weighted squared error

    E(W_hat) = sum_t w_t^2 ||W_hat[t] P - Y[t]||^2
             = sum_t w_t^2 (W_hat[t] G W_hat[t]^T - 2 W_hat[t] C[t]^T + ||Y[t]||^2),

with ``G = P P^T`` ``(K, K)`` and ``C = Y P^T`` ``(T, K)``. The statistics ``G``, ``C`` and ``||Y[t]||^2``
are accumulated over the calibration images in chunks (float32 products within a chunk, float64 sums;
memory: one chunk's activations), after which every optimisation step is exact and full-batch and costs
``O(T K^2)``, independent of the number of images. The layer's factors (and bias) are then optimised
with Adam on ``E``, the same recipe for every format; the best iterate is kept, so the error never
increases.

Ridge towards the pretrained kernel (``ridge = lambda > 0``): ``E + mu ||W_hat - W||^2`` with
``mu = lambda tr(G) / K`` (``lambda`` is relative to the mean input energy per patch entry), i.e. the
statistics ``G + mu I``, ``C + mu W``, ``||Y[t]||^2 + mu ||W[t]||^2`` (:func:`anchored`). Without it the
fit may buy a small output error with large kernel components in directions the calibration inputs
hardly excite (measured on ResNet-32, cp at rate 0.05: fitted kernels of 1-6x the pretrained norm),
which later training then has to undo.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tnn.nn.conv import TensorialConv2d
from tnn.nn.inference import layer_inputs
from tnn.nn.linear import TensorialLinear

__all__ = ["LayerStats", "anchored", "fit_layers", "forward_order", "layer_statistics", "fit_layer"]

TARGETS = ("output", "dense")
WEIGHTINGS = ("none", "bn")


class _Stop(Exception):
    """Raised by a forward hook to cut a forward pass short once the wanted activation is captured."""


@dataclass
class LayerStats:
    """Second-order statistics of one layer's calibration data (float64).

    Attributes
    ----------
    gram : Tensor ``(K, K)``
        ``P P^T`` of the unfolded inputs (with a trailing row of ones when the layer has a bias).
    cross : Tensor ``(T, K)``
        ``Y P^T``: targets against inputs.
    yy : Tensor ``(T,)``
        ``||Y[t]||^2`` per output channel.
    count : int
        ``M``, the number of input columns (images x output positions).
    """

    gram: torch.Tensor
    cross: torch.Tensor
    yy: torch.Tensor
    count: int


def tensorial_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every :class:`TensorialConv2d` / :class:`TensorialLinear` of ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (TensorialConv2d, TensorialLinear))]


def forward_order(model: nn.Module, names: Sequence[str], example: torch.Tensor) -> list[str]:
    """``names`` (tensorial layers) sorted by when they are first called in ``model(example)``; layers
    never called are dropped."""
    wanted = set(names)
    return [name for name in layer_inputs(model, example) if name in wanted]


def _capture(model: nn.Module, module: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """The input (``what="input"``) or output (``"output"``) of ``module`` in ``model(x)``, stopping there."""
    box: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        box.append(args[0] if what == "input" else out)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not box:
        raise RuntimeError("the layer was not called by the model's forward pass")
    return box[0].detach()


def _patches(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Unfolded input columns ``(K, M)`` of ``layer`` (float32), with a row of ones if it has a bias."""
    if isinstance(layer, TensorialConv2d):
        if layer.groups != 1:
            raise ValueError("fit_layers supports convolutions with groups=1 only")
        x = layer._pad_input(x)
        cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer._conv_pad,
                        stride=layer.stride)  # (N, K, L)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)
    else:
        cols = x.reshape(-1, x.shape[-1]).T
    cols = cols.to(torch.float32)
    if layer.bias is not None:
        cols = torch.cat([cols, cols.new_ones(1, cols.shape[1])])
    return cols


def _outputs(layer: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Layer outputs as columns ``(T, M)`` in the order of :func:`_patches` (float32)."""
    if isinstance(layer, TensorialConv2d):
        return y.transpose(0, 1).reshape(y.shape[1], -1).to(torch.float32)
    return y.reshape(-1, y.shape[-1]).T.to(torch.float32)


def _flat_weight(module: nn.Module) -> torch.Tensor:
    """Dense weight (and bias column) of a dense or tensorial layer as ``(T, K)`` float64."""
    if isinstance(module, (TensorialConv2d, TensorialLinear)):
        weight = module.dense_weight()
    else:
        weight = module.weight
    flat = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    bias = getattr(module, "bias", None)
    if bias is not None:
        flat = torch.cat([flat, bias.detach().to(torch.float64)[:, None]], dim=1)
    return flat


def layer_statistics(student: nn.Module, teacher: nn.Module, name: str, inputs: torch.Tensor, *,
                     batch_size: int = 128, target: str = "output", columns: int | None = None,
                     seed: int = 0) -> LayerStats:
    """Statistics of the fit of the student's layer ``name`` on ``inputs`` ``(N, C, H, W)``.

    The input ``P`` is what the student's layer receives in ``student(inputs)``; the target ``Y`` is the
    teacher's layer output in ``teacher(inputs)`` (``target="output"``: corrects the accumulated drift) or
    the teacher's dense layer applied to the student's input (``"dense"``). Both models run in eval mode.
    With ``columns``, about that many columns (image x output position) are drawn at random (without
    replacement, in proportion per chunk, generator seeded with ``seed``) instead of all of them: the
    cost of ``G`` is ``K^2`` per column.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    s_layer = student.get_submodule(name)
    t_layer = teacher.get_submodule(name)
    gen = torch.Generator().manual_seed(seed)
    gram = cross = yy = None
    count = 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size]
        p = _patches(s_layer, _capture(student, s_layer, x, "input"))
        keep = None
        if columns is not None and columns * len(x) < p.shape[1] * len(inputs):
            k = max(1, round(columns * len(x) / len(inputs)))
            keep = torch.randperm(p.shape[1], generator=gen)[:k].to(p.device)
            p = p[:, keep]
        g = (p @ p.T).to(torch.float64)  # float32 product per chunk, float64 sum over chunks
        gram = g if gram is None else gram + g
        count += p.shape[1]
        if target == "output":
            y = _outputs(s_layer, _capture(teacher, t_layer, x, "output"))
            if keep is not None:
                y = y[:, keep]
            c, v = (y @ p.T).to(torch.float64), (y * y).sum(dim=1).to(torch.float64)
            cross = c if cross is None else cross + c
            yy = v if yy is None else yy + v
    assert gram is not None
    if target == "dense":
        w = _flat_weight(t_layer)
        cross = w @ gram
        yy = (cross * w).sum(dim=1)
    return LayerStats(gram, cross, yy, count)


def anchored(stats: LayerStats, weight: torch.Tensor, ridge: float) -> LayerStats:
    """Statistics of ``E + mu ||W_hat - W||^2`` with ``mu = ridge * tr(G) / K`` (see the module docstring).

    Parameters
    ----------
    stats : LayerStats
    weight : Tensor ``(T, K)``
        The anchor ``W``: the pretrained flat weight (with its bias column when the layer has a bias).
    ridge : float
        ``lambda >= 0``; 0 returns ``stats`` unchanged.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    if weight.shape != stats.cross.shape:
        raise ValueError(f"anchor weight of shape {tuple(weight.shape)} does not match the statistics' "
                         f"{tuple(stats.cross.shape)}")
    if ridge == 0:
        return stats
    w = weight.to(torch.float64)
    k = stats.gram.shape[0]
    mu = ridge * float(torch.diagonal(stats.gram).sum()) / k
    gram = stats.gram + mu * torch.eye(k, dtype=torch.float64, device=stats.gram.device)
    return LayerStats(gram, stats.cross + mu * w, stats.yy + mu * (w * w).sum(dim=1), stats.count)


def bn_scale(model: nn.Module, name: str) -> torch.Tensor | None:
    """``|gamma| / sqrt(running_var + eps)`` of the BatchNorm that follows layer ``name``, if any.

    The follower is found by name: ``...convN`` -> ``...bnN`` (the torchvision / CIFAR ResNet convention);
    ``None`` when there is no such ``BatchNorm2d``.
    """
    parent, _, child = name.rpartition(".")
    if not child.startswith("conv"):
        return None
    bn_name = (parent + "." if parent else "") + "bn" + child[len("conv"):]
    try:
        bn = model.get_submodule(bn_name)
    except AttributeError:
        return None
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None:
        return None
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return (gamma.abs() / torch.sqrt(bn.running_var + bn.eps)).to(torch.float64)


def _objective(w: torch.Tensor, stats: LayerStats, w2: torch.Tensor) -> torch.Tensor:
    """Weighted relative squared error ``E(W) / sum_t w_t^2 ||Y[t]||^2`` for flat weights ``(T, K)``."""
    per_row = ((w @ stats.gram) * w).sum(dim=1) - 2 * (w * stats.cross).sum(dim=1) + stats.yy
    return (w2 * per_row).sum() / (w2 * stats.yy).sum()


def fit_layer(layer: nn.Module, stats: LayerStats, *, steps: int = 300, lr: float = 3e-2,
              channel_weight: torch.Tensor | None = None) -> tuple[float, float]:
    """Fit a tensorial layer's factors and bias to ``stats`` with Adam; keep the best iterate.

    Parameters
    ----------
    layer : TensorialConv2d or TensorialLinear
        Modified in place (factors and bias only).
    stats : LayerStats
        From :func:`layer_statistics`.
    steps : int
        Full-batch Adam steps on the exact objective (cosine-decayed learning rate).
    lr : float
        Adam learning rate.
    channel_weight : Tensor ``(T,)``, optional
        ``w_t`` of the objective (default all ones).

    Returns
    -------
    (float, float)
        Relative error ``sqrt(E / sum_t w_t^2 ||Y[t]||^2)`` before and after.
    """
    fmt, geom, ranks = layer.format_object, layer.geometry, layer.ranks
    factors = [p.detach().to(torch.float64).clone().requires_grad_(True) for p in layer.factors]
    bias = None
    if layer.bias is not None:
        bias = layer.bias.detach().to(torch.float64).clone().requires_grad_(True)
    params = factors + ([bias] if bias is not None else [])
    t = stats.cross.shape[0]
    w2 = torch.ones(t, dtype=torch.float64)
    if channel_weight is not None:
        w2 = channel_weight.to(torch.float64) ** 2

    def flat() -> torch.Tensor:
        w = fmt.reconstruct(factors, geom, ranks).reshape(t, -1)
        return torch.cat([w, bias[:, None]], dim=1) if bias is not None else w

    with torch.no_grad():
        before = float(_objective(flat(), stats, w2))
    best, best_state = before, [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = _objective(flat(), stats, w2)
        value = float(loss.detach())
        if value < best and math.isfinite(value):
            best, best_state = value, [p.detach().clone() for p in params]
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        last = float(_objective(flat(), stats, w2))
        if last < best and math.isfinite(last):
            best, best_state = last, [p.detach().clone() for p in params]
        for p, v in zip(layer.factors, best_state[: len(factors)], strict=True):
            p.copy_(v.to(p.dtype))
        if bias is not None:
            layer.bias.copy_(best_state[-1].to(layer.bias.dtype))
    return math.sqrt(max(before, 0.0)), math.sqrt(max(best, 0.0))


def fit_layers(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor, *, steps: int = 300,
               lr: float = 3e-2, batch_size: int = 128, columns: int | None = 32768,
               target: str = "output", weighting: str = "bn", ridge: float = 0.0, progress: bool = False
               ) -> list[dict[str, Any]]:
    """Data-fitted initialisation: fit every tensorial layer of ``student`` to ``teacher``, in forward order.

    For each :class:`~tnn.nn.TensorialConv2d` / :class:`~tnn.nn.TensorialLinear` of the student (in the
    order the forward pass calls them), with the earlier layers already fitted: accumulate the statistics
    of the layer's input in ``student(inputs)`` and of the target (the output of the teacher's module of
    the same name in ``teacher(inputs)``), then minimise the (weighted) squared output error over that
    layer's factors and bias with ``steps`` exact full-batch Adam steps (see the module docstring). Only
    the tensorial layers' parameters change; the teacher is not modified. Both run in eval mode and are
    restored to their modes afterwards.

    Parameters
    ----------
    student : nn.Module
        The compressed network (e.g. from :func:`tnn.compression.compress`), modified in place.
    teacher : nn.Module
        The pretrained network; it must have a module of the same name and output shape for every
        tensorial layer of the student.
    inputs : Tensor ``(N, C, H, W)``
        Calibration images (training images, never validation or test), on the models' device.
    steps : int
        Adam steps per layer.
    lr : float
        Adam learning rate (cosine-decayed to 0 over ``steps``).
    batch_size : int
        Images per forward chunk while accumulating statistics (memory bound: one chunk's activations).
    columns : int or None
        Columns (image x output position) drawn at random per layer for the statistics; ``None``: all.
        The statistics cost ``K^2`` per column (``K = S*kh*kw``), the forward passes ``N`` images per layer.
    target : {"output", "dense"}
        ``"output"``: the teacher layer's output on the teacher's own input (corrects accumulated drift);
        ``"dense"``: the teacher's dense layer applied to the student's input.
    weighting : {"bn", "none"}
        ``"bn"``: weight each output channel by the scale ``|gamma| / sqrt(var + eps)`` of the BatchNorm that
        follows the layer (``convN`` -> ``bnN``), so the error is measured as the next layer sees it;
        layers without a following BatchNorm are unweighted.
    ridge : float
        ``lambda`` of the ridge towards the teacher layer's own kernel (:func:`anchored`; 0: none). The
        reported errors are those of the anchored objective.
    progress : bool
        Print one line per layer to stderr.

    Returns
    -------
    list of dict
        Per layer, in fitting order: ``name``, ``rel_error_before`` / ``rel_error_after`` (relative
        weighted output error on ``inputs`` just before / after fitting that layer), ``seconds_stats``,
        ``seconds_fit``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if steps < 0 or batch_size < 1:
        raise ValueError("steps must be >= 0 and batch_size >= 1")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    report: list[dict[str, Any]] = []
    try:
        names = [n for n, _ in tensorial_layers(student)]
        for name in forward_order(student, names, inputs[:1]):
            t0 = time.perf_counter()
            stats = layer_statistics(student, teacher, name, inputs, batch_size=batch_size, target=target,
                                     columns=columns)
            if ridge:
                anchor = _flat_weight(teacher.get_submodule(name)).to(stats.gram.device)
                if anchor.shape[1] + 1 == stats.cross.shape[1]:  # a bias in the student, none in the teacher
                    anchor = F.pad(anchor, (0, 1))
                stats = anchored(stats, anchor, ridge)
            t1 = time.perf_counter()
            scale = bn_scale(teacher, name) if weighting == "bn" else None
            before, after = fit_layer(student.get_submodule(name), stats, steps=steps, lr=lr,
                                      channel_weight=scale)
            t2 = time.perf_counter()
            row = {"name": name, "rel_error_before": before, "rel_error_after": after,
                   "seconds_stats": t1 - t0, "seconds_fit": t2 - t1}
            report.append(row)
            if progress:
                print(f"fit {name}: {before:.4f} -> {after:.4f} ({t1 - t0:.1f}+{t2 - t1:.1f} s)",
                      file=sys.stderr, flush=True)
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    return report
