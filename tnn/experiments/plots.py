"""PNG plots of the experiments (matplotlib, Agg backend, small files)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tnn.formats import FORMATS
from tnn.io import MissingExtraError, atomic_write, require
from tnn.io.extras import install_hint


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; :class:`tnn.io.MissingExtraError` without matplotlib."""
    # imported on use: matplotlib is an optional dependency (the 'demo' extra)
    matplotlib = require("matplotlib", "demo", "plotting")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "demo", "plotting")


def available() -> bool:
    """Whether matplotlib can be imported (plots are skipped with a warning otherwise)."""
    try:
        _pyplot()
    except MissingExtraError:
        return False
    return True


def skip_warning(path: str | os.PathLike[str]) -> str:
    """The warning printed when a plot is skipped for want of matplotlib."""
    return (f"warning: matplotlib is not installed, {os.fspath(path)} skipped (the results are written); "
            f"to plot: {install_hint('demo')}")


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write the PNG atomically: processes sharing an output folder never leave a torn image."""
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def _finish(fig: Any, ax: Any, path: str | os.PathLike[str], title: str, **legend: Any) -> None:
    """Title, grid and legend (``legend``: its options) of a one-axis plot, then save and close it."""
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(**legend)
    fig.tight_layout()
    _save(fig, path)
    _pyplot().close(fig)


#: Line colour of each low-rank format; its reshaped format is drawn dashed in the same colour.
_COLOURS = {"svd": "C4", "cp": "C0", "tk": "C1", "tt": "C2", "tr": "C3"}


def _family(fmt: str) -> str:
    """The low-rank format a format belongs with: ``rcp`` -> ``cp``; a low-rank format is its own."""
    return fmt[1:] if fmt.startswith("r") and fmt[1:] in _COLOURS else fmt


def _style(fmt: str) -> dict[str, Any]:
    """Colour and line style of a format's line."""
    base = _family(fmt)
    return {"color": _COLOURS.get(base), "linestyle": "--" if base != fmt else "-"}


def accuracy_vs_rate(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Final test accuracy (%) against the target compression rate (log axis), one line per format.

    The target rate is the x axis because a format that cannot meet a layer's budget keeps it dense, so
    its achieved rate is not monotonic in the target (the tables give the achieved rates).

    Reshaped formats (``r*``) are drawn dashed in the colour of their baseline format; the uncompressed
    model is a grey horizontal line.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=90)
    ok = [r for r in rows if r.get("status") == "ok" and r.get("format") != "baseline"]
    for fmt in [f for f in FORMATS if any(r["format"] == f for r in ok)]:
        pts = sorted((float(r["rate"]), 100 * float(r["acc_final_test"]))
                     for r in ok if r["format"] == fmt and r.get("acc_final_test") is not None)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=fmt, **_style(fmt))
    base_row = next((r for r in rows if r.get("format") == "baseline"), None)
    if base_row is not None and base_row.get("acc_final_test") is not None:
        ax.axhline(100 * float(base_row["acc_final_test"]), color="grey", lw=1, label="uncompressed")
    ax.set_xscale("log")
    ax.set_xlabel("target compression rate (fraction of each layer's parameters kept)")
    ax.set_ylabel("test accuracy (%)")
    _finish(fig, ax, path, title, fontsize=7, ncol=2)


#: Line style of each training method in :func:`convergence` (others dotted).
METHOD_STYLES: dict[str, str] = {"sequential": "-", "recipe": "-.", "end-to-end": "--"}


def convergence(curves: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Test accuracy against optimisation steps, training wall time and, when every curve has them,
    parameter-epochs (trained parameters x epochs, the paper authors' axis).

    ``curves``: dicts with ``label``, ``steps``, ``wall_s``, ``accuracy`` (fractions) and optionally
    ``param_epochs``, ``format`` (one colour per format) and ``method`` (one line style per method:
    :data:`METHOD_STYLES`).
    """
    plt = _pyplot()
    with_pe = bool(curves) and all(c.get("param_epochs") for c in curves)
    n = 3 if with_pe else 2
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 3.8), dpi=90, sharey=True)
    colours: dict[str, str] = {}  # one per format, in order of appearance (cp and rcp apart, unlike _style)
    for c in curves:
        acc = [100 * a for a in c["accuracy"]]
        colour = colours.setdefault(c.get("format", c["label"]), f"C{len(colours)}")
        style = METHOD_STYLES.get(c.get("method", ""), ":")
        xs = [c["steps"], c["wall_s"]] + ([[e / 1e6 for e in c["param_epochs"]]] if with_pe else [])
        for ax, x in zip(axes, xs, strict=True):
            ax.plot(x, acc, style, color=colour, label=c["label"], marker=".", ms=3)
    axes[0].set_xlabel("optimisation steps")
    axes[1].set_xlabel("training wall time (s)")
    if with_pe:
        axes[2].set_xlabel("parameter-epochs (millions)")
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def panel_positions(formats: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``(row, column)`` of each format's panel: one column per family in :data:`tnn.formats.FORMATS`
    order (unknown formats last), the low-rank format in row 0 and its reshaped format in row 1."""
    present = list(dict.fromkeys(formats))
    ordered = [f for f in FORMATS if f in present] + [f for f in present if f not in FORMATS]
    families = list(dict.fromkeys(_family(f) for f in ordered))
    return {f: (int(_family(f) != f), families.index(_family(f))) for f in ordered}


def accuracy_vs_time(curves: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """One panel per format: test accuracy (%) against the wall-clock seconds of the cell (compression and
    fitting included), one line per rate (the same colour for a rate in every panel).

    Columns are format families (``cp`` above ``rcp``, ``tt`` above ``rtt``, ...); the axes are shared, so
    the panels compare formats within one time budget.

    ``curves``: dicts with ``format``, ``rate``, ``wall_s``, ``accuracy`` (fractions), ``test_images``.
    """
    plt = _pyplot()
    where = panel_positions([c["format"] for c in curves])
    nrow = 1 + max((r for r, _ in where.values()), default=0)
    ncol = 1 + max((k for _, k in where.values()), default=0)
    rates = sorted({float(c["rate"]) for c in curves}, reverse=True)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.6 * nrow + 0.6), dpi=90, sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for fmt, (row, col) in where.items():
        ax = axes[row, col]
        ax.set_visible(True)
        for c in sorted((c for c in curves if c["format"] == fmt), key=lambda c: -float(c["rate"])):
            ax.plot(c["wall_s"], [100 * a for a in c["accuracy"]], marker=".", ms=3,
                    color=f"C{rates.index(float(c['rate']))}", label=f"rate {float(c['rate']):g}")
        ax.set_title(fmt, fontsize=9)
        ax.grid(True, alpha=0.3)
        # hidden panels below or to the left must not take the tick labels with them
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.yaxis.set_tick_params(labelleft=True)
        ax.legend(fontsize=7, loc="lower right")
    n = curves[0].get("test_images") if curves else None
    fig.supxlabel("wall-clock seconds of the cell", fontsize=9)
    fig.supylabel(f"test accuracy (%){f', first {n} test images' if n else ''}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def gap_vs_budget(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Left: reshaped − baseline test accuracy (points) against the training images seen (optimisation
    steps where a run's batch size is unknown; log scale), one line per pair; right: both formats'
    accuracies, the reshaped one dashed.

    ``rows``: :func:`tnn.experiments.budget_gap.gap_rows` output.
    """
    plt = _pyplot()
    fig, (ax_gap, ax_acc) = plt.subplots(1, 2, figsize=(9.6, 3.8), dpi=90)
    pairs = list(dict.fromkeys((r["baseline"], r["reshaped"]) for r in rows))
    key = "images" if all(r.get("images") for r in rows) else "steps"
    for i, (base, reshaped) in enumerate(pairs):
        sel = [r for r in rows if (r["baseline"], r["reshaped"]) == (base, reshaped)]
        xs = [r[key] for r in sel]
        color = f"C{i}"
        gaps = [r["gap_points"] for r in sel]
        ax_gap.plot(xs, gaps, marker="o", color=color, label=f"{reshaped} − {base}")
        ax_acc.plot(xs, [r["baseline_acc"] for r in sel], marker="o", color=color, label=base)
        ax_acc.plot(xs, [r["reshaped_acc"] for r in sel], marker="s", ls="--", color=color, label=reshaped)
    ax_gap.axhline(0.0, color="k", lw=0.8)
    for ax in (ax_gap, ax_acc):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training images seen per cell" if key == "images" else "optimisation steps per cell")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax_gap.set_ylabel("reshaped − baseline (points)")
    ax_acc.set_ylabel("test accuracy (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def seed_counts(counts: Sequence[int]) -> str:
    """How many seeds a line's points rest on: ``"3 seeds"``, or ``"3–5 seeds"`` when they differ.

    >>> seed_counts([5, 3, 3])
    '3–5 seeds'
    """
    low, high = min(counts), max(counts)
    return f"{low} seed" if high == 1 else f"{low} seeds" if low == high else f"{low}–{high} seeds"


def seed_gaps(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Mean reshaped − baseline gap (points) against the target rate (log axis), one line per pair, with
    the 95% interval over the seeds as error bars (none with one seed) and a zero line.

    ``rows``: :func:`tnn.experiments.seed_spread.gap_rows` output.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    pairs = list(dict.fromkeys((r["baseline"], r["reshaped"]) for r in rows))
    for i, (base, reshaped) in enumerate(pairs):
        sel = sorted((r for r in rows if (r["baseline"], r["reshaped"]) == (base, reshaped)),
                     key=lambda r: r["rate"])
        # a small offset per pair keeps error bars at the same rate apart
        xs = [r["rate"] * (1 + 0.04 * (i - (len(pairs) - 1) / 2)) for r in sel]
        ys = [r["gap_mean"] for r in sel]
        err = [[0.0 if r["ci_low"] is None else r["gap_mean"] - r["ci_low"] for r in sel],
               [0.0 if r["ci_high"] is None else r["ci_high"] - r["gap_mean"] for r in sel]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=_style(base)["color"],
                    label=f"{reshaped} − {base} ({seed_counts([r['n_seeds'] for r in sel])})")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("target compression rate")
    ax.set_ylabel("reshaped − baseline, test (points)")
    _finish(fig, ax, path, title, fontsize=8)
