"""The training loop shared by sequential training and fine-tuning: phases, checkpoints, resume.

A run is a list of :class:`Phase` s (one per stage for sequential training, one for fine-tuning).
Each phase trains its own parameters with a fresh optimizer for a fixed number of steps over batches
in the deterministic order of :mod:`tnn.train.batches`. Every ``checkpoint_every`` steps and at the
end of each phase, rank 0 writes a checkpoint atomically holding the model, the optimizer, the RNG
states, the position ``(phase, step)`` and the history; ``resume=True`` continues from it, so an
interrupted run loses at most one checkpoint interval and ends exactly as an uninterrupted one (CPU).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tnn.io import CheckpointError, checkpoint_metadata, load_checkpoint, save_checkpoint
from tnn.io.preflight import check_output_dir, checkpoint_bytes_estimate
from tnn.train import distributed as D
from tnn.train.batches import batch_indices, batches_per_epoch, fetch_batch
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


def run_phases(
    model: nn.Module,
    phases: Sequence[Phase],
    dataset: Any,
    *,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    device: torch.device | str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    metadata: dict[str, Any] | None = None,
    eval_fn: Callable[[nn.Module], dict[str, Any]] | None = None,
    log_path: str | os.PathLike[str] | None = None,
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
    checkpoint : path, optional
        Checkpoint file, written by rank 0 every ``checkpoint_every`` steps and at the end of each phase.
    resume : bool
        Continue from ``checkpoint`` if it exists (a missing file starts from scratch).
    metadata : dict, optional
        Extra checkpoint metadata (model name, format, rate, ranks, plan, ...).
    eval_fn : callable, optional
        ``eval_fn(model) -> dict`` run (rank 0) after each phase; its figures go into ``history.phases``.
    log_path : path, optional
        JSONL log of the history, rewritten by rank 0 at every checkpoint and at the end.
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
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every!r}")
    device = torch.device(device)
    n = len(dataset)
    if n == 0:
        raise ValueError("the training dataset is empty")
    if checkpoint is not None and D.is_main():  # fail now, not at the first checkpoint hours later
        check_output_dir(os.path.dirname(os.fspath(checkpoint)) or ".",
                         2 * checkpoint_bytes_estimate(model), what="checkpoint")
    names = [p.name for p in phases]
    history = History()
    start_phase, start_step, elapsed = 0, 0, 0.0
    opt_state = None
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        ckpt = load_checkpoint(checkpoint)
        pos = ckpt.get("position")
        if not isinstance(pos, dict) or "model" not in ckpt:
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} is not a tnn training checkpoint")
        if pos.get("phases") != names:
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} was written by a run with phases {pos.get('phases')}, "
                f"this run has {names}"
            )
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} does not fit the model: {str(exc).splitlines()[0]}"
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
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True,
                   disable=not sys.stderr.isatty())
    t0 = time.perf_counter() - elapsed
    steps_this_call = 0
    global_step = done

    def save(phase_index: int, step: int, optimizer: torch.optim.Optimizer | None) -> None:
        if checkpoint is None or not main:
            return
        bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise NonFiniteLossError(
                f"training stopped at global step {global_step}: parameters {bad[:3]} became NaN/inf; "
                f"the last good checkpoint {str(checkpoint)!r} is kept (lower the learning rate)"
            )
        meta = checkpoint_metadata(step=global_step, **(metadata or {}))
        payload = {
            "metadata": meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "rng": rng_state(),
            "position": {"phase": phase_index, "step": step, "global_step": global_step,
                         "phases": names, "time": time.perf_counter() - t0},
            "history": history.to_dict(),
        }
        save_checkpoint(checkpoint, payload)
        if log_path is not None:
            history.write_jsonl(log_path)

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
            if opt_state is not None and pi == start_phase and first > 0 and optimizer is not None:
                optimizer.load_state_dict(opt_state)
            opt_state = None
            runner = D.wrap_ddp(phase.module, device) if phase.params else phase.module
            phase_t0 = time.perf_counter()
            try:
                for step in range(first, phase.steps):
                    if max_steps is not None and steps_this_call >= max_steps:
                        return history
                    idx = batch_indices(
                        n, batch_size, seed, pi, step, shuffle=shuffle, rank=rank, world=world
                    )
                    x, y = fetch_batch(dataset, idx)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    out = runner(x)
                    loss = phase.loss(out, x, y, idx)
                    if not bool(torch.isfinite(loss.detach()).all()):
                        kept = (f"the last good checkpoint {str(checkpoint)!r} is kept"
                                if checkpoint is not None and os.path.exists(checkpoint) else "no checkpoint")
                        raise NonFiniteLossError(
                            f"training stopped: non-finite loss {float(loss.detach())} in phase "
                            f"{phase.name!r} at step {step} (global step {global_step}); {kept}; "
                            "lower the learning rate or check the data for NaN/inf"
                        )
                    if optimizer is not None:
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                    global_step += 1
                    steps_this_call += 1
                    history.steps.append({
                        "phase": phase.name, "phase_index": pi, "step": step, "global_step": global_step,
                        "loss": float(loss.detach()), "time": round(time.perf_counter() - t0, 4),
                    })
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"{phase.name} loss {float(loss.detach()):.4g}")
                    if (step + 1) % checkpoint_every == 0 and step + 1 < phase.steps:
                        save(pi, step + 1, optimizer)
            finally:
                if phase.on_end is not None:
                    phase.on_end()
                for p, flag in saved_flags:
                    p.requires_grad_(flag)
            tail = [r["loss"] for r in history.steps if r["phase_index"] == pi][-10:]
            record: dict[str, Any] = {
                "phase": phase.name, "phase_index": pi, "steps": phase.steps,
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
