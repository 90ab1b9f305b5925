"""Convergence study: sequential versus end-to-end training from the same decomposition.

For each format, the pretrained network is compressed once (decomposition initialisation) and copies
are trained with the same optimizer budget — Adam at ``budget.lr``, batch ``budget.batch_size``,
``budget.conv_steps`` steps in total — by each of the ``methods``:

- ``sequential``: the paper's data reconstruction, ``conv_steps / n_stages`` steps per stage (MSE to the
  teacher's stage outputs, batch norm frozen);
- ``end-to-end``: all parameters with the budget's fine-tuning loss (cross-entropy on the labels, or
  distillation from the teacher's logits when the budget distills; batch norm in training mode);
- ``recipe``: the budget as a table cell runs it — its sequential stages, then its fine-tuning — whose
  steps must add up to ``conv_steps`` (the ``long`` budget's 2,960 on ResNet-32's four stages), so that
  it compares with ``end-to-end`` at equal steps.

With a budget that has a data-fitted initialisation (``fit_samples``), both methods start from the fitted
network.

Every ``conv_eval_every`` steps (and at step 0) the test accuracy on the first ``conv_eval_limit`` test
images is recorded with the training wall time so far (evaluation time excluded). Outputs in ``out``:
``curves/<format>-<method>.json`` (one per finished curve; a finished curve is never recomputed),
``convergence.csv``, ``convergence.md`` and ``convergence.png``.

A curve in progress keeps its checkpoints (and its evaluation points so far) in the folder
``curves/<format>-<method>/``: an interrupted study resumes each curve from its last checkpoint when the
same command runs again. Several processes may run the same command on one ``out`` (one per core): each
curve is claimed by the first process to reach it (:func:`tnn.io.claim`) and skipped by the others.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tnn.compression import compress
from tnn.experiments import plots
from tnn.experiments.runner import (
    CLAIM,
    check_config,
    check_formats_and_rates,
    claim_work,
    input_shape,
    load_teacher,
)
from tnn.formats import FORMATS
from tnn.io import atomic_write_text, release
from tnn.recipes import (
    CHECKPOINTS,
    Budget,
    RecipeResult,
    compress_and_train,
    load_run_data,
    remove_checkpoints,
)
from tnn.train import EvaluateEvery, TeacherCache, evaluate, sequential_phases

METHODS: tuple[str, ...] = ("sequential", "end-to-end", "recipe")
#: The methods run when none are named.
DEFAULT_METHODS: tuple[str, ...] = ("sequential", "end-to-end")


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


def parameter_epochs(
    phases: Sequence[dict[str, Any]], steps: Sequence[int], batch_size: int, n_train: int
) -> list[float] | None:
    """Trained parameters times epochs, summed over the phases, at each global step of ``steps``.

    The x-axis of the paper authors' convergence plots: a sequential stage counts only the parameters it
    trains, end-to-end training all of them. Phase ``i`` (``phases[i]["steps"]`` steps of
    ``batch_size`` samples training ``phases[i]["params"]`` parameters) adds ``params x samples /
    n_train`` for the part of it before the step. ``None`` when a phase does not record ``params``.

    Examples
    --------
    >>> parameter_epochs([{"steps": 2, "params": 10}, {"steps": 2, "params": 100}], [0, 2, 3], 50, 100)
    [0.0, 10.0, 60.0]
    """
    if any("params" not in ph for ph in phases):
        return None
    out = []
    for step in steps:
        total, start = 0.0, 0
        for ph in phases:
            done = min(max(step - start, 0), int(ph["steps"]))
            total += int(ph["params"]) * done * batch_size / n_train
            start += int(ph["steps"])
        out.append(total)
    return out


def _curve(result: RecipeResult, batch_size: int, n_train: int) -> dict[str, Any]:
    """A curve's JSON: evaluation points, stage ends, step losses and parameter-epochs."""
    hist = result.history()
    points = hist.evaluations
    ends, total = [], 0
    for phase in hist.phases:
        total += int(phase["steps"])
        ends.append(total)
    steps = [int(p["global_step"]) for p in points]
    return {"steps": steps, "wall_s": [p["train_s"] for p in points],
            "accuracy": [p["value"] for p in points], "stage_ends": ends, "losses": hist.losses(),
            "param_epochs": parameter_epochs(hist.phases, steps, batch_size, n_train)}


def method_budget(budget: Budget, method: str, n_stages: int) -> Budget:
    """The budget of one method with ``budget.conv_steps`` optimisation steps in all.

    ``sequential``: split equally over the ``n_stages`` stages, no fine-tuning; ``end-to-end``: no
    sequential training, fine-tuning of all parameters at the sequential learning rate (batch norm in
    training mode) with the budget's loss (distilled from the pretrained network's logits when
    ``budget.distill``, cross-entropy otherwise) and augmentation; ``recipe``: ``budget`` itself. All
    start from the same compressed network, after the budget's data-fitted initialisation when it has one.

    Raises
    ------
    ValueError
        ``recipe`` with a budget whose stages and fine-tuning are not counted in steps, or do not add up
        to ``conv_steps``.
    """
    if method == "recipe":
        if budget.steps_per_stage is None or budget.finetune_epochs:
            raise ValueError(f"the recipe method needs a budget counted in steps; {budget.name} trains "
                             "for epochs")
        total = n_stages * budget.steps_per_stage + budget.finetune_steps
        if total != budget.conv_steps:
            raise ValueError(f"budget {budget.name}: its recipe trains {n_stages} stages x "
                             f"{budget.steps_per_stage} steps + {budget.finetune_steps} fine-tuning steps = "
                             f"{total}, but the other methods get conv_steps = {budget.conv_steps}; "
                             f"pass --conv-steps {total} to compare at equal steps")
        return budget
    if method == "sequential":
        return budget.replace(steps_per_stage=max(1, budget.conv_steps // n_stages), finetune_steps=0)
    return dataclasses.replace(budget, name=budget.name + "+", steps_per_stage=0, epochs_per_stage=None,
                               finetune_steps=budget.conv_steps, finetune_epochs=None, finetune_lr=budget.lr,
                               finetune_freeze_bn=False)


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
    methods: Sequence[str] = DEFAULT_METHODS,
    exclude: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Sequential versus end-to-end training curves for each format at ``rate`` (see module docstring).

    Returns
    -------
    list of dict
        One summary per curve: ``format``, ``method``, ``final_accuracy``, ``steps_within_1pt`` (first),
        ``steps_within_1pt_stays``, ``wall_within_1pt_s``, ``param_epochs_within_1pt``, ``total_steps``,
        ``total_wall_s``, ``total_param_epochs`` (see :func:`parameter_epochs`; ``None`` for curves
        written before parameters were recorded).
    """
    formats, _ = check_formats_and_rates(formats, [rate])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; valid methods: {', '.join(METHODS)}")
    device = torch.device(device)
    out = Path(out)
    config = {"model": model, "dataset": dataset, "budget": budget.to_dict(), "seed": seed,
              "weights_name": Path(weights).name if weights is not None else None,
              "exclude": sorted(exclude) if exclude else None, "study": "convergence"}
    check_config(out, config, write=False)
    # data and weights are loaded before anything is written: a wrong path leaves no folder behind
    data = load_run_data(model, dataset, budget, data_dir, seed=seed)
    teacher = load_teacher(model, weights)
    check_config(out, config)
    (out / "curves").mkdir(exist_ok=True)
    cache = TeacherCache(teacher, len(data.train), dataset=data.train) if budget.cache_teacher else None
    train_only = dataclasses.replace(data, val=None, test=None)  # the curves evaluate with accuracy()

    def accuracy(student: nn.Module) -> float:
        return float(evaluate(student, data.test, limit=budget.conv_eval_limit, device=device)["accuracy"])

    for fmt in formats:
        todo = [m for m in methods if not (out / "curves" / f"{fmt}-{m}.json").exists()]
        if not todo:
            log(f"[convergence] {fmt}: finished, skipped")
            continue
        torch.manual_seed(seed)
        init = compress(teacher, format=fmt, rate=rate, exclude=list(exclude) if exclude else None,
                        input_shape=input_shape(model, budget)).to(device)
        n_stages = len(sequential_phases(copy.deepcopy(init), teacher, data.train, steps=1, lr=budget.lr,
                                         device=device))
        run_budgets = {m: method_budget(budget, m, n_stages) for m in todo}  # all checked before training
        for method, run_budget in run_budgets.items():
            done, work = out / "curves" / f"{fmt}-{method}.json", out / "curves" / f"{fmt}-{method}"
            if not claim_work(work, done, f"[convergence] {fmt} {method}", log):
                continue
            try:
                resumed = any((work / name).exists() for name in CHECKPOINTS)
                log(f"[convergence] {fmt} {method}: {budget.conv_steps} steps ({run_budget.describe()})"
                    + (", resumed from its checkpoint" if resumed else ""))
                result = compress_and_train(
                    teacher, train_only, fmt, rate, run_budget, model_name=model, student=copy.deepcopy(init),
                    cache=cache, callbacks=[EvaluateEvery(budget.conv_eval_every, accuracy)], seed=seed,
                    device=device, checkpoint_dir=work, resume=True,
                    log=lambda line, _label=f"{fmt} {method}": log(f"  {_label}: {line}"),
                )
                curve = _curve(result, run_budget.batch_size, len(data.train))
                curve.update(format=fmt, method=method, rate=rate,
                             achieved_rate=init.tnn_report.achieved_rate, budget=budget.name,
                             eval_limit=budget.conv_eval_limit, n_train=len(data.train), resumed=resumed)
                atomic_write_text(done, json.dumps(curve) + "\n")
                remove_checkpoints(work)  # the finished curve is all that is kept
            finally:
                release(work / CLAIM)
            if done.exists() and not any(work.iterdir()):
                work.rmdir()
            write_convergence_outputs(out, title=f"{model}: sequential vs end-to-end, rate {rate:g}")
    return write_convergence_outputs(out, title=f"{model}: sequential vs end-to-end, rate {rate:g}")


#: The measures of convergence :func:`speedup_rows` compares: summary field, and its name in the table.
SPEEDUP_MEASURES: tuple[tuple[str, str], ...] = (
    ("steps_within_1pt", "steps"), ("wall_within_1pt_s", "wall s"),
    ("param_epochs_within_1pt", "parameter-epochs"),
)


def speedup_rows(summaries: Sequence[dict[str, Any]], reference: str = "end-to-end") -> list[dict[str, Any]]:
    """How much sooner each method comes within one point of its final accuracy than ``reference``.

    For every format and every method run beside ``reference``, the ratio ``reference / method`` of each
    measure in :data:`SPEEDUP_MEASURES` (above 1: the method converges sooner); ``None`` where either value
    is missing or the method's is zero.
    """
    by_key = {(s["format"], s["method"]): s for s in summaries}
    rows = []
    for s in summaries:
        ref = by_key.get((s["format"], reference))
        if s["method"] == reference or ref is None:
            continue
        row: dict[str, Any] = {"format": s["format"], "method": s["method"], "reference": reference}
        for field, _ in SPEEDUP_MEASURES:
            mine, theirs = s.get(field), ref.get(field)
            row[field] = theirs / mine if mine and theirs is not None else None
        rows.append(row)
    return rows


def write_convergence_outputs(out: Path, title: str = "") -> list[dict[str, Any]]:
    """Rewrite ``convergence.csv``, ``convergence.md`` and ``convergence.png`` from the finished curves."""
    curves = [json.loads(p.read_text()) for p in sorted((out / "curves").glob("*.json"))]
    order = {f: i for i, f in enumerate(FORMATS)}
    curves.sort(key=lambda c: (order.get(c["format"], 99), METHODS.index(c["method"])))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["format", "method", "step", "wall_s", "accuracy", "param_epochs"])
    summaries = []
    for c in curves:
        pe = c.get("param_epochs") or [None] * len(c["steps"])
        for s, t, a, e in zip(c["steps"], c["wall_s"], c["accuracy"], pe, strict=True):
            w.writerow([c["format"], c["method"], s, t, a, "" if e is None else e])
        within = steps_to_within(c["steps"], c["accuracy"])
        at = c["steps"].index(within["first"])
        summaries.append({
            "format": c["format"], "method": c["method"], "final_accuracy": within["final"],
            "steps_within_1pt": within["first"], "steps_within_1pt_stays": within["stays"],
            "wall_within_1pt_s": c["wall_s"][at], "param_epochs_within_1pt": pe[at],
            "total_steps": c["steps"][-1], "total_wall_s": c["wall_s"][-1], "total_param_epochs": pe[-1],
            "initial_accuracy": c["accuracy"][0],
        })
    atomic_write_text(out / "convergence.csv", buf.getvalue())

    def millions(value: float | None) -> str:
        return "—" if value is None else f"{value / 1e6:.3g}"

    lines = ["| format | method | test % at step 0 | final test % | steps to within 1 pt (first / stays) | "
             "wall s to within 1 pt | parameter-epochs to within 1 pt (M) | total steps | total wall s | "
             "total parameter-epochs (M) |", "|" + " --- |" * 10]
    for s in summaries:
        lines.append(
            f"| {s['format']} | {s['method']} | {100 * s['initial_accuracy']:.2f} | "
            f"{100 * s['final_accuracy']:.2f} | {s['steps_within_1pt']} / {s['steps_within_1pt_stays']} | "
            f"{s['wall_within_1pt_s']:.0f} | {millions(s['param_epochs_within_1pt'])} | {s['total_steps']} | "
            f"{s['total_wall_s']:.0f} | {millions(s['total_param_epochs'])} |")
    speedups = speedup_rows(summaries)
    if speedups:
        lines += ["", "Convergence speed-up over end-to-end (end-to-end / method, to within 1 point of each "
                  "curve's own final accuracy; above 1: sooner):", "",
                  "| format | method | " + " | ".join(name for _, name in SPEEDUP_MEASURES) + " |",
                  "|" + " --- |" * (2 + len(SPEEDUP_MEASURES))]
        for r in speedups:
            cells = ["—" if r[f] is None else f"{r[f]:.2f}x" for f, _ in SPEEDUP_MEASURES]
            lines.append(f"| {r['format']} | {r['method']} | " + " | ".join(cells) + " |")
    atomic_write_text(out / "convergence.md", (f"### {title}\n\n" if title else "") + "\n".join(lines) + "\n")
    if curves and not plots.available():
        print(plots.skip_warning(out / "convergence.png"), file=sys.stderr)
    elif curves:
        plots.convergence([{**c, "label": f"{c['format']} {c['method']}"} for c in curves],
                          out / "convergence.png", title=title)
    return summaries
