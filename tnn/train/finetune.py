"""End-to-end fine-tuning: cross-entropy, optionally distilled from the pretrained network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import torch
import torch.nn.functional as F
from torch import nn

from tnn.train.history import History
from tnn.train.loop import LoopOptions, Phase, adam, run_phases, sgd, steps_for


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch (Hinton et al.)."""
    t = float(temperature)
    log_p = F.log_softmax(student_logits / t, dim=1)
    q = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean", log_target=True) * (t * t)


def finetune(
    model: nn.Module,
    dataset: Any,
    *,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    freeze_bn: bool = False,
    lr_factor: Callable[[int], float] | None = None,
    **loop: Unpack[LoopOptions],
) -> History:
    """Train all parameters of ``model`` end to end on labelled data.

    The loss is cross-entropy, or with a ``teacher``
    ``(1 - alpha) · CE(student, y) + alpha · T² · KL(teacher/T ‖ student/T)``.

    Parameters
    ----------
    model : nn.Module
        Trained in place; outputs logits ``(B, classes)``.
    dataset : Dataset
        Samples ``(x, y)`` with integer labels.
    teacher : nn.Module, optional
        Pretrained network for knowledge distillation (eval mode, not trained).
    temperature, alpha : float
        Distillation temperature ``T`` and weight ``alpha`` in ``[0, 1]``.
    steps, epochs : int / float
        Budget (give exactly one).
    optimizer : {"sgd", "adam"}
        SGD with ``momentum`` and ``weight_decay``, or Adam.
    lr : float
    freeze_bn : bool
        Keep the model in eval mode (batch-norm statistics frozen) while training.
    lr_factor : callable, optional
        Learning-rate schedule ``lr_factor(step) -> factor`` (see :class:`tnn.train.loop.Phase`).
    **loop
        :class:`tnn.train.loop.LoopOptions`: ``seed``, ``device``, ``checkpoint``, ``callbacks``,
        ``eval_fn``, ``progress``, ``max_steps``.

    Returns
    -------
    History
    """
    device = torch.device(loop.get("device", "cpu"))
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    n_steps = steps_for(len(dataset), batch_size, steps, epochs)

    def loss(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(out, y)
        if teacher is None or alpha == 0.0:
            return ce
        with torch.no_grad():
            t_logits = teacher(x)
        return (1.0 - alpha) * ce + alpha * distillation_loss(out, t_logits, temperature)

    make = adam(lr) if optimizer == "adam" else sgd(lr, momentum, weight_decay)
    phase = Phase(name="finetune", module=model, loss=loss,
                  params=[p for p in model.parameters()], steps=n_steps, make_optimizer=make,
                  train_mode=not freeze_bn, lr_factor=lr_factor)
    checkpoint = loop.get("checkpoint")
    if checkpoint is not None:
        loop["checkpoint"] = checkpoint.with_metadata(kind="finetune")
    return run_phases(model, [phase], dataset, batch_size=batch_size, **loop)
