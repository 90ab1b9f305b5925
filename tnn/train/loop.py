"""The one training loop: phases, step callbacks, checkpoints, resume.

A run is a list of :class:`Phase` s (one per stage for sequential training, one for fine-tuning).
Each phase trains its own parameters with a fresh optimizer for a fixed number of steps over batches
in the deterministic order of :mod:`tnn.train.batches`, optionally under a learning-rate schedule.
With a :class:`Checkpointing`, rank 0 writes a checkpoint atomically every ``every`` steps and at the
end of each phase, holding the model, the optimizer, the RNG states, the position ``(phase, step)``
and the history; ``resume=True`` continues from it, so an interrupted run loses at most one
checkpoint interval and ends exactly as an uninterrupted one (CPU). :class:`Callback` s see every
step (evaluation every N steps, logging, early stop); their own time is not counted as training time.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch
from torch import nn
from tqdm import tqdm

from tnn.data.batches import fetch_batch
from tnn.io import CheckpointError, checkpoint_metadata, load_checkpoint, save_checkpoint
from tnn.io.preflight import check_output_dir, checkpoint_bytes_estimate
from tnn.train import distributed as D
from tnn.train.batches import batch_indices, batches_per_epoch
from tnn.train.history import History
from tnn.train.rng import rng_state, set_rng_state


class NonFiniteLossError(ValueError):
    """Training stopped: the loss (or a parameter) became NaN or infinite; the last checkpoint is kept."""


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Phase:
    """One phase of training.

    Attributes
    ----------
    name : str
        E.g. ``"layer1"`` (a sequential-training stage) or ``"finetune"``.
    module : nn.Module
        ``module(x)`` gives the output the loss compares (wrapped in DDP when distributed).
    loss : callable
        ``loss(output, x, y, indices) -> scalar tensor``.
    params : list of nn.Parameter
        The parameters trained in this phase; all others of ``module`` are frozen for its duration.
    steps : int
        Number of optimisation steps.
    make_optimizer : callable
        ``make_optimizer(params) -> torch.optim.Optimizer``.
    train_mode : bool
        ``module.train(train_mode)`` during the phase (False freezes batch-norm statistics).
    on_start : callable, optional
        Called once when the phase starts or resumes (e.g. to register hooks); ``on_end`` when it ends.
    lr_factor : callable, optional
        ``lr_factor(step) -> float``: the learning rate of step ``step`` (from 0) is the optimizer's
        initial rate times this factor (a schedule: warm-up, cosine, ...). A function of the step only,
        so a resumed phase follows the same schedule.
    """

    name: str
    module: nn.Module
    loss: LossFn
    params: list[nn.Parameter]
    steps: int
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    train_mode: bool = True
    on_start: Callable[[], None] | None = None
    on_end: Callable[[], None] | None = None
    lr_factor: Callable[[int], float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def adam(lr: float = 1e-3) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer]:
    """Optimizer factory: Adam at learning rate ``lr``."""
    return lambda params: torch.optim.Adam(params, lr=lr)


def sgd(lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> Callable[
    [list[nn.Parameter]], torch.optim.Optimizer
]:
    """Optimizer factory: SGD with momentum and weight decay."""
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def steps_for(n: int, batch_size: int, steps: int | None, epochs: float | None) -> int:
    """Steps of a phase from a budget in steps or in epochs (exactly one of them)."""
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one budget: steps or epochs (got steps={steps!r}, epochs={epochs!r})")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        return steps
    if not isinstance(epochs, (int, float)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative number, got {epochs!r}")
    return max(1, round(epochs * batches_per_epoch(n, batch_size, D.world_size()))) if epochs else 0


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often a run saves its state, and whether it continues from it.

    Attributes
    ----------
    path : path
        Checkpoint file, written atomically by rank 0 every ``every`` steps and at the end of each phase.
    every : int
        Steps between checkpoints inside a phase.
    resume : bool
        Continue from ``path`` if it exists (a missing file starts from scratch).
    log_path : path, optional
        JSONL log of the history, rewritten by rank 0 at every checkpoint and at the end.
    metadata : dict, optional
        Extra checkpoint metadata (model name, format, rate, ranks, plan, ...).
    """

    path: str | os.PathLike[str]
    every: int = 100
    resume: bool = False
    log_path: str | os.PathLike[str] | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"checkpoint every must be an integer >= 1, got {self.every!r}")

    def with_metadata(self, **extra: Any) -> Checkpointing:
        """A copy whose metadata also holds ``extra`` (``extra`` first, the given metadata wins)."""
        return dataclasses.replace(self, metadata={**extra, **(self.metadata or {})})


@dataclass
class StepEvent:
    """What a :class:`Callback` sees after each optimisation step.

    Attributes
    ----------
    model : nn.Module
        The model being trained (``run_phases``' ``model``).
    phase : Phase
    phase_index, step, global_step : int
        Position: the phase, the step within it (from 0, already taken) and the steps of the run so far.
    loss : float
    train_s : float
        Training seconds of the run so far, resumed calls included (callbacks' own time excluded).
    history : History
        The run's history (checkpointed): a callback may record into ``history.evaluations``.
    last : bool
        Whether this was the last step of the run.
    """

    model: nn.Module
    phase: Phase
    phase_index: int
    step: int
    global_step: int
    loss: float
    train_s: float
    last: bool
    history: History


class LoopOptions(TypedDict, total=False):
    """Keyword options that :func:`tnn.train.sequential_train` and :func:`tnn.train.finetune` pass on
    to :func:`run_phases` unchanged (documented there): ``seed``, ``device``, ``checkpoint``,
    ``callbacks``, ``eval_fn``, ``progress``, ``max_steps``."""

    seed: int
    device: torch.device | str
    checkpoint: Checkpointing | None
    callbacks: Sequence[Callback]
    eval_fn: Callable[[nn.Module], dict[str, Any]] | None
    progress: bool
    max_steps: int | None


class Callback:
    """Hooks into :func:`run_phases`. Subclass and override what you need."""

    def on_run_start(self, model: nn.Module, global_step: int, history: History) -> None:
        """Once per call, before the first step (``global_step`` > 0 when resuming)."""

    def on_step_end(self, event: StepEvent) -> bool | None:
        """After every step; return True to stop the run early (a checkpoint is written first)."""
        return None


class EvaluateEvery(Callback):
    """Record ``evaluate(model) -> float`` at step 0, every ``every`` steps and at the last step.

    The points go into the run's ``history.evaluations`` (``global_step``, ``train_s``, ``value``), which
    checkpoints carry, so a resumed run keeps the points it had (steps after the last checkpoint are
    redone and evaluated again). Given to consecutive runs (sequential training, then fine-tuning), the
    value at the end of one is reused as the next one's step 0 (the model has not changed).
    """

    def __init__(self, every: int, evaluate: Callable[[nn.Module], float]) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = every
        self.evaluate = evaluate
        self._end_value: float | None = None

    def on_run_start(self, model: nn.Module, global_step: int, history: History) -> None:
        if global_step == 0 and not history.evaluations:
            value = self._end_value if self._end_value is not None else self.evaluate(model)
            history.evaluations.append({"global_step": 0, "train_s": 0.0, "value": value})
        self._end_value = None

    def on_step_end(self, event: StepEvent) -> None:
        if event.global_step % self.every == 0 or event.last:
            value = self.evaluate(event.model)
            event.history.evaluations.append({"global_step": event.global_step,
                                              "train_s": round(event.train_s, 3), "value": value})
            if event.last:
                self._end_value = value
        return None


def run_phases(
    model: nn.Module,
    phases: Sequence[Phase],
    dataset: Any,
    *,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    device: torch.device | str = "cpu",
    checkpoint: Checkpointing | None = None,
    callbacks: Sequence[Callback] = (),
    eval_fn: Callable[[nn.Module], dict[str, Any]] | None = None,
    progress: bool = False,
    max_steps: int | None = None,
) -> History:
    """Run ``phases`` in order over ``dataset``, checkpointing and resuming.

    Parameters
    ----------
    model : nn.Module
        The model whose ``state_dict`` is checkpointed (the phases' modules are parts or wrappers of it).
    phases : sequence of Phase
    dataset : Dataset
        ``len(dataset)`` samples ``(x, y)``; batches are gathered with :func:`fetch_batch`.
    batch_size : int
        Batch size per process.
    seed : int
        Seeds the batch order (with the phase index and epoch).
    checkpoint : Checkpointing, optional
        Where to save the run's state, how often, and whether to resume from it.
    callbacks : sequence of Callback
        Called after every step (rank 0 and the others alike); one returning True stops the run.
    eval_fn : callable, optional
        ``eval_fn(model) -> dict`` run (rank 0) after each phase; its figures go into ``history.phases``.
    progress : bool
        A tqdm bar on stderr.
    max_steps : int, optional
        Stop after this many steps in this call (simulates an interruption; for tests).

    Returns
    -------
    History
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    n = len(dataset)
    if n == 0:
        raise ValueError("the training dataset is empty")
    ck_path = checkpoint.path if checkpoint is not None else None
    log_path = checkpoint.log_path if checkpoint is not None else None
    if ck_path is not None and D.is_main():  # fail now, not at the first checkpoint hours later
        check_output_dir(os.path.dirname(os.fspath(ck_path)) or ".",
                         2 * checkpoint_bytes_estimate(model), what="checkpoint")
    names = [p.name for p in phases]
    history = History()
    start_phase, start_step, elapsed = 0, 0, 0.0
    opt_state = None
    if checkpoint is not None and checkpoint.resume and os.path.exists(checkpoint.path):
        ckpt = load_checkpoint(checkpoint.path)
        pos = ckpt.get("position")
        if not isinstance(pos, dict) or "model" not in ckpt:
            raise CheckpointError(f"checkpoint {str(ck_path)!r} is not a tnn training checkpoint")
        if pos.get("phases") != names:
            raise CheckpointError(
                f"checkpoint {str(ck_path)!r} was written by a run with phases {pos.get('phases')}, "
                f"this run has {names}"
            )
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {str(ck_path)!r} does not fit the model: {str(exc).splitlines()[0]}"
            ) from exc
        start_phase, start_step = int(pos["phase"]), int(pos["step"])
        elapsed = float(pos.get("time", 0.0))
        history = History.from_dict(ckpt.get("history", {}))
        opt_state = ckpt.get("optimizer")
        set_rng_state(ckpt["rng"])
    main = D.is_main()
    rank, world = D.rank(), D.world_size()
    total = sum(p.steps for p in phases)
    done = sum(p.steps for p in phases[:start_phase]) + start_step
    bar = None
    if progress and main:
        bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True,
                   disable=not sys.stderr.isatty())
    paused = 0.0  # seconds spent in callbacks: not training time
    t0 = time.perf_counter() - elapsed
    steps_this_call = 0
    global_step = done

    def train_time() -> float:
        return time.perf_counter() - t0 - paused

    def save(phase_index: int, step: int, optimizer: torch.optim.Optimizer | None) -> None:
        if checkpoint is None:
            return
        # every rank checks (DDP keeps the parameters equal), so all stop together
        bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise NonFiniteLossError(
                f"training stopped at global step {global_step}: parameters {bad[:3]} became NaN/inf; "
                f"the last good checkpoint {str(ck_path)!r} is kept (lower the learning rate)"
            )
        if not main:
            return
        meta = checkpoint_metadata(step=global_step, **(checkpoint.metadata or {}))
        payload = {
            "metadata": meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "rng": rng_state(),
            "position": {"phase": phase_index, "step": step, "global_step": global_step,
                         "phases": names, "time": train_time()},
            "history": history.to_dict(),
        }
        save_checkpoint(checkpoint.path, payload)
        if log_path is not None:
            history.write_jsonl(log_path)

    def call_back(event_args: dict[str, Any]) -> bool:
        nonlocal paused
        if not callbacks:
            return False
        t = time.perf_counter()
        event = StepEvent(model=model, train_s=t - t0 - paused, history=history, **event_args)
        stop = False
        for cb in callbacks:
            stop = bool(cb.on_step_end(event)) or stop
        paused += time.perf_counter() - t
        return stop

    t = time.perf_counter()
    for cb in callbacks:
        cb.on_run_start(model, global_step, history)
    paused += time.perf_counter() - t
    try:
        for pi in range(start_phase, len(phases)):
            phase = phases[pi]
            first = start_step if pi == start_phase else 0
            trainable = {id(p) for p in phase.params}
            saved_flags = [(p, p.requires_grad) for p in model.parameters()]
            for p in phase.module.parameters():
                p.requires_grad_(id(p) in trainable)
            for p in phase.params:
                p.requires_grad_(True)
            phase.module.train(phase.train_mode)
            if phase.on_start is not None:
                phase.on_start()
            optimizer = phase.make_optimizer(list(phase.params)) if phase.params else None
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group.setdefault("initial_lr", group["lr"])
            if opt_state is not None and pi == start_phase and first > 0 and optimizer is not None:
                optimizer.load_state_dict(opt_state)
            opt_state = None
            runner = D.wrap_ddp(phase.module, device) if phase.params else phase.module
            phase_t0 = time.perf_counter()
            try:
                for step in range(first, phase.steps):
                    if max_steps is not None and steps_this_call >= max_steps:
                        return history
                    if phase.lr_factor is not None and optimizer is not None:
                        factor = float(phase.lr_factor(step))
                        for group in optimizer.param_groups:
                            group["lr"] = group["initial_lr"] * factor
                    idx = batch_indices(
                        n, batch_size, seed, pi, step, shuffle=shuffle, rank=rank, world=world
                    )
                    x, y = fetch_batch(dataset, idx)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    out = runner(x)
                    loss = phase.loss(out, x, y, idx)
                    if not D.all_finite(loss.detach()):  # all ranks decide together
                        kept = (f"the last good checkpoint {str(ck_path)!r} is kept"
                                if ck_path is not None and os.path.exists(ck_path) else "no checkpoint")
                        local = bool(torch.isfinite(loss.detach()).all())
                        what = "on another process" if local else str(float(loss.detach()))
                        raise NonFiniteLossError(
                            f"training stopped: non-finite loss {what} in phase "
                            f"{phase.name!r} at step {step} (global step {global_step}); {kept}; "
                            "lower the learning rate or check the data for NaN/inf"
                        )
                    if optimizer is not None:
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                    global_step += 1
                    steps_this_call += 1
                    loss_value = float(loss.detach())
                    history.steps.append({
                        "phase": phase.name, "phase_index": pi, "step": step, "global_step": global_step,
                        "loss": loss_value, "time": round(train_time(), 4),
                    })
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"{phase.name} loss {loss_value:.4g}")
                    stop = call_back({"phase": phase, "phase_index": pi, "step": step,
                                      "global_step": global_step, "loss": loss_value,
                                      "last": global_step == total})
                    phase.module.train(phase.train_mode)  # a callback may have evaluated the model
                    if stop:
                        save(pi, step + 1, optimizer)
                        return history
                    if (step + 1) % (checkpoint.every if checkpoint else 1) == 0 and step + 1 < phase.steps:
                        save(pi, step + 1, optimizer)
            finally:
                if phase.on_end is not None:
                    phase.on_end()
                for p, flag in saved_flags:
                    p.requires_grad_(flag)
            tail = [r["loss"] for r in history.steps if r["phase_index"] == pi][-10:]
            record: dict[str, Any] = {
                "phase": phase.name, "phase_index": pi, "steps": phase.steps,
                "params": sum(p.numel() for p in {id(p): p for p in phase.params}.values()),
                "wall_s": round(time.perf_counter() - phase_t0, 3),
                "final_loss": sum(tail) / len(tail) if tail else None,
            }
            if eval_fn is not None and main:
                record.update(eval_fn(model))
            history.phases.append(record)
            # position: start of the next phase (its step 0), with no optimizer state to carry over
            save(pi + 1, 0, None)
    finally:
        if bar is not None:
            bar.close()
    if log_path is not None and main:
        history.write_jsonl(log_path)
    return history
