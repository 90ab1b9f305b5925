"""``tnn demo``: the whole job on a laptop, offline — LeNet-5 on ``digits`` compressed in five formats.

1. train LeNet-5 on scikit-learn's ``digits`` (upsampled to 28x28; no download);
2. compress it with ``rcp``, ``rtt``, ``cp``, ``tk`` and ``tt`` at rate 0.1 (factors from decomposing
   the trained kernels);
3. recover accuracy by sequential (data-reconstruction) training, stage by stage;
4. print a table (format, parameters, achieved rate, accuracy before / after training) and write
   ``OUT/results.json``, ``OUT/results.md``, ``OUT/demo.png`` and the trained ``OUT/lenet5.pt``.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import torch

from tnn.cli import common
from tnn.cli.errors import CLIError
from tnn.compression import compressed_metadata, save_model
from tnn.data import get_dataset
from tnn.io import atomic_write, atomic_write_text, require
from tnn.models import get_model, model_info
from tnn.recipes import RunData, compress_and_train, get_budget
from tnn.train import evaluate, finetune

DEMO_FORMATS = ("rcp", "rtt", "cp", "tk", "tt")
MODEL, DATASET = "lenet5", "digits"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers,
        "demo",
        "offline demo: LeNet-5 on digits in five formats, table + plot",
        "Train LeNet-5 on the offline 'digits' dataset, compress it with rcp, rtt, cp, tk and tt at\n"
        "--rate, recover accuracy by sequential training, and report a table (format, parameters,\n"
        "achieved rate, accuracy before/after training) plus a PNG plot (offline, about a minute on 2 CPUs).",
        "  tnn demo --out runs/demo\n  tnn demo --out runs/demo-tt --formats tt rtt --rate 0.05 --json",
    )
    p.add_argument("--formats", nargs="+", default=list(DEMO_FORMATS), help="formats to compare")
    p.add_argument("--rate", type=float, default=0.1, help="target compression rate in (0, 1]")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=list(model_info(MODEL).dense_by_default),
        metavar="GLOB",
        help="layers kept dense (the tiny first convolution and the classifier)",
    )
    p.add_argument("--epochs", type=float, default=5, help="epochs of dense LeNet-5 training")
    budget = get_budget("demo", MODEL)
    p.add_argument("--stage-steps", type=int, default=budget.steps_per_stage,
                   help="sequential-training steps per stage")
    p.add_argument("--batch-size", type=int, default=budget.batch_size, help="batch size")
    # LeNet-5's small operations gain nothing from more threads on a shared CPU
    common.add_threads(p, default=1)
    common.add_output(p, required=True, overwrite=True)
    common.add_common(p)
    return p


#: Files whose presence in --out marks an earlier demo: refused unless --overwrite.
RUN_FILES = ("results.json", "results.md", f"{MODEL}.pt")


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    common.check_no_earlier_run(args.out, RUN_FILES, overwrite=args.overwrite)
    # checked before any training: the digits data and the plot need the 'demo' extra
    require("sklearn.datasets", "demo", "tnn demo (the 'digits' dataset)")
    require("matplotlib", "demo", "tnn demo (its plot)")
    for fmt in args.formats:
        common.check_format(fmt)
    common.check_rate(args.rate)
    for flag in ("epochs", "stage_steps", "batch_size"):
        common.check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if len(set(args.formats)) != len(args.formats):
        raise CLIError(f"--formats repeats a format: {args.formats}")
    device = common.device_of(args)
    t_start = time.perf_counter()
    info = model_info(MODEL)
    train = get_dataset(DATASET, "train", model=MODEL)
    test = get_dataset(DATASET, "test", model=MODEL)
    torch.manual_seed(args.seed)
    teacher = get_model(MODEL)
    out(f"training LeNet-5 on digits ({len(train)} train / {len(test)} test images), {args.epochs:g} epochs")
    t0 = time.perf_counter()
    finetune(teacher, train, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=1e-3,
             seed=args.seed, device=device, progress=not args.quiet)
    dense_acc = evaluate(teacher, test, device=device)["accuracy"]
    dense_params = sum(p.numel() for p in teacher.parameters())
    out(
        f"dense LeNet-5: accuracy {dense_acc:.4f}, {dense_params:,} parameters,"
        f" {time.perf_counter() - t0:.1f} s"
    )
    if args.exclude:
        out(
            f"kept dense: {', '.join(args.exclude)} (--exclude); the achieved rate counts every Conv2d/Linear"
            " parameter, the dense ones included"
        )
    budget = get_budget("demo", MODEL).replace(steps_per_stage=args.stage_steps, batch_size=args.batch_size)
    data = RunData(train=train, test=test)
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[float]] = {}
    students = {}
    for fmt in args.formats:
        t0 = time.perf_counter()
        result = compress_and_train(teacher, data, fmt, args.rate, budget, model_name=MODEL,
                                    exclude=args.exclude, input_shape=info.input_shape, seed=args.seed,
                                    device=device, progress=not args.quiet)
        report, hist = result.report, result.history()
        curves[fmt] = hist.losses()
        students[fmt] = result.student
        row = {
            "format": fmt,
            "params": report.model_params_after,
            "params_layers": report.params_after,
            "achieved_rate": report.achieved_rate,
            "model_rate": report.model_rate,
            "accuracy_before": result.figures["acc_init_test"],
            "accuracy_after": result.figures["acc_final_test"],
            "dense_layers": [r.name for r in report.dense],
            "stages": [p["phase"] for p in hist.phases],
            "wall_s": round(time.perf_counter() - t0, 2),
            "ranks": {r.name: r.ranks for r in report.compressed},
        }
        rows.append(row)
        out(
            f"  {fmt:>4}: rate {row['achieved_rate']:.3f}, accuracy {row['accuracy_before']:.4f} -> "
            f"{row['accuracy_after']:.4f} ({row['wall_s']:.1f} s)"
        )
    table = _table(rows, dense_acc, dense_params)
    results = {
        "dataset": DATASET,
        "model": MODEL,
        "rate": args.rate,
        "dense_accuracy": dense_acc,
        "dense_params": dense_params,
        "formats": rows,
        "seed": args.seed,
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    with common.output_dir(args.out) as folder:
        assert folder is not None
        save_model(folder / f"{MODEL}.pt", teacher, {"model": MODEL, "dataset": DATASET})
        for fmt, student in students.items():
            save_model(folder / f"{MODEL}-{fmt}.pt", student,
                       compressed_metadata(MODEL, student.tnn_report, dataset=DATASET))
        common.write_json(folder / "results.json", results)
        atomic_write_text(folder / "results.md", table + "\n")
        _plot(folder / "demo.png", rows, curves, dense_acc, args.rate)
    out(table)
    out(f"wrote {args.out}/results.json, results.md, demo.png; total {results['wall_s']:.1f} s")
    out.result(results)
    return 0


def _table(rows: list[dict[str, Any]], dense_acc: float, dense_params: int) -> str:
    lines = [
        "| format | parameters | achieved rate | accuracy before training | accuracy after training |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| dense | {dense_params:,} | 1.000 | {dense_acc:.4f} | {dense_acc:.4f} |",
    ]
    for r in rows:
        lines.append(
            f"| {r['format']} | {r['params']:,} | {r['achieved_rate']:.3f} | {r['accuracy_before']:.4f}"
            f" | {r['accuracy_after']:.4f} |"
        )
    return "\n".join(lines)


def _plot(
    path: Path, rows: list[dict[str, Any]], curves: dict[str, list[float]], dense_acc: float, rate: float
) -> None:
    # imported on use: matplotlib is an optional dependency (the 'demo' extra), checked by run()
    matplotlib = require("matplotlib", "demo", "tnn demo (its plot)")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "demo", "tnn demo (its plot)")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["format"] for r in rows]
    xs = range(len(rows))
    ax1.bar([x - 0.2 for x in xs], [r["accuracy_before"] for r in rows], 0.4, label="after compression")
    ax1.bar(
        [x + 0.2 for x in xs], [r["accuracy_after"] for r in rows], 0.4, label="after sequential training"
    )
    ax1.axhline(dense_acc, color="k", linestyle="--", linewidth=1, label=f"dense ({dense_acc:.3f})")
    ax1.set_xticks(list(xs), names)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("test accuracy")
    ax1.set_title(f"LeNet-5 on digits, rate {rate:g}")
    ax1.legend(loc="lower center", fontsize=7, framealpha=0.9)
    for fmt, losses in curves.items():
        ax2.plot(range(1, len(losses) + 1), losses, label=fmt, linewidth=1)
    ax2.set_yscale("log")
    ax2.set_xlabel("step (stages in sequence)")
    ax2.set_ylabel("stage reconstruction MSE")
    ax2.set_title("sequential training")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda handle: handle.write(buf.getvalue()))
