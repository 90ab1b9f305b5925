"""The experiment runner: one table (model x dataset x formats x rates x budget), resumable by cell.

Layout of ``out`` (every file written atomically)::

    out/config.json                 model, dataset, budget (a rerun must use the same budget)
    out/baseline.json               the uncompressed model's validation / test accuracy
    out/cells/<format>-r<rate>/     one folder per cell: result.json when finished, training
                                    checkpoints and claim.json (the process working on it) while
                                    running (removed when the cell finishes), error.txt if it failed
    out/results.csv                 one row per finished cell plus the baseline
    out/results.md                  the Markdown tables (tnn.experiments.tables)
    out/accuracy_vs_rate.png        test accuracy against achieved rate, one line per format

A cell with a ``result.json`` is never recomputed; an interrupted cell resumes from its checkpoints.
Several processes may run the same command on one ``out`` (one per core): each cell is claimed by the
first process to reach it (:func:`tnn.io.claim`) and skipped by the others.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tnn.compression import n_params
from tnn.experiments import plots, tables
from tnn.formats import FORMATS, check_format, check_rate
from tnn.io import atomic_write_text, claim, claim_holder, release
from tnn.models import get_model, load_pretrained, model_info
from tnn.recipes import (
    CHECKPOINT_SEQUENTIAL,
    Budget,
    RunData,
    compress_and_train,
    load_run_data,
    remove_checkpoints,
)
from tnn.train import EvaluateEvery, TeacherCache, accuracy


def input_shape(model: str, budget: Budget) -> tuple[int, ...]:
    """Per-sample input shape of ``model`` under ``budget`` (image-folder budgets set the crop size)."""
    shape = model_info(model).input_shape
    if budget.image_size is not None and model_info(model).dataset == "imagenet":
        return (shape[0], budget.image_size, budget.image_size)
    return shape


def cell_name(fmt: str, rate: float) -> str:
    """Folder name of a cell, e.g. ``rtt-r0.1``."""
    return f"{fmt}-r{rate:g}"


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_teacher(model: str, weights: str | os.PathLike[str] | None, num_classes: int | None = None
                 ) -> nn.Module:
    """``get_model(model)`` with ``weights`` loaded (random initialisation without weights)."""
    teacher = get_model(model) if num_classes is None else get_model(model, num_classes=num_classes)
    if weights is not None:
        path = Path(weights)
        if path.is_dir():
            raise ValueError(f"weights file {str(path)!r} is a directory; give the weights file in it")
        if not path.is_file():
            raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
        load_pretrained(teacher, path)
    return teacher.eval()


#: Name of the claim file in a cell folder while a process works on the cell (tnn.io.claim).
CLAIM = "claim.json"

#: Budget fields that cannot change a finished table cell (the convergence study's settings, and how
#: often a cell saves its training state), so a table folder may be continued after they change.
TABLE_NEUTRAL_FIELDS = ("conv_steps", "conv_eval_every", "conv_eval_limit", "checkpoint_every", "curve_every",
                        "curve_limit")


def claim_work(folder: Path, finished: Path, label: str, log: Callable[[str], None]) -> bool:
    """Claim the unit of work in ``folder`` (a table cell, a convergence curve) for this process.

    ``False``, with a line to ``log``, when another live process holds it; ``False`` (claim released) when
    ``finished`` appeared meanwhile. ``True``: the caller runs it and releases ``folder / CLAIM`` after.
    """
    if not claim(folder / CLAIM):
        holder = claim_holder(folder / CLAIM) or {}
        log(f"{label}: running in another process (pid {holder.get('pid')} on {holder.get('host')}), skipped")
        return False
    if finished.exists():  # finished by another process since the caller looked
        release(folder / CLAIM)
        return False
    return True


def _holds_results(out: Path) -> bool:
    """Whether ``out`` holds anything besides ``config.json``: a baseline, a cell or a curve."""
    return any(p.is_file() and p.name != "config.json" for p in out.rglob("*"))


#: ``config.json`` keys two runs of one table must agree on.
CONFIG_KEYS = ("model", "dataset", "budget", "seed", "weights_name", "exclude")


def config_differences(before: dict[str, Any], now: dict[str, Any], keys: Sequence[str] = CONFIG_KEYS,
                       neutral: Sequence[str] = TABLE_NEUTRAL_FIELDS) -> list[str]:
    """The ``keys`` in which two run configurations (``config.json``) differ.

    The budgets' ``neutral`` fields may differ, and a :class:`Budget` field one configuration lacks
    (added after it was written) counts as its default.
    """
    defaults = Budget("defaults", steps_per_stage=1).to_dict()
    differ = []
    for key in keys:
        a, b = before.get(key), now.get(key)
        if key == "budget" and isinstance(a, dict) and isinstance(b, dict):
            fields = (a.keys() | b.keys()) - set(neutral)
            a, b = ({k: budget.get(k, defaults.get(k)) for k in fields} for budget in (a, b))
        if a != b:
            differ.append(key)
    return differ


def check_config(out: Path, config: dict[str, Any], neutral: tuple[str, ...] = (),
                 write: bool = True) -> None:
    """Refuse to continue ``out`` when it holds a run of another model, dataset, budget, seed, weights or
    exclusion list (see :func:`config_differences`). A folder holding only ``config.json`` (a run that
    failed before computing anything) takes the new configuration. Without ``write``, only compare:
    nothing is created."""
    path = out / "config.json"
    if path.exists() and _holds_results(out):
        old = json.loads(path.read_text())
        differ = config_differences(old, config, neutral=neutral)
        if differ:
            key = differ[0]
            raise ValueError(
                f"{out} holds a run with {key}={old.get(key)!r}, this run has {key}={config.get(key)!r}; "
                "finished cells would mix budgets: use another output folder"
            )
    elif write:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(path, config)


def check_formats_and_rates(formats: Sequence[str], rates: Sequence[float]) -> tuple[list[str], list[float]]:
    """The ``formats`` and ``rates`` of a study, checked (at least one of each, every rate in (0, 1]).

    Raises
    ------
    ValueError
        Naming the first unknown format or bad rate, or the empty list.
    """
    if not formats:
        raise ValueError(f"unknown format(s) []: give at least one of {', '.join(FORMATS)}")
    checked_formats = [check_format(f) for f in formats]
    checked_rates = []
    for r in rates:
        try:
            checked_rates.append(check_rate(r))
        except ValueError as exc:
            raise ValueError(f"rates must be numbers in (0, 1], got {r!r}") from exc
    if not checked_rates:
        raise ValueError("rates must be numbers in (0, 1], got []")
    return checked_formats, checked_rates


def run_baseline(out: Path, model: str, dataset: str, teacher: nn.Module, data: RunData,
                 budget: Budget, device: torch.device) -> dict[str, Any]:
    """The uncompressed row (computed once, then read from ``out/baseline.json``)."""
    path = out / "baseline.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    t0 = time.perf_counter()
    params = n_params(teacher)
    row = {
        "model": model, "dataset": dataset, "budget": budget.name, "format": "baseline", "rate": 1.0,
        "status": "ok", "achieved_rate": 1.0, "model_rate": 1.0, "params_after": params,
        "model_params": params,
        "acc_seq_val": accuracy(teacher, data.val, budget.val_limit, device),
        "acc_seq_test": accuracy(teacher, data.test, budget.eval_limit, device),
        **data.sizes(),
    }
    row["acc_final_test"] = row["acc_seq_test"]
    row["wall_eval_s"] = round(time.perf_counter() - t0, 2)
    _write_json(path, row)
    return row


def run_cell(cell_dir: Path, model: str, dataset: str, fmt: str, rate: float, teacher: nn.Module,
             data: RunData, budget: Budget, cache: TeacherCache | None, *, seed: int = 0,
             exclude: Sequence[str] | None = None, device: torch.device,
             progress: bool = False) -> dict[str, Any]:
    """Compress, train and evaluate one cell with :func:`tnn.recipes.compress_and_train`; its row."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    resumed = (cell_dir / CHECKPOINT_SEQUENTIAL).exists()
    t_cell = time.perf_counter()
    callbacks = []
    if budget.curve_every and data.test is not None:
        callbacks.append(EvaluateEvery(budget.curve_every,
                                       lambda m: accuracy(m, data.test, budget.curve_limit, device) or 0.0))
    result = compress_and_train(
        teacher, data, fmt, rate, budget, model_name=model, exclude=list(exclude) if exclude else None,
        input_shape=input_shape(model, budget), cache=cache, checkpoint_dir=cell_dir, resume=True, seed=seed,
        device=device, progress=progress, callbacks=callbacks,
    )
    report = result.report
    fig = result.figures
    if callbacks:
        start = fig.get("wall_compress_s", 0.0) + fig.get("wall_fit_s", 0.0)
        points = result.history().evaluations
        _write_json(cell_dir / "curve.json", {
            "format": fmt, "rate": rate, "test_images": budget.curve_limit,
            "steps": [p["global_step"] for p in points],
            "wall_s": [round(start + p["train_s"], 2) for p in points],
            "accuracy": [p["value"] for p in points],
        })
    row: dict[str, Any] = {
        "model": model, "dataset": dataset, "budget": budget.name, "format": fmt, "rate": rate,
        "status": "ok", "achieved_rate": report.achieved_rate, "model_rate": report.model_rate,
        "params_before": report.params_before, "params_after": report.params_after,
        "model_params": report.model_params_after, "layers_compressed": len(report.compressed),
        "layers_dense": len(report.dense),
        "dense_layers": tables.dense_layers_text([(r.name, r.reason) for r in report.dense]),
        "acc_ft_val": None, "acc_ft_test": None, **fig,
    }
    row.update(wall_s=round(time.perf_counter() - t_cell, 2), resumed=resumed, seed=seed, **data.sizes())
    _write_json(cell_dir / "result.json", row)
    remove_checkpoints(cell_dir)  # the curve and the row are kept
    (cell_dir / "error.txt").unlink(missing_ok=True)
    return row


def collect_rows(out: Path, formats: Sequence[str] | None = None, rates: Sequence[float] | None = None
                 ) -> list[dict[str, Any]]:
    """The baseline and every finished (or failed) cell in ``out`` (optionally only the given ones)."""
    rows = []
    if (out / "baseline.json").exists():
        rows.append(json.loads((out / "baseline.json").read_text()))
    cells = out / "cells"
    wanted = None
    if formats is not None and rates is not None:
        wanted = {cell_name(f, float(r)) for f in formats for r in rates}
    for d in sorted(cells.iterdir()) if cells.is_dir() else []:
        if wanted is not None and d.name not in wanted:
            continue
        if (d / "result.json").exists():
            rows.append(json.loads((d / "result.json").read_text()))
        elif (d / "error.json").exists():
            rows.append(json.loads((d / "error.json").read_text()))
    return rows


def write_outputs(out: Path, title: str = "", budget_line: str = "") -> list[dict[str, Any]]:
    """Rewrite ``results.csv``, ``results.md`` and ``accuracy_vs_rate.png`` from the finished cells."""
    rows = collect_rows(out)
    tables.write_csv(out / "results.csv", rows)
    text = tables.markdown(rows, title=title, budget_line=budget_line)
    atomic_write_text(out / "results.md", text)
    if any(r.get("format") != "baseline" and r.get("status") == "ok" for r in rows):
        if plots.available():
            plots.accuracy_vs_rate(rows, out / "accuracy_vs_rate.png", title=title)
            curves = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/curve.json"))]
            if curves:
                plots.accuracy_vs_time(curves, out / "accuracy_vs_time.png", title=title)
        else:
            print(plots.skip_warning(out / "accuracy_vs_rate.png"), file=sys.stderr)
    return rows


def run_experiment(
    model: str,
    dataset: str,
    formats: Sequence[str],
    rates: Sequence[float],
    budget: Budget,
    out: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = False,
    exclude: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    max_cells: int | None = None,
) -> list[dict[str, Any]]:
    """Run every cell (format x rate) of a table that is not finished yet, then write the outputs.

    Parameters
    ----------
    model, dataset : str
        Names of :mod:`tnn.models` / :mod:`tnn.data` (e.g. ``"resnet32"``, ``"cifar10"``).
    formats : list of str
        Formats of :data:`tnn.FORMATS`, run in this order.
    rates : list of float
        Target compression rates in ``(0, 1]``; cells run rate by rate (all formats of the first rate
        first).
    budget : Budget
        From :func:`tnn.experiments.get_budget`.
    out : path
        Output folder (see the module docstring); rerunning with the same folder skips finished cells.
    weights : path, optional
        Pretrained weights of the uncompressed model; without them the teacher is randomly initialised
        (only for tests: no accuracy is claimed).
    data_dir : path, optional
        Data root (default ``$TNN_DATA_DIR``).
    exclude : list of str, optional
        Glob patterns of layers kept dense in every format (e.g. ``["fc2"]``, the classifier: the
        baseline formats cannot compress it at small rates, so excluding it compares the same layers).
    max_cells : int, optional
        Stop after computing this many cells (for tests).

    Returns
    -------
    list of dict
        The rows of ``results.csv`` (baseline first).
    """
    formats, rates = check_formats_and_rates(formats, rates)
    device = torch.device(device)
    out = Path(out)
    config = {
        "model": model, "dataset": dataset, "budget": budget.to_dict(), "seed": seed,
        "weights_name": Path(weights).name if weights is not None else None,
        "exclude": sorted(exclude) if exclude else None,
    }
    check_config(out, config, neutral=TABLE_NEUTRAL_FIELDS, write=False)
    title = f"{model} on {dataset}"
    # data and weights are loaded before anything is written: a wrong path leaves no folder behind
    data = load_run_data(model, dataset, budget, data_dir, seed=seed)
    teacher = load_teacher(model, weights)
    check_config(out, config, neutral=TABLE_NEUTRAL_FIELDS)
    baseline = run_baseline(out, model, dataset, teacher, data, budget, device)
    log(f"[{title}] baseline: test accuracy {baseline['acc_seq_test']:.4f} "
        f"({data.sizes()}); budget {budget.describe()}")
    # the teacher's stage outputs on the training subset, computed once and shared by every cell
    cache = TeacherCache(teacher, len(data.train), dataset=data.train) if budget.cache_teacher else None
    computed = 0
    for rate in rates:
        for fmt in formats:
            cell_dir = out / "cells" / cell_name(fmt, rate)
            if (cell_dir / "result.json").exists():
                log(f"[{title}] {cell_name(fmt, rate)}: finished, skipped")
                continue
            if max_cells is not None and computed >= max_cells:
                continue
            if not claim_work(cell_dir, cell_dir / "result.json", f"[{title}] {cell_name(fmt, rate)}", log):
                continue
            computed += 1
            log(f"[{title}] {cell_name(fmt, rate)}: running")
            try:
                row = run_cell(cell_dir, model, dataset, fmt, rate, teacher, data, budget, cache, seed=seed,
                               exclude=exclude, device=device, progress=progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one failing cell must not stop the table
                atomic_write_text(cell_dir / "error.txt", traceback.format_exc())
                _write_json(cell_dir / "error.json", {
                    "model": model, "dataset": dataset, "budget": budget.name, "format": fmt, "rate": rate,
                    "status": "error", "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
                })
                log(f"[{title}] {cell_name(fmt, rate)}: FAILED {type(exc).__name__}: {exc}")
                continue
            finally:
                release(cell_dir / CLAIM)
            (cell_dir / "error.json").unlink(missing_ok=True)
            phases = "".join(f", {name} {row[key]:.4f}" for name, key in (
                ("after the fit", "acc_fit_test"), ("after sequential training", "acc_seq_test"),
                ("fine-tuned", "acc_ft_test")) if row.get(key) is not None)
            log(f"[{title}] {cell_name(fmt, rate)}: achieved rate {row['achieved_rate']:.4f}, test accuracy "
                f"{row['acc_final_test']:.4f}{phases}; {row['wall_s']:.0f} s")
            write_outputs(out, title, budget.describe())
    return write_outputs(out, title, budget.describe())
