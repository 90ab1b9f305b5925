"""Validation accuracy of compressed ResNet-32 right after initialisation: kernel fit vs data fit.

For each format and rate: compress the pretrained ResNet-32 (``conv1`` and the classifier dense unless
``--exclude`` says otherwise), evaluate on held-out validation images (the last 5,000 training images,
the first ``--val-limit`` of them), run :func:`tnn.train.calibrate.fit_layers` on the first ``--n-calib``
training images and evaluate again. One JSON per cell under ``--out`` (existing cells are skipped, so
the run resumes); the kernel-fit accuracy is cached per (format, rate, exclude) and shared by settings.

Usage::

    python benchmarks/init_accuracy.py --data-dir DATA --weights resnet32-d509ac18.th \
        --formats cp rcp tt rtt --rates 0.1 0.05 --out runs/init-accuracy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from tnn.compression import compress
from tnn.data import get_dataset
from tnn.data.batches import fetch_batch
from tnn.data.subsets import IndexSubset, split_indices
from tnn.models import get_model, load_pretrained
from tnn.train import evaluate
from tnn.train.calibrate import fit_layers


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def summary(out: Path) -> None:
    """Print one markdown row per cell file under ``out``."""
    print("| format | rate | setting | val kernel init | val data init | fit s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for path in sorted(out.glob("*.json")):
        if path.name.startswith("kernel-"):
            continue
        d = json.loads(path.read_text())
        tag = path.stem.split("-", 2)[2]
        print(f"| {d['format']} | {d['rate']:g} | {tag} | {100 * d['val_kernel_init']:.2f} | "
              f"{100 * d['val_data_init']:.2f} | {d['fit_seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--weights")
    parser.add_argument("--summary", action="store_true", help="print the table of --out and stop")
    parser.add_argument("--formats", nargs="+", default=["cp", "rcp", "tt", "rtt"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.05])
    parser.add_argument("--exclude", nargs="*", default=["conv1", "linear"])
    parser.add_argument("--n-calib", type=int, default=1024)
    parser.add_argument("--val-limit", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--columns", type=int, default=32768, help="0: all columns")
    parser.add_argument("--target", default="output")
    parser.add_argument("--weighting", default="bn")
    parser.add_argument("--tag", default="", help="suffix of the cell files (one per setting)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    if args.summary:
        summary(out)
        return
    if args.data_dir is None or args.weights is None:
        parser.error("--data-dir and --weights are required")
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)

    teacher = load_pretrained(get_model("resnet32"), args.weights).eval()
    full = get_dataset("cifar10", "train", data_dir=args.data_dir, model="resnet32")
    train_idx, val_idx = split_indices(full, 5000, None)
    val = IndexSubset(full, val_idx)
    calib, _ = fetch_batch(full, train_idx[: args.n_calib])
    excl = "-".join(args.exclude) or "none"
    setting = {k: getattr(args, k) for k in ("n_calib", "steps", "lr", "batch_size", "columns", "target",
                                               "weighting")}
    setting["exclude"] = args.exclude

    for rate in args.rates:
        for fmt in args.formats:
            cell = out / f"{fmt}-{rate:g}-{excl}{'-' + args.tag if args.tag else ''}.json"
            if cell.exists():
                print(f"skip {cell.name}", flush=True)
                continue
            t0 = time.perf_counter()
            student = compress(teacher, fmt, rate, exclude=args.exclude or None)
            t_compress = time.perf_counter() - t0
            kernel_file = out / f"kernel-{fmt}-{rate:g}-{excl}-v{args.val_limit}.json"
            if kernel_file.exists():
                kernel_acc = json.loads(kernel_file.read_text())["val_accuracy"]
            else:
                kernel_acc = evaluate(student, val, limit=args.val_limit)["accuracy"]
                _write(kernel_file, {"val_accuracy": kernel_acc, "compress_seconds": t_compress})
            t0 = time.perf_counter()
            layers = fit_layers(student, teacher, calib, steps=args.steps, lr=args.lr,
                                batch_size=args.batch_size, columns=args.columns or None,
                                target=args.target, weighting=args.weighting, progress=True)
            t_fit = time.perf_counter() - t0
            fitted_acc = evaluate(student, val, limit=args.val_limit)["accuracy"]
            rate_achieved = student.tnn_report.to_dict() if hasattr(student.tnn_report, "to_dict") else None
            _write(cell, {"format": fmt, "rate": rate, "setting": setting, "val_limit": args.val_limit,
                          "val_kernel_init": kernel_acc, "val_data_init": fitted_acc,
                          "fit_seconds": t_fit, "compress_seconds": t_compress, "layers": layers,
                          "report": rate_achieved})
            print(f"{fmt} {rate:g} {args.tag}: kernel {kernel_acc:.4f} -> data {fitted_acc:.4f} "
                  f"(fit {t_fit:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
