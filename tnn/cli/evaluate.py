"""``tnn evaluate``: top-1 accuracy of a (dense or compressed) model on a dataset's test split."""

from __future__ import annotations

import argparse
import time

from tnn.cli import common
from tnn.train import evaluate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers, "evaluate", "test accuracy of a model",
        "Evaluate a model on the test split of a dataset: top-1 accuracy and mean cross-entropy.\n"
        "--weights is a pretrained state_dict or a checkpoint written by tnn (compressed models are\n"
        "rebuilt from the checkpoint's metadata).",
        "  tnn evaluate --model resnet32 --weights resnet32-d509ac18.th --dataset cifar10 --data-dir data\n"
        "  tnn evaluate --weights runs/rtt/model.pt --dataset cifar10 --data-dir data --limit 1000 --json\n"
        "  tnn evaluate --model lenet5 --weights runs/demo/lenet5.pt --dataset digits",
    )
    common.add_model(p, required=False, random_weights=True)
    common.add_data(p)
    p.add_argument("--split", default="test", choices=["test", "train"], help="which split")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    common.add_threads(p)
    common.add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    common.check_positive(args.limit, "--limit")
    common.check_positive(args.batch_size, "--batch-size")
    device = common.device_of(args)
    model, meta = common.load_model(args)
    data = common.load_data(args, args.split)
    t0 = time.perf_counter()
    res = evaluate(model, data, batch_size=args.batch_size, limit=args.limit, device=device,
                   progress=not args.quiet)
    wall = time.perf_counter() - t0
    out(f"{args.model} on {args.dataset} ({args.split}, {res['n']} images): accuracy {res['accuracy']:.4f}"
        f" ({res['correct']}/{res['n']}), loss {res['loss']:.4f}, {wall:.1f} s")
    out.result({**res, "model": args.model, "dataset": args.dataset, "split": args.split,
                "format": meta.get("format"), "rate": meta.get("rate"), "wall_s": round(wall, 3)})
    return 0
