"""The library's main job in one function: compress a pretrained network, train it, evaluate it.

:func:`compress_and_train` is the only place that knows the order of the pipeline —

1. ``compress`` the teacher into ``format`` at ``rate`` (factors from decomposing its kernels);
2. evaluate the compressed network (``acc_init_*``);
   optionally fit every compressed layer to the teacher's activations (``budget.fit_samples``) and
   evaluate again (``acc_fit_*``);
3. sequential training, stage by stage, to the teacher's stage outputs (``budget.steps_per_stage``);
4. evaluate (``acc_seq_*``);
5. optional end-to-end fine-tuning, optionally distilled from the teacher (``budget.finetune_*``);
6. evaluate (``acc_ft_*``).

The CLI (``tnn train``, ``tnn demo``), the experiment runner, the convergence study and the benchmarks
call it with a :class:`~tnn.recipes.Budget` and add no training logic of their own. Every phase
checkpoints into ``checkpoint_dir`` when given and resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tnn.compression import CompressionReport, compress, compressed_metadata
from tnn.data.batches import fetch_batch
from tnn.io import load_checkpoint
from tnn.recipes.budgets import Budget
from tnn.recipes.data import RunData
from tnn.train import Callback, Checkpointing, History, TeacherCache, accuracy, finetune, sequential_train
from tnn.train.calibrate import fit_layers
from tnn.train.loop import steps_for
from tnn.train.schedules import schedule

#: File names of the phase checkpoints inside ``checkpoint_dir``.
CHECKPOINT_SEQUENTIAL = "checkpoint-sequential.pt"
CHECKPOINT_FINETUNE = "checkpoint-finetune.pt"
CHECKPOINTS = (CHECKPOINT_SEQUENTIAL, CHECKPOINT_FINETUNE)
#: File names of the step logs inside ``checkpoint_dir`` (with ``write_logs``).
LOG_SEQUENTIAL = "log.jsonl"
LOG_FINETUNE = "log-finetune.jsonl"


@dataclass
class RecipeResult:
    """What :func:`compress_and_train` produced.

    Attributes
    ----------
    student : nn.Module
        The compressed, trained network (``student.tnn_report`` is its compression report).
    figures : dict
        ``acc_{init,fit,seq,ft}_{val,test}`` (accuracy after compression, the data-fitted
        initialisation, sequential training and fine-tuning on the splits given; absent when not
        measured), ``acc_final_test``, ``steps_seq``,
        ``steps_ft``, ``stages``, ``final_stage_loss`` and wall seconds ``wall_{compress,fit,teacher,seq,
        ft,eval}_s``.
    sequential, finetune : History or None
        The training histories of the two phases (``None`` when the budget has none).
    """

    student: nn.Module
    figures: dict[str, Any] = field(default_factory=dict)
    sequential: History | None = None
    finetune: History | None = None

    @property
    def report(self) -> CompressionReport:
        return self.student.tnn_report  # type: ignore[no-any-return]

    def history(self) -> History:
        """Both phases' records in one history (fine-tuning's steps and seconds continue sequential
        training's)."""
        merged = History()
        for h in (self.sequential, self.finetune):
            if h is not None:
                merged.extend(h)
        return merged


def _checkpoint_metadata(folder: Path | None) -> dict[str, Any]:
    """The metadata of the first phase checkpoint in ``folder`` (empty when there is none)."""
    for name in CHECKPOINTS:
        if folder is not None and (folder / name).exists():
            meta = load_checkpoint(folder / name).get("metadata")
            return dict(meta) if isinstance(meta, dict) else {"resumed": True}
    return {}


def remove_checkpoints(folder: Path) -> None:
    """Delete the phase checkpoints in ``folder`` (once its run is finished and recorded)."""
    for name in CHECKPOINTS:
        (folder / name).unlink(missing_ok=True)


class _Evaluator:
    """Accuracy on the validation and test sets at a named point, timed."""

    def __init__(self, data: RunData, budget: Budget, device: torch.device, figures: dict[str, Any]) -> None:
        self.data, self.budget, self.device, self.figures = data, budget, device, figures
        self.wall_s = 0.0

    def __call__(self, model: nn.Module, point: str) -> None:
        t0 = time.perf_counter()
        for split, dataset, limit in (("val", self.data.val, self.budget.val_limit),
                                      ("test", self.data.test, self.budget.eval_limit)):
            acc = accuracy(model, dataset, limit, self.device)
            if acc is not None:
                self.figures[f"acc_{point}_{split}"] = acc
        self.wall_s += time.perf_counter() - t0


def compress_and_train(
    teacher: nn.Module,
    data: RunData,
    format: str,
    rate: float,
    budget: Budget,
    *,
    model_name: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    stages: Sequence[str] | None = None,
    student: nn.Module | None = None,
    cache: TeacherCache | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    write_logs: bool = False,
    metadata: dict[str, Any] | None = None,
    eval_each_stage: bool = False,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RecipeResult:
    """Compress ``teacher`` in ``format`` at ``rate`` and train it under ``budget``.

    Parameters
    ----------
    teacher : nn.Module
        The pretrained network (eval mode, never changed).
    data : RunData
        ``train`` (un-augmented when ``budget.cache_teacher``); ``val`` and ``test`` are evaluated after
        each step of the pipeline when given.
    format : str
        One of :data:`tnn.FORMATS`.
    rate : float
        Target compression rate in ``(0, 1]`` (kept fraction of each layer's parameters).
    budget : Budget
        How much training, at which learning rates (:func:`tnn.recipes.get_budget`).
    model_name : str, optional
        Name recorded in the checkpoints (lets ``tnn evaluate`` rebuild the model).
    include, exclude, input_shape
        Passed to :func:`tnn.compress` (layers to compress / keep dense; per-sample input shape for the
        FLOP columns of the report).
    stages : list of str, optional
        Stage boundaries of sequential training (default: the model's own).
    student : nn.Module, optional
        An already compressed network to train instead of compressing ``teacher`` (e.g. rebuilt from
        a checkpoint's plan, or a copy of one decomposition shared by several runs); no ``acc_init_*``.
    cache : TeacherCache, optional
        Shared teacher stage outputs (else a new cache when ``budget.cache_teacher``).
    checkpoint_dir : path, optional
        Folder of the phase checkpoints (:data:`CHECKPOINT_SEQUENTIAL`, :data:`CHECKPOINT_FINETUNE`);
        without it nothing is saved.
    resume : bool
        Continue from the checkpoints in ``checkpoint_dir`` when they exist.
    write_logs : bool
        Also write the step logs (:data:`LOG_SEQUENTIAL`, :data:`LOG_FINETUNE`) into ``checkpoint_dir``.
    metadata : dict, optional
        Extra checkpoint metadata (merged into :func:`compressed_metadata`).
    eval_each_stage : bool
        Record the test accuracy after every sequential stage in ``result.sequential.phases``.
    callbacks : sequence of Callback
        Step callbacks of both training phases (:class:`tnn.train.EvaluateEvery`, ...).
    seed : int
        Seeds the decomposition (``torch.manual_seed``) and the batch order.
    device : device
    progress : bool
        Progress bars.
    log : callable, optional
        ``log(line)`` for one line per pipeline step.

    Returns
    -------
    RecipeResult
    """
    device = torch.device(device)
    say = log or (lambda _line: None)
    figures: dict[str, Any] = {}
    evaluate_at = _Evaluator(data, budget, device, figures)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if student is None:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        student = compress(teacher, format=format, rate=rate, include=include, exclude=exclude,
                           input_shape=input_shape, allocation=budget.allocation)
        figures["wall_compress_s"] = round(time.perf_counter() - t0, 2)
        evaluate_at(student, "init")
        say(f"compressed in {format} at rate {rate:g}: achieved {student.tnn_report.achieved_rate:.4f}"
            + "".join(f", {k} {v:.4f}" for k, v in figures.items() if k.startswith("acc_init")))
        saved = _checkpoint_metadata(folder) if resume else {}
        if saved:  # the checkpoint holds the fitted weights and the figures measured after the fit
            figures.update({k: v for k, v in saved.items() if k.startswith("acc_fit")})
        elif budget.fit_samples:
            t0 = time.perf_counter()
            n = min(budget.fit_samples, len(data.train))
            inputs, _ = fetch_batch(data.train, torch.arange(n))
            fit_layers(student.to(device), teacher.to(device), inputs.to(device), steps=budget.fit_steps,
                       lr=budget.fit_lr, ridge=budget.fit_ridge, progress=progress)
            figures["wall_fit_s"] = round(time.perf_counter() - t0, 2)
            evaluate_at(student, "fit")
            say(f"data-fitted initialisation on {n} images in {figures['wall_fit_s']:.0f} s"
                + "".join(f", {k} {v:.4f}" for k, v in figures.items() if k.startswith("acc_fit")))
    else:
        figures["wall_compress_s"] = 0.0
    student.to(device)
    initial = {k: v for k, v in figures.items() if k.startswith(("acc_init", "acc_fit"))}  # for a resumed run
    meta = {**compressed_metadata(model_name, student.tnn_report), **initial, **(metadata or {})}

    def checkpointing(name: str, log_name: str) -> Checkpointing | None:
        if folder is None:
            return None
        return Checkpointing(folder / name, every=budget.checkpoint_every, resume=resume, metadata=meta,
                             log_path=folder / log_name if write_logs else None)

    def stage_accuracy(model: nn.Module) -> dict[str, Any]:
        return {"accuracy": accuracy(model, data.test, budget.eval_limit, device)}

    result = RecipeResult(student=student, figures=figures)
    if cache is None and budget.cache_teacher:
        cache = TeacherCache(teacher, len(data.train))
    teacher_s0 = cache.wall_s if cache is not None else 0.0
    if budget.steps_per_stage != 0:
        stage_steps = steps_for(len(data.train), budget.batch_size, budget.steps_per_stage,
                                budget.epochs_per_stage)
        hist = sequential_train(
            student, teacher, data.train, stages, steps_per_stage=stage_steps,
            lr_factor=schedule(budget.schedule, stage_steps, budget.warmup),
            batch_size=budget.batch_size, lr=budget.lr, seed=seed,
            cache_teacher=cache if cache is not None else False, device=device,
            eval_fn=stage_accuracy if eval_each_stage and data.test is not None else None,
            checkpoint=checkpointing(CHECKPOINT_SEQUENTIAL, LOG_SEQUENTIAL), callbacks=callbacks,
            progress=progress,
        )
        result.sequential = hist
        figures.update(steps_seq=len(hist.steps), stages=len(hist.phases),
                       final_stage_loss=hist.phases[-1]["final_loss"] if hist.phases else None,
                       wall_seq_s=round(float(hist.steps[-1]["time"]) if hist.steps else 0.0, 2))
        evaluate_at(student, "seq")
        say(f"sequential training: {len(hist.steps)} steps over {len(hist.phases)} stages"
            + "".join(f", {k} {v:.4f}" for k, v in figures.items() if k.startswith("acc_seq")))
    figures["wall_teacher_s"] = round((cache.wall_s - teacher_s0) if cache is not None else 0.0, 2)
    figures["steps_ft"] = 0
    if budget.finetune_steps or budget.finetune_epochs:
        train = data.train
        if budget.augment:
            if data.train_augmented is None:
                raise ValueError(f"budget {budget.name!r} fine-tunes on augmented images: give "
                                 "RunData(train_augmented=...) (load_run_data does)")
            train = data.train_augmented
        ft_steps = steps_for(len(train), budget.batch_size, budget.finetune_steps or None,
                             budget.finetune_epochs)
        hist_ft = finetune(
            student, train, teacher=teacher if budget.distill else None, temperature=budget.temperature,
            alpha=budget.alpha, steps=ft_steps, lr_factor=schedule(budget.schedule, ft_steps, budget.warmup),
            batch_size=budget.batch_size, optimizer="adam", lr=budget.finetune_lr,
            freeze_bn=budget.finetune_freeze_bn, seed=seed, device=device,
            checkpoint=checkpointing(CHECKPOINT_FINETUNE, LOG_FINETUNE), callbacks=callbacks,
            progress=progress,
        )
        result.finetune = hist_ft
        figures.update(steps_ft=len(hist_ft.steps),
                       wall_ft_s=round(float(hist_ft.steps[-1]["time"]) if hist_ft.steps else 0.0, 2))
        evaluate_at(student, "ft")
        say(f"fine-tuning: {len(hist_ft.steps)} steps"
            + "".join(f", {k} {v:.4f}" for k, v in figures.items() if k.startswith("acc_ft")))
    final = ("ft" if result.finetune is not None else "seq" if result.sequential is not None
             else "fit" if any(k.startswith("acc_fit") for k in figures) else "init")
    figures["acc_final_test"] = figures.get(f"acc_{final}_test")
    figures["acc_final_val"] = figures.get(f"acc_{final}_val")
    for key in ("wall_fit_s", "wall_seq_s", "wall_ft_s", "steps_seq", "stages"):
        figures.setdefault(key, 0)
    figures["wall_eval_s"] = round(evaluate_at.wall_s, 2)
    return result
