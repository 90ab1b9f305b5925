"""Seed-to-seed spread of a table, and which reshaped − baseline gaps exceed it.

Reads the ``results.csv`` of several runs of one table that differ only in ``--seed`` (the seed draws
the held-out images, the training subset and batch order, and any random initialisation) and writes:

- per format and rate: the mean and sample standard deviation of the test accuracy over the seeds;
- per pair (``cp:rcp``, ...) and rate: the gap reshaped − baseline in points, *paired by seed* (both
  cells of one seed saw the same images), its mean, standard deviation and 95% confidence interval
  (Student's t with n − 1 degrees of freedom). A gap **exceeds the seed noise** when that interval
  excludes zero; with one seed there is no interval.

::

    python -m tnn.experiments.seed_spread --runs runs/seed0 runs/seed1 runs/seed2 \\
        --pairs cp:rcp tk:rtk tt:rtt tr:rtr --out docs/results/resnet32-seeds

writes ``OUT/spread.csv`` (per format and rate), ``OUT/gaps.csv`` (per pair and rate), ``OUT/seeds.md``
(both tables) and ``OUT/gaps.png`` (the gaps with their intervals against the rate).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tnn.experiments import plots
from tnn.experiments.budget_gap import parse_pair
from tnn.experiments.runner import CONFIG_KEYS, config_differences
from tnn.experiments.tables import csv_text, finished_cells, read_csv, same_layers
from tnn.formats import FORMATS
from tnn.io import atomic_write_text

__all__ = ["SPREAD_FIELDS", "GAP_FIELDS", "gap_rows", "spread_rows", "seeds_markdown", "t_quantile"]

SPREAD_FIELDS = ("format", "rate", "n_seeds", "mean", "std", "values", "seeds")
GAP_FIELDS = ("baseline", "reshaped", "rate", "n_seeds", "baseline_mean", "baseline_std", "reshaped_mean",
              "reshaped_std", "gap_mean", "gap_std", "ci_low", "ci_high", "exceeds_noise", "gaps", "seeds",
              "note")

#: Two-sided 95% quantiles of Student's t (``t_{0.975}``) for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)

#: ``config.json`` keys that must agree between the runs (everything but the seed).
_SAME = tuple(k for k in CONFIG_KEYS if k != "seed")


def t_quantile(dof: int) -> float:
    """``t_{0.975}`` with ``dof`` degrees of freedom (1.96, the normal quantile, above 30).

    >>> t_quantile(2)
    4.303
    """
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _order_key(fmt: str, rate: float) -> tuple[int, float]:
    return (FORMATS.index(fmt) if fmt in FORMATS else len(FORMATS), rate)


def spread_rows(runs: Sequence[tuple[int, Sequence[dict[str, Any]]]],
                metric: str = "acc_final_test") -> list[dict[str, Any]]:
    """Mean and standard deviation (points) of ``metric`` over the seeds, per finished (format, rate).

    Parameters
    ----------
    runs : sequence of (seed, rows)
        Each run's seed and ``results.csv`` rows (:func:`tnn.experiments.tables.read_csv`).
    metric : str
        An accuracy column (fractions); reported in percent.

    Returns
    -------
    list of dict
        Keys :data:`SPREAD_FIELDS`; ``std`` is ``None`` with one seed; ``values`` and ``seeds`` are
        ``/``-joined per-seed accuracies and seeds. Sorted by format (:data:`tnn.formats.FORMATS` order),
        then rate.
    """
    found: dict[tuple[str, float], list[tuple[int, float]]] = {}
    for seed, rows in runs:
        for key, row in finished_cells(rows).items():
            if row.get(metric) is not None:
                found.setdefault(key, []).append((seed, 100 * float(row[metric])))
    out = []
    for (fmt, rate), pts in sorted(found.items(), key=lambda kv: _order_key(*kv[0])):
        pts.sort()
        mean, std = _mean_std([v for _, v in pts])
        out.append({"format": fmt, "rate": rate, "n_seeds": len(pts), "mean": round(mean, 2),
                    "std": _round(std), "values": "/".join(f"{v:.2f}" for _, v in pts),
                    "seeds": "/".join(str(s) for s, _ in pts)})
    return out


def gap_rows(runs: Sequence[tuple[int, Sequence[dict[str, Any]]]], pairs: Sequence[tuple[str, str]],
             metric: str = "acc_final_test") -> list[dict[str, Any]]:
    """The paired gap reshaped − baseline (points) per pair and rate, over the seeds where both cells
    finished.

    Returns
    -------
    list of dict
        Keys :data:`GAP_FIELDS`. ``gap_mean`` ± ``gap_std`` over the per-seed gaps; ``ci_low`` /
        ``ci_high`` the 95% interval of the mean gap (``None`` with one seed); ``exceeds_noise`` whether
        it excludes zero; ``note`` says when the two formats kept different layers dense at some seed
        (:func:`tnn.experiments.tables.same_layers`; then the gap compares unlike networks).
        Sorted by pair (in the order given), then rate.
    """
    out = []
    for base, reshaped in pairs:
        per_rate: dict[float, list[tuple[int, float, float, bool]]] = {}
        for seed, rows in runs:
            cells = finished_cells(rows)
            for (fmt, rate), a in cells.items():
                b = cells.get((reshaped, rate))
                if fmt != base or b is None or a.get(metric) is None or b.get(metric) is None:
                    continue
                same = same_layers(a, b)
                per_rate.setdefault(rate, []).append(
                    (seed, 100 * float(a[metric]), 100 * float(b[metric]), same))
        for rate in sorted(per_rate):
            pts = sorted(per_rate[rate])
            gaps = [y - x for _, x, y, _ in pts]
            x_mean, x_std = _mean_std([x for _, x, _, _ in pts])
            y_mean, y_std = _mean_std([y for _, _, y, _ in pts])
            g_mean, g_std = _mean_std(gaps)
            if g_std is None:
                low = high = None
            else:
                half = t_quantile(len(gaps) - 1) * g_std / math.sqrt(len(gaps))
                low, high = g_mean - half, g_mean + half
            mixed = [str(s) for s, _, _, same in pts if not same]
            out.append({
                "baseline": base, "reshaped": reshaped, "rate": rate, "n_seeds": len(pts),
                "baseline_mean": round(x_mean, 2), "baseline_std": _round(x_std),
                "reshaped_mean": round(y_mean, 2), "reshaped_std": _round(y_std),
                "gap_mean": round(g_mean, 2), "gap_std": _round(g_std), "ci_low": _round(low),
                "ci_high": _round(high),
                "exceeds_noise": None if low is None else bool(low > 0 or high < 0),
                "gaps": "/".join(f"{g:+.2f}" for g in gaps), "seeds": "/".join(str(s) for s, *_ in pts),
                "note": f"different layers kept dense at seed(s) {', '.join(mixed)}" if mixed else "",
            })
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def seeds_markdown(spread: Sequence[dict[str, Any]], gaps: Sequence[dict[str, Any]]) -> str:
    """Two tables: the gaps (with intervals and verdicts), then every format's mean ± sd per rate."""
    lines = ["| pair | rate | seeds | baseline % | reshaped % | gap (points) | 95% interval | per seed | "
             "exceeds seed noise |", "|" + " --- |" * 9]
    for r in gaps:
        interval = "—" if r["ci_low"] is None else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        verdict = {None: "— (one seed)", True: "**yes**", False: "no"}[r["exceeds_noise"]]
        if r["note"]:
            verdict += f" ({r['note']})"
        gap = f"{r['gap_mean']:+.2f}" + ("" if r["gap_std"] is None else f" ± {r['gap_std']:.2f}")
        lines.append(f"| {r['reshaped']} − {r['baseline']} | {r['rate']:g} | {r['n_seeds']} | "
                     f"{_pm(r['baseline_mean'], r['baseline_std'])} | "
                     f"{_pm(r['reshaped_mean'], r['reshaped_std'])} | {gap} | {interval} | {r['gaps']} | "
                     f"{verdict} |")
    lines += ["", "| format | rate | seeds | test % (mean ± sd) | per seed |", "|" + " --- |" * 5]
    for r in spread:
        lines.append(f"| {r['format']} | {r['rate']:g} | {r['n_seeds']} | {_pm(r['mean'], r['std'])} | "
                     f"{r['values']} |")
    return "\n".join(lines) + "\n"


def write_seed_outputs(out: str | os.PathLike[str], spread: Sequence[dict[str, Any]],
                       gaps: Sequence[dict[str, Any]], title: str = "") -> None:
    """``spread.csv``, ``gaps.csv``, ``seeds.md`` and (with matplotlib) ``gaps.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spread.csv", csv_text(spread, SPREAD_FIELDS))
    atomic_write_text(out / "gaps.csv", csv_text(gaps, GAP_FIELDS))
    atomic_write_text(out / "seeds.md", (f"### {title}\n\n" if title else "") + seeds_markdown(spread, gaps))
    if gaps and plots.available():
        plots.seed_gaps(gaps, out / "gaps.png", title=title)


def load_runs(folders: Sequence[str | os.PathLike[str]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """``(seed, rows)`` of each experiment folder (its ``config.json`` and ``results.csv``).

    Raises
    ------
    ValueError
        A folder without ``results.csv`` / ``config.json``, two folders with the same seed, or folders
        whose model, dataset, budget, weights or excluded layers differ.
    """
    runs, first, seen = [], None, {}
    for folder in folders:
        folder = Path(folder)
        for name in ("results.csv", "config.json"):
            if not (folder / name).is_file():
                raise ValueError(f"{folder / name} does not exist: every --runs folder is a `tnn experiment` "
                                 f"output with {name}")
        config = json.loads((folder / "config.json").read_text())
        seed = int(config.get("seed", 0))
        if seed in seen:
            raise ValueError(f"{seen[seed]} and {folder} both ran seed {seed}; each run needs its own seed")
        seen[seed] = folder
        if first is None:
            first = (folder, config)
        else:
            diff = config_differences(first[1], config, keys=_SAME)
            if diff:
                raise ValueError(f"{folder} differs from {first[0]} in {', '.join(diff)}: the runs must "
                                 f"differ only in the seed")
        runs.append((seed, read_csv(folder / "results.csv")))
    return runs


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tnn.experiments.seed_spread", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                   help="experiment folders of one table, one per seed")
    p.add_argument("--pairs", nargs="+", default=["cp:rcp", "tk:rtk", "tt:rtt", "tr:rtr"],
                   metavar="BASE:RESHAPED")
    p.add_argument("--metric", default="acc_final_test", help="accuracy column of results.csv")
    p.add_argument("--out", required=True, help="folder for spread.csv, gaps.csv, seeds.md and gaps.png")
    p.add_argument("--title", default="", help="title of the tables and plot")
    args = p.parse_args(argv)
    try:
        pairs = [parse_pair(t) for t in args.pairs]
        runs = load_runs(args.runs)
        spread, gaps = spread_rows(runs, args.metric), gap_rows(runs, pairs, args.metric)
    except ValueError as exc:
        p.error(str(exc))
    write_seed_outputs(args.out, spread, gaps, title=args.title)
    print(seeds_markdown(spread, gaps), end="")


if __name__ == "__main__":
    main()
