"""Sequential training with teacher stage outputs cached once per run and shared by all its cells.

:func:`tnn.train.sequential_train` recomputes (or caches per call) the pretrained network's stage
outputs; a table trains many students against the same teacher on the same images, so the runner
computes each stage's targets once (float16, CPU, indexed by training-subset position) and builds the
same phases as :func:`tnn.train.sequential_train`: stage ``k`` trains the parameters of its modules with
Adam to minimise the MSE between the student's and the teacher's output at boundary ``k``, earlier
stages frozen, batch norm in eval mode.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tnn.experiments.budgets import Budget
from tnn.train import OUTPUT, History, Phase, StageForward, run_phases, split_parameters
from tnn.train.batches import fetch_batch
from tnn.train.loop import adam, steps_for


class TeacherTargets:
    """The teacher's output at each stage boundary for every training sample, computed on first use.

    Parameters
    ----------
    teacher : nn.Module
        The pretrained network (eval mode, never trained).
    dataset : Dataset
        The (un-augmented) training subset; targets are indexed by position in it.
    batch_size : int
        Batch size of the one-off teacher pass.
    device : device
    """

    def __init__(self, teacher: nn.Module, dataset: Any, batch_size: int = 256,
                 device: torch.device | str = "cpu") -> None:
        self.teacher = teacher
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.store: dict[str, torch.Tensor] = {}
        self.wall_s = 0.0

    def __call__(self, boundary: str) -> torch.Tensor:
        """Float16 tensor ``(n, *stage_output_shape)`` of the teacher's outputs at ``boundary``."""
        if boundary not in self.store:
            import time

            t0 = time.perf_counter()
            stage = StageForward(self.teacher.to(self.device).eval(), boundary)
            n = len(self.dataset)
            chunks = []
            with torch.no_grad():
                for start in range(0, n, self.batch_size):
                    x, _ = fetch_batch(self.dataset, torch.arange(start, min(n, start + self.batch_size)))
                    chunks.append(stage(x.to(self.device)).to("cpu", torch.float16))
            self.store[boundary] = torch.cat(chunks)
            self.wall_s += time.perf_counter() - t0
        return self.store[boundary]


def sequential_phases(
    student: nn.Module, teacher: nn.Module, dataset: Any, budget: Budget,
    targets: TeacherTargets | None = None, device: torch.device | str = "cpu",
) -> list[Phase]:
    """The phases of sequential training (one per stage of ``tnn.models.stages(teacher)``)."""
    from tnn.models import stages as default_stages

    device = torch.device(device)
    boundaries = list(default_stages(teacher))
    if boundaries[-1] != OUTPUT:
        boundaries.append(OUTPUT)
    example, _ = fetch_batch(dataset, torch.arange(min(2, len(dataset))))
    student.to(device)
    teacher.to(device).eval()
    groups = split_parameters(student, boundaries, example.to(device))
    if not groups[-1]:
        boundaries.pop()
        groups.pop()
    steps = steps_for(len(dataset), budget.batch_size, budget.steps_per_stage, budget.epochs_per_stage)
    phases = []
    for boundary, group in zip(boundaries, groups, strict=True):
        if targets is not None:
            def target(x: torch.Tensor, idx: torch.Tensor, _b: str = boundary) -> torch.Tensor:
                return targets(_b)[idx.cpu()].to(x.device, torch.float32)
        else:
            teacher_stage = StageForward(teacher, boundary)

            def target(x: torch.Tensor, idx: torch.Tensor, _t: nn.Module = teacher_stage) -> torch.Tensor:
                with torch.no_grad():
                    return _t(x)

        def loss(out: torch.Tensor, x: torch.Tensor, _y: torch.Tensor, idx: torch.Tensor,
                 _target: Any = target) -> torch.Tensor:
            return F.mse_loss(out, _target(x, idx))

        phases.append(Phase(
            name="output" if boundary == OUTPUT else boundary, module=StageForward(student, boundary),
            loss=loss, params=[p for _, p in group], steps=steps, make_optimizer=adam(budget.lr),
            train_mode=False,
        ))
    return phases


def train_sequential(student: nn.Module, teacher: nn.Module, dataset: Any, budget: Budget, *,
                     targets: TeacherTargets | None = None, seed: int = 0, device: torch.device | str = "cpu",
                     checkpoint: str | os.PathLike[str] | None = None, metadata: dict[str, Any] | None = None,
                     progress: bool = False, max_steps: int | None = None) -> History:
    """Sequential training of ``student`` under ``budget``; resumes from ``checkpoint`` if present."""
    phases = sequential_phases(student, teacher, dataset, budget, targets, device)
    meta = {"kind": "sequential", "stages": [p.name for p in phases], **(metadata or {})}
    return run_phases(
        student, phases, dataset, batch_size=budget.batch_size, seed=seed, device=device,
        checkpoint=checkpoint, checkpoint_every=budget.checkpoint_every, resume=True, metadata=meta,
        progress=progress, max_steps=max_steps,
    )
