"""Sequential training — the paper's data-reconstruction stage (Su et al., §5).

The compressed network (student) is trained stage by stage to reproduce the pretrained network's
(teacher's) stage outputs: for stage ``k``, on the same input batch, the student runs up to boundary
``k`` (its earlier stages already trained and now frozen), the teacher up to the same boundary, and the
parameters of stage ``k`` minimise the mean squared error between the two outputs. Batch-norm
statistics stay frozen (both networks in eval mode); Adam at ``lr`` (1e-3 in the paper).

:func:`sequential_phases` builds the phases (the one place that knows what a stage is),
:func:`sequential_train` runs them; :class:`TeacherCache` keeps the teacher's stage outputs so they are
computed once per sample and may be shared by many students.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Unpack

import torch
import torch.nn.functional as F
from torch import nn

from tnn.data.batches import fetch_batch
from tnn.models import stages as default_stages
from tnn.train.history import History
from tnn.train.loop import LoopOptions, Phase, adam, run_phases, steps_for
from tnn.train.stages import OUTPUT, StageForward, check_boundaries, split_parameters

#: ``target(x, idx) -> Tensor``: the teacher's output at a stage boundary for the batch ``x`` whose
#: dataset indices are ``idx``.
Target = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TeacherCache:
    """The teacher's output at each stage boundary per dataset index, float16 on the CPU.

    Entries are computed on first use, from the batch being trained on (:meth:`target`), or for the
    whole dataset in one pass (:meth:`fill`; at the first use of a boundary when the cache was given
    its ``dataset``). Only valid when the inputs of a given index never change
    (no data augmentation). One cache may serve many students trained against the same teacher on the
    same dataset.

    Parameters
    ----------
    teacher : nn.Module
        The pretrained network (put in eval mode; never trained).
    n : int
        Number of samples of the dataset the indices refer to.
    dataset : Dataset, optional
        That dataset: each boundary is then filled in one pass (batches of ``batch_size``) when first
        used, instead of batch by batch during training.
    batch_size : int
        Batch size of the one-pass fill.
    """

    def __init__(self, teacher: nn.Module, n: int, dataset: Any = None, batch_size: int = 256) -> None:
        self.teacher = teacher
        self.n = n
        self.dataset = dataset
        self.batch_size = batch_size
        self.store: dict[str, torch.Tensor] = {}
        self.filled: dict[str, torch.Tensor] = {}
        self.wall_s = 0.0

    def _stage(self, boundary: str, device: torch.device) -> nn.Module:
        return StageForward(self.teacher.to(device).eval(), boundary)

    def _put(self, boundary: str, idx: torch.Tensor, out: torch.Tensor) -> None:
        if boundary not in self.store:
            self.store[boundary] = torch.empty((self.n, *out.shape[1:]), dtype=torch.float16)
            self.filled[boundary] = torch.zeros(self.n, dtype=torch.bool)
        self.store[boundary][idx] = out.to("cpu", torch.float16)
        self.filled[boundary][idx] = True

    def fill(self, boundary: str, dataset: Any, device: torch.device | str = "cpu") -> None:
        """Compute the outputs at ``boundary`` for every sample of ``dataset`` (when not all cached)."""
        device = torch.device(device)
        if boundary in self.filled and bool(self.filled[boundary].all()):
            return
        t0 = time.perf_counter()
        stage = self._stage(boundary, device)
        with torch.no_grad():
            for start in range(0, self.n, self.batch_size):
                idx = torch.arange(start, min(self.n, start + self.batch_size))
                x, _ = fetch_batch(dataset, idx)
                self._put(boundary, idx, stage(x.to(device)))
        self.wall_s += time.perf_counter() - t0

    def target(self, boundary: str) -> Target:
        """``target(x, idx)``: the cached outputs at ``boundary`` (missing ones computed from ``x``)."""

        def target(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            if self.dataset is not None:
                self.fill(boundary, self.dataset, x.device)
            idx = idx.cpu()
            filled = self.filled.get(boundary)
            missing = torch.ones_like(idx, dtype=torch.bool) if filled is None else ~filled[idx]
            if bool(missing.any()):
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = self._stage(boundary, x.device)(x[missing.to(x.device)])
                self._put(boundary, idx[missing], out)
                self.wall_s += time.perf_counter() - t0
            return self.store[boundary][idx].to(x.device, torch.float32)

        return target


def _live_target(teacher: nn.Module, boundary: str) -> Target:
    stage = StageForward(teacher, boundary)

    def target(x: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return stage(x)

    return target


def sequential_phases(
    student: nn.Module,
    teacher: nn.Module,
    dataset: Any,
    stages: Sequence[str] | None = None,
    *,
    steps: int,
    lr: float,
    cache: TeacherCache | None = None,
    include_output: bool = True,
    skip_unchanged: bool = True,
    lr_factor: Callable[[int], float] | None = None,
    device: torch.device | str = "cpu",
) -> list[Phase]:
    """The phases of sequential training, one per stage.

    Parameters
    ----------
    student, teacher : nn.Module
        The compressed model (moved to ``device``) and the pretrained one with the same module names.
    dataset : Dataset
        Training samples (only two are read here, to trace which parameters belong to which stage).
    stages : list of str, optional
        Stage-boundary module names in forward order; default ``tnn.models.stages(teacher)``.
    steps : int
        Steps of every stage.
    lr : float
        Adam learning rate (times ``lr_factor(step)`` when given).
    cache : TeacherCache, optional
        Where the teacher's stage outputs come from; without it they are recomputed at every step.
    include_output : bool
        If the last boundary is not the model output, add a final stage matching the model outputs
        (when some parameters run after the last boundary).
    skip_unchanged : bool
        Drop the leading stages whose output already equals the teacher's exactly (nothing compressed
        up to there, e.g. a first convolution kept dense).
    device : device

    Returns
    -------
    list of Phase
        Phase ``k`` trains the parameters of stage ``k`` (others frozen) to minimise the MSE between the
        student's and the teacher's output at boundary ``k``; batch norm stays in eval mode.
    """
    device = torch.device(device)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    boundaries = check_boundaries(student, list(stages) if stages is not None else default_stages(teacher))
    check_boundaries(teacher, boundaries)
    if include_output and (not boundaries or boundaries[-1] != OUTPUT):
        boundaries.append(OUTPUT)
    student.to(device)
    teacher.to(device).eval()
    example, _ = fetch_batch(dataset, torch.arange(min(2, len(dataset))))
    example = example.to(device)
    groups = split_parameters(student, boundaries, example)
    if include_output and boundaries[-1] == OUTPUT and not groups[-1]:
        boundaries.pop()  # nothing runs after the last boundary: no extra stage
        groups.pop()
    if skip_unchanged:
        was = student.training
        student.eval()
        with torch.no_grad():
            while len(boundaries) > 1 and torch.equal(
                StageForward(student, boundaries[0])(example), StageForward(teacher, boundaries[0])(example)
            ):
                boundaries.pop(0)
                groups.pop(0)
        student.train(was)
    phases = []
    for boundary, group in zip(boundaries, groups, strict=True):
        target = cache.target(boundary) if cache is not None else _live_target(teacher, boundary)

        def loss(out: torch.Tensor, x: torch.Tensor, _y: torch.Tensor, idx: torch.Tensor,
                 _target: Target = target) -> torch.Tensor:
            return F.mse_loss(out, _target(x, idx))

        phases.append(Phase(
            name="output" if boundary == OUTPUT else boundary, module=StageForward(student, boundary),
            loss=loss, params=[p for _, p in group], steps=steps, make_optimizer=adam(lr), train_mode=False,
            lr_factor=lr_factor, extra={"boundary": boundary},
        ))
    return phases


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
    include_output: bool = True,
    cache_teacher: bool | TeacherCache = False,
    skip_unchanged: bool = True,
    lr_factor: Callable[[int], float] | None = None,
    **loop: Unpack[LoopOptions],
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
    include_output, skip_unchanged, lr_factor
        See :func:`sequential_phases`.
    cache_teacher : bool or TeacherCache
        Cache the teacher stage outputs per sample (float16) instead of recomputing them every epoch
        (a new cache, or the given one). Only for datasets without augmentation.
    **loop
        :class:`tnn.train.loop.LoopOptions`: ``seed`` (batch order), ``device``, ``checkpoint``,
        ``callbacks``, ``eval_fn`` (e.g. test accuracy after each stage, recorded in
        ``history.phases``), ``progress``, ``max_steps``.

    Returns
    -------
    History
        Per-step MSE losses and per-stage wall time (and ``eval_fn`` figures).
    """
    cache = cache_teacher if isinstance(cache_teacher, TeacherCache) else (
        TeacherCache(teacher, len(dataset)) if cache_teacher else None)
    phases = sequential_phases(
        student, teacher, dataset, stages, steps=steps_for(len(dataset), batch_size, steps_per_stage,
                                                           epochs_per_stage),
        lr=lr, cache=cache, include_output=include_output, skip_unchanged=skip_unchanged, lr_factor=lr_factor,
        device=loop.get("device", "cpu"),
    )
    checkpoint = loop.get("checkpoint")
    if checkpoint is not None:
        loop["checkpoint"] = checkpoint.with_metadata(kind="sequential", stages=[p.name for p in phases])
    return run_phases(student, phases, dataset, batch_size=batch_size, **loop)
