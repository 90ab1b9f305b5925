"""Sequential training — the paper's data-reconstruction stage (Su et al., §5).

The compressed network (student) is trained stage by stage to reproduce the pretrained network's
(teacher's) stage outputs: for stage ``k``, on the same input batch, the student runs up to boundary
``k`` (its earlier stages already trained and now frozen), the teacher up to the same boundary, and the
parameters of stage ``k`` minimise the mean squared error between the two outputs. Batch-norm
statistics stay frozen (both networks in eval mode); Adam at ``lr`` (1e-3 in the paper).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tnn.train.batches import fetch_batch
from tnn.train.history import History
from tnn.train.loop import Phase, adam, run_phases, steps_for
from tnn.train.stages import OUTPUT, StageForward, check_boundaries, split_parameters


class TeacherCache:
    """Teacher stage outputs per dataset index, computed once, stored in float16 on the CPU.

    Only valid when the inputs of a given index never change (no data augmentation).
    """

    def __init__(self, teacher_stage: nn.Module, n: int) -> None:
        self.teacher_stage = teacher_stage
        self.n = n
        self.store: torch.Tensor | None = None
        self.filled = torch.zeros(n, dtype=torch.bool)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.cpu()
        missing = ~self.filled[idx]
        if bool(missing.any()):
            with torch.no_grad():
                out = self.teacher_stage(x[missing.to(x.device)])
            if self.store is None:
                self.store = torch.empty((self.n, *out.shape[1:]), dtype=torch.float16)
            self.store[idx[missing]] = out.to("cpu", torch.float16)
            self.filled[idx[missing]] = True
        assert self.store is not None
        return self.store[idx].to(x.device, torch.float32)


def sequential_train(
    student: nn.Module,
    teacher: nn.Module,
    dataset: Any,
    stages: Sequence[str] | None = None,
    *,
    steps_per_stage: int | None = None,
    epochs_per_stage: float | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    include_output: bool = True,
    cache_teacher: bool = False,
    skip_unchanged: bool = True,
    device: torch.device | str = "cpu",
    eval_fn: Callable[[nn.Module], dict[str, Any]] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    metadata: dict[str, Any] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
    max_steps: int | None = None,
) -> History:
    """Train ``student`` stage by stage to reproduce ``teacher``'s stage outputs (MSE).

    Parameters
    ----------
    student : nn.Module
        The compressed model (e.g. from :func:`tnn.compress`); trained in place.
    teacher : nn.Module
        The pretrained model with the same module names; put in eval mode, its weights never change.
    dataset : Dataset
        Training samples ``(x, y)`` (labels unused).
    stages : list of str, optional
        Stage-boundary module names in forward order; default ``tnn.models.stages(teacher)``
        (e.g. ``["layer1", "layer2", "layer3", "linear"]`` for ResNet-32).
    steps_per_stage, epochs_per_stage : int / float
        Budget of each stage (give exactly one).
    batch_size : int
        Batch size per process.
    lr : float
        Adam learning rate.
    seed : int
        Seeds the (deterministic) batch order.
    include_output : bool
        If the last boundary is not the model output, add a final stage matching the model outputs
        (trains the remaining layers, e.g. the classifier head).
    cache_teacher : bool
        Cache teacher stage outputs per sample (float16) instead of recomputing them every epoch. Only
        for datasets without augmentation.
    skip_unchanged : bool
        Skip the leading stages whose output already equals the teacher's exactly (nothing compressed
        up to there, e.g. a first convolution kept dense).
    device : device
    eval_fn : callable, optional
        ``eval_fn(student) -> dict`` after each stage (e.g. test accuracy); recorded in ``history.phases``.
    checkpoint, checkpoint_every, resume, metadata, log_path, progress, max_steps
        See :func:`tnn.train.loop.run_phases`.

    Returns
    -------
    History
        Per-step MSE losses and per-stage wall time (and ``eval_fn`` figures).
    """
    device = torch.device(device)
    if stages is None:
        from tnn.models import stages as default_stages

        stages = default_stages(teacher)
    boundaries = check_boundaries(student, list(stages))
    check_boundaries(teacher, [b for b in boundaries])
    if include_output and (not boundaries or boundaries[-1] != OUTPUT):
        boundaries.append(OUTPUT)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    student.to(device)
    teacher.to(device)
    teacher.eval()
    n = len(dataset)
    example, _ = fetch_batch(dataset, torch.arange(min(2, n)))
    groups = split_parameters(student, boundaries, example.to(device))
    steps = steps_for(n, batch_size, steps_per_stage, epochs_per_stage)
    if include_output and boundaries[-1] == OUTPUT and not groups[-1]:
        boundaries.pop()  # nothing runs after the last boundary: no extra stage
        groups.pop()
    if skip_unchanged:
        # leading stages whose output already equals the teacher's (nothing compressed up to there)
        was = student.training
        student.eval()
        with torch.no_grad():
            while len(boundaries) > 1 and torch.equal(
                StageForward(student, boundaries[0])(example.to(device)),
                StageForward(teacher, boundaries[0])(example.to(device)),
            ):
                boundaries.pop(0)
                groups.pop(0)
        student.train(was)
    phases = []
    for boundary, group in zip(boundaries, groups, strict=True):
        teacher_stage = StageForward(teacher, boundary)
        target: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if cache_teacher:
            target = TeacherCache(teacher_stage, n)
        else:
            def target(x: torch.Tensor, _idx: torch.Tensor, _t: nn.Module = teacher_stage) -> torch.Tensor:
                with torch.no_grad():
                    return _t(x)

        def loss(out: torch.Tensor, x: torch.Tensor, _y: torch.Tensor, idx: torch.Tensor,
                 _target: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = target) -> torch.Tensor:
            return F.mse_loss(out, _target(x, idx))

        name = "output" if boundary == OUTPUT else boundary
        phases.append(Phase(
            name=name, module=StageForward(student, boundary), loss=loss, params=[p for _, p in group],
            steps=steps, make_optimizer=adam(lr), train_mode=False,
        ))
    meta = {"kind": "sequential", "stages": [p.name for p in phases], **(metadata or {})}
    return run_phases(
        student, phases, dataset, batch_size=batch_size, seed=seed, device=device, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, resume=resume, metadata=meta, eval_fn=eval_fn, log_path=log_path,
        progress=progress, max_steps=max_steps,
    )
