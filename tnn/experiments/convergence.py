"""Convergence study: sequential versus end-to-end training from the same decomposition.

For each format, the pretrained network is compressed once (decomposition initialisation) and two copies
are trained with the same optimizer budget — Adam at ``budget.lr``, batch ``budget.batch_size``,
``budget.conv_steps`` steps in total:

- ``sequential``: the paper's data reconstruction, ``conv_steps / n_stages`` steps per stage (MSE to the
  teacher's stage outputs, batch norm frozen);
- ``end-to-end``: all parameters with cross-entropy on the labels (batch norm in training mode).

Every ``conv_eval_every`` steps (and at step 0) the test accuracy on the first ``conv_eval_limit`` test
images is recorded with the training wall time so far (evaluation time excluded). Outputs in ``out``:
``curves/<format>-<method>.json`` (one per finished curve; a finished curve is never recomputed),
``convergence.csv``, ``convergence.md`` and ``convergence.png``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tnn.experiments.budgets import Budget
from tnn.experiments.data import load_data
from tnn.experiments.runner import _accuracy, _check_config, input_shape, load_teacher
from tnn.experiments.sequential import TeacherTargets, sequential_phases
from tnn.train import Phase
from tnn.train.batches import batch_indices, fetch_batch
from tnn.train.loop import adam

METHODS: tuple[str, ...] = ("sequential", "end-to-end")


def steps_to_within(steps: Sequence[int], accuracy: Sequence[float], tol: float = 0.01) -> dict[str, Any]:
    """Steps a curve needs to come within ``tol`` (a fraction: 0.01 is one point) of its final accuracy.

    Returns
    -------
    dict
        ``first``: the first evaluated step whose accuracy is ``>= final - tol``; ``stays``: the first
        evaluated step from which the accuracy never again drops below ``final - tol``; ``final``: the
        last accuracy.

    Raises
    ------
    ValueError
        Empty or mismatched inputs.
    """
    if len(steps) != len(accuracy) or not steps:
        raise ValueError(f"steps and accuracy must be non-empty and of equal length, got {len(steps)} "
                         f"and {len(accuracy)}")
    final = float(accuracy[-1])
    ok = [float(a) >= final - tol for a in accuracy]
    first = next(s for s, good in zip(steps, ok, strict=True) if good)
    stays = steps[-1]
    for i in range(len(ok) - 1, -1, -1):
        if not ok[i]:
            break
        stays = steps[i]
    return {"first": int(first), "stays": int(stays), "final": final}


def _train_curve(student: nn.Module, phases: Sequence[Phase], dataset: Any, test: Any, budget: Budget, *,
                 seed: int, device: torch.device, log: Callable[[str], None], label: str) -> dict[str, Any]:
    """Run ``phases`` in order, evaluating every ``budget.conv_eval_every`` steps."""
    n = len(dataset)
    steps, wall, acc = [0], [0.0], [_accuracy(student, test, budget.conv_eval_limit, device)]
    stage_ends = []
    losses: list[float] = []
    train_s, global_step = 0.0, 0
    for pi, phase in enumerate(phases):
        trainable = {id(p) for p in phase.params}
        flags = [(p, p.requires_grad) for p in student.parameters()]
        for p in student.parameters():
            p.requires_grad_(id(p) in trainable)
        optimizer = phase.make_optimizer(list(phase.params))
        try:
            for step in range(phase.steps):
                t0 = time.perf_counter()
                phase.module.train(phase.train_mode)
                idx = batch_indices(n, budget.batch_size, seed, pi, step)
                x, y = fetch_batch(dataset, idx)
                x, y = x.to(device), y.to(device)
                loss = phase.loss(phase.module(x), x, y, idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_s += time.perf_counter() - t0
                global_step += 1
                losses.append(float(loss.detach()))
                last = pi == len(phases) - 1 and step == phase.steps - 1
                if global_step % budget.conv_eval_every == 0 or last:
                    steps.append(global_step)
                    wall.append(round(train_s, 3))
                    acc.append(_accuracy(student, test, budget.conv_eval_limit, device))
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
        stage_ends.append(global_step)
        log(f"  {label}: {phase.name} done at step {global_step}, {train_s:.0f} s, "
            f"test accuracy {acc[-1] if steps[-1] == global_step else float('nan'):.4f}")
    return {"steps": steps, "wall_s": wall, "accuracy": acc, "stage_ends": stage_ends, "losses": losses}


def _end_to_end_phase(student: nn.Module, budget: Budget) -> Phase:
    def loss(out: torch.Tensor, _x: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    return Phase(name="end-to-end", module=student, loss=loss, params=list(student.parameters()),
                 steps=budget.conv_steps, make_optimizer=adam(budget.lr), train_mode=True)


def run_convergence(
    model: str,
    dataset: str,
    formats: Sequence[str],
    rate: float,
    budget: Budget,
    out: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    exclude: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Sequential versus end-to-end training curves for each format at ``rate`` (see module docstring).

    Returns
    -------
    list of dict
        One summary per curve: ``format``, ``method``, ``final_accuracy``, ``steps_within_1pt`` (first),
        ``steps_within_1pt_stays``, ``wall_within_1pt_s``, ``total_steps``, ``total_wall_s``.
    """
    from tnn.compression import compress
    from tnn.experiments.runner import _check_lists

    formats, _ = _check_lists(formats, [rate])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; valid methods: {', '.join(METHODS)}")
    device = torch.device(device)
    out = Path(out)
    _check_config(out, {"model": model, "dataset": dataset, "budget": budget.to_dict(), "seed": seed,
                        "weights_name": Path(weights).name if weights is not None else None,
                        "exclude": sorted(exclude) if exclude else None, "study": "convergence"})
    (out / "curves").mkdir(exist_ok=True)
    data = load_data(model, dataset, budget, data_dir, seed=seed)
    teacher = load_teacher(model, weights)
    targets = TeacherTargets(teacher, data.train, device=device) if budget.cache_teacher else None
    for fmt in formats:
        todo = [m for m in methods if not (out / "curves" / f"{fmt}-{m}.json").exists()]
        if not todo:
            log(f"[convergence] {fmt}: finished, skipped")
            continue
        torch.manual_seed(seed)
        init = compress(teacher, format=fmt, rate=rate, exclude=list(exclude) if exclude else None,
                        input_shape=input_shape(model, budget)).to(device)
        for method in todo:
            student = copy.deepcopy(init)
            if method == "sequential":
                one = budget.replace(steps_per_stage=1)
                n_stages = len(sequential_phases(student, teacher, data.train, one, targets, device))
                per_stage = budget.replace(steps_per_stage=max(1, budget.conv_steps // n_stages))
                phases = sequential_phases(student, teacher, data.train, per_stage, targets, device)
            else:
                phases = [_end_to_end_phase(student, budget)]
            log(f"[convergence] {fmt} {method}: {sum(p.steps for p in phases)} steps")
            curve = _train_curve(student, phases, data.train, data.test, budget, seed=seed, device=device,
                                 log=log, label=f"{fmt} {method}")
            curve.update(format=fmt, method=method, rate=rate,
                         achieved_rate=init.tnn_report.achieved_rate, budget=budget.name,
                         eval_limit=budget.conv_eval_limit, n_train=len(data.train))
            from tnn.io import atomic_write_text

            atomic_write_text(out / "curves" / f"{fmt}-{method}.json", json.dumps(curve) + "\n")
            write_convergence_outputs(out, title=f"{model}: sequential vs end-to-end, rate {rate:g}")
    return write_convergence_outputs(out, title=f"{model}: sequential vs end-to-end, rate {rate:g}")


def write_convergence_outputs(out: Path, title: str = "") -> list[dict[str, Any]]:
    """Rewrite ``convergence.csv``, ``convergence.md`` and ``convergence.png`` from the finished curves."""
    from tnn.experiments import plots
    from tnn.formats import FORMATS
    from tnn.io import atomic_write_text

    curves = [json.loads(p.read_text()) for p in sorted((out / "curves").glob("*.json"))]
    order = {f: i for i, f in enumerate(FORMATS)}
    curves.sort(key=lambda c: (order.get(c["format"], 99), METHODS.index(c["method"])))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["format", "method", "step", "wall_s", "accuracy"])
    summaries = []
    for c in curves:
        for s, t, a in zip(c["steps"], c["wall_s"], c["accuracy"], strict=True):
            w.writerow([c["format"], c["method"], s, t, a])
        within = steps_to_within(c["steps"], c["accuracy"])
        wall_at = c["wall_s"][c["steps"].index(within["first"])]
        summaries.append({
            "format": c["format"], "method": c["method"], "final_accuracy": within["final"],
            "steps_within_1pt": within["first"], "steps_within_1pt_stays": within["stays"],
            "wall_within_1pt_s": wall_at, "total_steps": c["steps"][-1], "total_wall_s": c["wall_s"][-1],
            "initial_accuracy": c["accuracy"][0],
        })
    atomic_write_text(out / "convergence.csv", buf.getvalue())
    lines = ["| format | method | test % at step 0 | final test % | steps to within 1 pt (first / stays) | "
             "wall s to within 1 pt | total steps | total wall s |", "|" + " --- |" * 8]
    for s in summaries:
        lines.append(
            f"| {s['format']} | {s['method']} | {100 * s['initial_accuracy']:.2f} | "
            f"{100 * s['final_accuracy']:.2f} | {s['steps_within_1pt']} / {s['steps_within_1pt_stays']} | "
            f"{s['wall_within_1pt_s']:.0f} | {s['total_steps']} | {s['total_wall_s']:.0f} |")
    atomic_write_text(out / "convergence.md", (f"### {title}\n\n" if title else "") + "\n".join(lines) + "\n")
    if curves:
        plots.convergence([{**c, "label": f"{c['format']} {c['method']}"} for c in curves],
                          out / "convergence.png", title=title)
    return summaries
