"""ResNet-32 on CIFAR-10, per-format benchmark — not a test.

Compresses the pretrained ResNet-32 with each format at rate 0.1 (factors from decomposing the
pretrained kernels), recovers accuracy by sequential (data-reconstruction) training under a CPU
budget, and reports test accuracy before/after, achieved rate and wall time per stage.

Usage (data from ``--shared``, default ``$TNN_SHARED_DIR``)::

    .venv/bin/python benchmarks/resnet32_cifar10.py --out runs/bench-resnet32 \
        --formats rcp rtt cp tk tt --steps 40 --batch-size 32 --subset 2560 --limit 1000

Writes ``OUT/results.json`` (after every format, atomically) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from tnn.data import get_dataset
from tnn.data.subsets import IndexSubset
from tnn.io import atomic_write_text
from tnn.models import get_model, load_pretrained
from tnn.recipes import Budget, RunData, compress_and_train
from tnn.train import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=os.environ.get("TNN_SHARED_DIR", "../shared"))
    p.add_argument("--out", default="runs/bench-resnet32")
    p.add_argument("--formats", nargs="+", default=["rcp", "rtt", "cp", "tk", "tt"])
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=40, help="sequential-training steps per stage")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--subset", type=int, default=2560, help="training images (first N, un-augmented)")
    p.add_argument("--limit", type=int, default=1000, help="test images (first N)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    data_dir = shared / "datasets" / "cifar10"
    weights = shared / "pretrained" / "resnet32-cifar10" / "resnet32-d509ac18.th"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    full = get_dataset("cifar10", "train", data_dir=data_dir, model="resnet32")
    test = get_dataset("cifar10", "test", data_dir=data_dir, model="resnet32")
    data = RunData(train=IndexSubset(full, torch.arange(min(args.subset, len(full)))), test=test)
    budget = Budget("bench", steps_per_stage=args.steps, batch_size=args.batch_size, lr=1e-3, val_size=0,
                    cache_teacher=True, eval_limit=args.limit)
    teacher = load_pretrained(get_model("resnet32"), weights).eval()
    t0 = time.perf_counter()
    dense = evaluate(teacher, test, limit=args.limit)
    results = {
        "budget": {
            k: getattr(args, k) for k in ("rate", "steps", "batch_size", "subset", "limit", "threads", "seed")
        },
        "dense": {
            "accuracy": dense["accuracy"],
            "n": dense["n"],
            "eval_s": round(time.perf_counter() - t0, 1),
            "params": sum(p.numel() for p in teacher.parameters()),
        },
        "formats": [],
        "torch": torch.__version__,
    }
    print(f"dense ResNet-32: accuracy {dense['accuracy']:.4f} on {dense['n']} test images", flush=True)
    for fmt in args.formats:
        result = compress_and_train(teacher, data, fmt, args.rate, budget, model_name="resnet32",
                                    seed=args.seed)
        report, hist, fig = result.report, result.history(), result.figures
        hist.write_jsonl(out / f"log-{fmt}.jsonl")
        row = {
            "format": fmt,
            "achieved_rate": report.achieved_rate,
            "model_rate": report.model_rate,
            "params": report.model_params_after,
            "dense_layers": [r.name for r in report.dense],
            "accuracy_before": fig["acc_init_test"],
            "accuracy_after": fig["acc_final_test"],
            "compress_s": fig["wall_compress_s"],
            "train_s": fig["wall_seq_s"],
            "stages": [
                {
                    "stage": ph["phase"],
                    "wall_s": ph["wall_s"],
                    "first_loss": hist.losses(ph["phase"])[0],
                    "final_loss": ph["final_loss"],
                }
                for ph in hist.phases
            ],
        }
        results["formats"].append(row)
        results["total_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    print(table(results))
    return 0


def table(results: dict) -> str:
    """Markdown table of a results dict."""
    lines = [
        "| format | achieved rate (conv/linear) | parameters | accuracy after compression | accuracy after "
        "sequential training | wall time per stage (s) | compress (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
        f"| dense | 1.000 | {results['dense']['params']:,} | {results['dense']['accuracy']:.4f} | "
        f"{results['dense']['accuracy']:.4f} | - | - |",
    ]
    for r in results["formats"]:
        stages = ", ".join(f"{s['stage']} {s['wall_s']:.0f}" for s in r["stages"])
        lines.append(
            f"| {r['format']} | {r['achieved_rate']:.3f} | {r['params']:,} | {r['accuracy_before']:.4f} | "
            f"{r['accuracy_after']:.4f} | {stages} | {r['compress_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
