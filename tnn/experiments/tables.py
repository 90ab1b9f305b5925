"""``results.csv`` and the Markdown tables of an experiment.

Accuracies are fractions in the CSV and percentages (two decimals) in the Markdown tables. The
baseline row has ``format == "baseline"``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from tnn.formats import FORMATS
from tnn.io import atomic_write_text

#: Columns of ``results.csv``, in order (a row may leave any of them empty).
CSV_FIELDS: tuple[str, ...] = (
    "model", "dataset", "budget", "format", "rate", "status", "achieved_rate", "model_rate",
    "params_before", "params_after", "model_params", "layers_compressed", "layers_dense", "dense_layers",
    "acc_init_val", "acc_init_test", "acc_fit_val", "acc_fit_test", "acc_seq_val", "acc_seq_test",
    "acc_ft_val", "acc_ft_test", "acc_final_val", "acc_final_test", "steps_seq", "steps_ft", "stages",
    "final_stage_loss",
    "wall_compress_s", "wall_fit_s", "wall_teacher_s", "wall_seq_s", "wall_ft_s", "wall_eval_s", "wall_s",
    "resumed", "seed", "n_train", "n_val", "n_test", "error",
)


def csv_text(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    """``rows`` as CSV text with the columns ``fields`` (missing and ``None`` values empty, other keys
    ignored)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` with the columns :data:`CSV_FIELDS` (atomically)."""
    atomic_write_text(path, csv_text(rows, CSV_FIELDS))


def _number(value: str) -> Any:
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` with numbers parsed (empty cells are ``None``)."""
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _pct(value: Any) -> str:
    return "—" if value is None or value == "" else f"{100 * float(value):.2f}"


def _order(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[float]]:
    present = {r["format"] for r in rows if r.get("format") != "baseline"}
    formats = [f for f in FORMATS if f in present] + sorted(present - set(FORMATS))
    rates = sorted({float(r["rate"]) for r in rows if r.get("format") != "baseline"})
    return formats, rates


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """Formats as rows, rates as columns: test accuracy (%) after sequential training, and after
    fine-tuning when the budget fine-tunes (``seq / ft``); the baseline first."""
    formats, rates = _order(rows)
    cell = {(r["format"], float(r["rate"])): r for r in rows if r.get("format") != "baseline"}
    base = next((r for r in rows if r.get("format") == "baseline"), None)
    tuned = any(r.get("acc_ft_test") not in (None, "") for r in rows)
    unit = ("test accuracy %, after sequential training / fine-tuning (one figure: the budget has one)"
            if tuned else "test accuracy %, sequential")
    head = "| format | " + " | ".join(f"rate {r:g}" for r in rates) + " |"
    lines = [f"*{unit}*", "", head, "|" + " --- |" * (len(rates) + 1)]
    if base is not None:
        lines.append(f"| uncompressed | {_pct(base.get('acc_seq_test'))} |" + " |" * (len(rates) - 1))
    for fmt in formats:
        parts = []
        for rate in rates:
            r = cell.get((fmt, rate))
            if r is None:
                parts.append("not run")
            elif r.get("status") != "ok":
                parts.append("failed")
            elif tuned and r.get("acc_seq_test") not in (None, ""):
                parts.append(f"{_pct(r.get('acc_seq_test'))} / {_pct(r.get('acc_ft_test'))}")
            else:
                parts.append(_pct(r.get("acc_final_test")))
        lines.append(f"| {fmt} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def detail_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per cell: achieved rate, parameters, accuracies, steps and wall time."""
    formats, rates = _order(rows)
    cell = {(r["format"], float(r["rate"])): r for r in rows if r.get("format") != "baseline"}
    head = ("| format | target rate | achieved rate (layers) | model params | val % init | val % fit | "
            "val % seq | test % init | test % seq | test % ft | steps seq+ft | wall s |")
    lines = [head, "|" + " --- |" * 12]
    base = next((r for r in rows if r.get("format") == "baseline"), None)
    if base is not None:
        lines.append(f"| uncompressed | 1 | 1 | {base.get('model_params', '—')} | — | — | "
                     f"{_pct(base.get('acc_seq_val'))} | — | {_pct(base.get('acc_seq_test'))} | — | — | — |")
    for rate in rates:
        for fmt in formats:
            r = cell.get((fmt, rate))
            if r is None:
                continue
            if r.get("status") != "ok":
                lines.append(f"| {fmt} | {rate:g} | failed: {str(r.get('error', ''))[:80]} |" + " |" * 9)
                continue
            dense = f", {r['layers_dense']} dense" if r.get("layers_dense") else ""
            lines.append(
                f"| {fmt} | {rate:g} | {float(r['achieved_rate']):.4f}{dense} | {r.get('model_params')} | "
                f"{_pct(r.get('acc_init_val'))} | {_pct(r.get('acc_fit_val'))} | "
                f"{_pct(r.get('acc_seq_val'))} | "
                f"{_pct(r.get('acc_init_test'))} | {_pct(r.get('acc_seq_test'))} | "
                f"{_pct(r.get('acc_ft_test'))} | {r.get('steps_seq')}+{r.get('steps_ft') or 0} | "
                f"{float(r.get('wall_s') or 0):.0f} |"
            )
    return "\n".join(lines) + "\n"


def dense_layers_text(layers: Sequence[tuple[str, str]]) -> str:
    """The ``dense_layers`` field of a row: ``"name (reason); ..."`` for each ``(name, reason)`` a cell kept
    dense (a ``;`` inside a reason becomes ``,`` so that :func:`dense_names` reads the names back)."""
    return "; ".join(f"{name} ({reason.replace(';', ',')})" for name, reason in layers)


def dense_names(row: dict[str, Any]) -> list[str] | None:
    """The names of the layers a cell kept dense, from its ``dense_layers`` field
    (:func:`dense_layers_text`); ``None`` when the row does not record them (cells written before the
    field existed)."""
    text = row.get("dense_layers")
    if text is None:
        return None
    return [item.split(" (", 1)[0].strip() for item in str(text).split("; ") if item.strip()]


def same_layers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two cells compress the same layers: the same dense layers by name where both rows record
    them, else the same number of compressed layers."""
    names_a, names_b = dense_names(a), dense_names(b)
    if names_a is not None and names_b is not None:
        return sorted(names_a) == sorted(names_b) and a.get("layers_compressed") == b.get("layers_compressed")
    return a.get("layers_compressed") == b.get("layers_compressed")


def dense_notes(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown list of the cells that kept layers dense, each with the layers and the reasons; empty
    when every cell compressed every eligible layer."""
    lines = [f"- {r['format']} @ {float(r['rate']):g}: {r['dense_layers']}" for r in rows
             if r.get("format") != "baseline" and r.get("status") == "ok" and r.get("dense_layers")]
    return ("Kept dense (the budget cannot be met there):\n\n" + "\n".join(lines) + "\n") if lines else ""


def finished_cells(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, float], dict[str, Any]]:
    """The finished (``status == "ok"``) cells of a table by ``(format, rate)``; the baseline left out."""
    return {(r["format"], float(r["rate"])): r for r in rows
            if r.get("status") == "ok" and r.get("format") != "baseline"}


def comparison_table(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]],
                     metric: str = "acc_final_test") -> str:
    """Formats as rows, rates as columns: ``metric`` (%) of two runs of the same table cell by cell, as
    ``before → after (±gain)``; a cell missing or failed in either run reads ``—``.

    Cells are matched by ``(format, rate)``; the rates are those of ``after``.
    """
    formats, rates = _order(after)
    old, new = finished_cells(before), finished_cells(after)
    lines = ["| format | " + " | ".join(f"rate {r:g}" for r in rates) + " |",
             "|" + " --- |" * (len(rates) + 1)]
    for fmt in formats:
        parts = []
        for rate in rates:
            a, b = old.get((fmt, rate)), new.get((fmt, rate))
            if a is None or b is None or a.get(metric) is None or b.get(metric) is None:
                parts.append("—")
                continue
            x, y = 100 * float(a[metric]), 100 * float(b[metric])
            parts.append(f"{x:.2f} → {y:.2f} ({y - x:+.2f})")
        lines.append(f"| {fmt} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def markdown(rows: Sequence[dict[str, Any]], title: str = "", budget_line: str = "") -> str:
    """The summary and detail tables with a title and the budget, as one Markdown document."""
    parts = []
    if title:
        parts.append(f"### {title}\n")
    if budget_line:
        parts.append(f"Budget: {budget_line}\n")
    parts += [summary_table(rows), detail_table(rows)]
    notes = dense_notes(rows)
    if notes:
        parts.append(notes)
    return "\n".join(parts)
