"""High-order inputs: tensorial MLPs against flattened MLPs of the same depth.

MNIST images are seen as ``(4, 7, 4, 7)`` tensors and CIFAR-10 images as ``(H, W, C) = (32, 32, 3)`` tensors;
each :class:`tnn.nn.highorder_nets.HighOrderMLP` (tensorial dense layers, see that module) is trained beside
the flattened baseline :func:`tnn.nn.highorder_nets.flat_mlp` with the same optimiser, epochs and batches.
The last ``--holdout`` training images are held out: hyper-parameters were chosen on them (``--sweep``
evaluates the candidate shapes on the held-out part only, never on test); the default run trains on the rest
and reports parameters, held-out and test accuracy side by side.

Usage::

    python benchmarks/highorder.py --data-dir ../shared/datasets [--epochs 2] [--datasets mnist cifar10]
    python benchmarks/highorder.py --data-dir ../shared/datasets --sweep      # held-out selection only

``--seeds 0 1 2`` repeats every run with other seeds (the table shows means). ``--data-dir`` defaults
to ``$TNN_DATA_DIR``. Results go to ``--out`` (JSON) and stdout (a markdown table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tnn.data import get_dataset
from tnn.nn.highorder_nets import HighOrderMLP, flat_mlp

#: per dataset: tensor view of one image, the chosen configuration and the sweep candidates
SETUPS = {
    "mnist": {
        "input_shape": (4, 7, 4, 7),
        "permute": None,
        "baseline_width": 256,
        "tensorial": {"hidden_shape": (6, 6, 6, 6), "rank": 8, "mode_groups": (2, 2)},
        "candidates": [
            {"hidden_shape": (6, 6, 6, 6), "rank": 4},
            {"hidden_shape": (8, 8, 8, 8), "rank": 2},
            {"hidden_shape": (5, 5, 5, 5), "rank": 4},
            {"hidden_shape": (6, 6, 6, 6), "rank": 16},
            {"hidden_shape": (6, 6, 6, 6), "rank": 4, "mode_groups": (2, 2)},
            {"hidden_shape": (6, 6, 6, 6), "rank": 8, "mode_groups": (2, 2)},
            {"hidden_shape": (8, 8, 8, 8), "rank": 4, "mode_groups": (2, 2)},
        ],
    },
    "cifar10": {
        "input_shape": (32, 32, 3),
        "permute": (0, 2, 3, 1),
        "baseline_width": 512,
        "tensorial": {"hidden_shape": (16, 16, 8), "rank": 4},
        "candidates": [
            {"hidden_shape": (16, 16, 8), "rank": 4},
            {"hidden_shape": (16, 16, 8), "rank": 8},
            {"hidden_shape": (12, 12, 8), "rank": 4},
        ],
    },
}
NUM_CLASSES = 10


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def accuracy(
    model: nn.Module, dataset, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(labels), batch):
            x = dataset.normalize(images[i : i + batch])
            correct += (model(x).argmax(1) == labels[i : i + batch]).sum().item()
    return correct / len(labels)


def train(model: nn.Module, dataset, images: torch.Tensor, labels: torch.Tensor, args) -> float:
    """Adam, cross-entropy, ``args.epochs`` epochs of shuffled batches; returns seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for i in range(0, len(labels), args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(dataset.normalize(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def run_one(name: str, model: nn.Module, data: dict, args) -> dict:
    torch.manual_seed(args.seed)
    seconds = train(model, data["train"], data["x_fit"], data["y_fit"], args)
    row = {
        "model": name,
        "params": params(model),
        "holdout_acc": accuracy(model, data["train"], data["x_hold"], data["y_hold"]),
        "train_seconds": round(seconds, 1),
    }
    if not args.sweep:
        row["test_acc"] = accuracy(model, data["test"], *data["test"].tensors())
    print(json.dumps(row), flush=True)
    return row


def build_models(setup: dict, configs: list[dict], args) -> list[tuple[str, nn.Module]]:
    """The flat baseline (unless sweeping) and one HighOrderMLP per config, initialised from ``args.seed``."""
    in_features = math.prod(setup["input_shape"])
    models: list[tuple[str, nn.Module]] = []
    if not args.sweep:
        torch.manual_seed(args.seed)
        label = f"flat MLP {in_features}-{setup['baseline_width']}x2-10"
        models.append((label, flat_mlp(in_features, setup["baseline_width"], NUM_CLASSES)))
    for cfg in configs:
        torch.manual_seed(args.seed)
        net = HighOrderMLP(setup["input_shape"], cfg["hidden_shape"], NUM_CLASSES, depth=2, rank=cfg["rank"],
                           permute=setup["permute"], mode_groups=cfg.get("mode_groups"))
        label = f"tensorial {setup['input_shape']}->{cfg['hidden_shape']}x2 R={cfg['rank']}"
        if cfg.get("mode_groups"):
            label += f" groups={cfg['mode_groups']}"
        models.append((label, net))
    return models


def parse_config(text: str) -> dict:
    """``"6,6,6,6:16[:2,2]"`` -> ``{"hidden_shape": (6, 6, 6, 6), "rank": 16[, "mode_groups": (2, 2)]}``."""
    shape, rank, *groups = text.split(":")
    config = {"hidden_shape": tuple(int(n) for n in shape.split(",")), "rank": int(rank)}
    if groups:
        config["mode_groups"] = tuple(int(n) for n in groups[0].split(","))
    return config


def load(name: str, data_dir: str | None, holdout: int, limit: int = 0) -> dict:
    train_set = get_dataset(name, "train", data_dir)
    test_set = get_dataset(name, "test", data_dir)
    images, labels = train_set.tensors()
    fit = len(labels) - holdout if not limit else min(limit, len(labels) - holdout)
    return {
        "train": train_set,
        "test": test_set,
        "x_fit": images[:fit],
        "y_fit": labels[:fit],
        "x_hold": images[-holdout:],
        "y_hold": labels[-holdout:],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TNN_DATA_DIR"))
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--holdout", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; tables average")
    parser.add_argument("--limit", type=int, default=0, help="train on at most this many images (smoke runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--sweep", action="store_true", help="evaluate candidates on the held-out part only")
    parser.add_argument("--configs", nargs="+", metavar="SHAPE:RANK[:GROUPS]",
                        help="with --sweep: candidates instead of the built-in ones, e.g. 6,6,6,6:4:2,2")
    parser.add_argument("--out", default="runs/highorder/results.json")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        parser.error("give --data-dir or set TNN_DATA_DIR")
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name in args.datasets:
        setup = SETUPS[name]
        data = load(name, args.data_dir, args.holdout, args.limit)
        configs = setup["candidates"] if args.sweep else [setup["tensorial"]]
        if args.sweep and args.configs:
            configs = [parse_config(text) for text in args.configs]
        for seed in args.seeds:
            args.seed = seed
            for label, model in build_models(setup, configs, args):
                row = run_one(label, model, data, args)
                row["dataset"] = name
                row["seed"] = seed
                rows.append(row)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"\nmean over seeds {args.seeds}:")
    print("| dataset | model | parameters | held-out acc | test acc | train s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    for (dataset, model), runs in groups.items():

        def mean(key: str, runs: list[dict] = runs) -> float:
            return sum(r[key] for r in runs) / len(runs)

        test = f"{100 * mean('test_acc'):.2f}%" if "test_acc" in runs[0] else "-"
        print(f"| {dataset} | {model} | {runs[0]['params']:,} | {100 * mean('holdout_acc'):.2f}% | {test} | "
              f"{mean('train_seconds'):.1f} |")


if __name__ == "__main__":
    main()
