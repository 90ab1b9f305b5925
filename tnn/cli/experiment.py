"""``tnn experiment``: run the paper's tables (and the convergence study) cell by cell, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tnn.cli import common
from tnn.cli.errors import CLIError
from tnn.experiments import run_convergence, run_experiment
from tnn.experiments.convergence import DEFAULT_METHODS, METHODS
from tnn.formats import FORMATS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers,
        "experiment",
        "run a table of the paper (formats x rates) or the convergence study, resumably",
        "Compress the pretrained --model into every --formats at every --rates, train each cell\n"
        "sequentially (and fine-tune if the budget says so) under the named --budget, and write\n"
        "OUT/results.csv, OUT/results.md and OUT/accuracy_vs_rate.png. A finished cell is never\n"
        "recomputed: rerun the same command to continue an interrupted table. Several processes may\n"
        "run the same command on one --out (e.g. one per core with --threads 1): each cell is claimed\n"
        "by the first process to reach it (OUT/cells/*/claim.json) and skipped by the others; every\n"
        "process rewrites the tables from all finished cells. --study convergence compares\n"
        "sequential and end-to-end training from the same decomposition (one rate; --methods recipe\n"
        "end-to-end: the budget's own recipe against end-to-end training of as many steps) and\n"
        "writes OUT/convergence.{csv,md,png}; its curves resume from their checkpoints and are claimed\n"
        "like cells (OUT/curves/FORMAT-METHOD/). Budgets (tnn/recipes/budgets.py): cpu (the recipe\n"
        "sized for 2 CPU cores: sequential training, then 500 distillation steps), long (sequential\n"
        "training, then 2,000 distillation steps: up to an hour per ResNet-32 cell), long-fit (the first\n"
        "long: data-fitted initialisation instead of sequential training), cpu-seq (the earlier\n"
        "sequential-only budget), paper (the paper's schedule, for a GPU), demo, smoke\n"
        "(tests); the override flags change single budget fields.",
        "  tnn experiment --model lenet5 --dataset mnist --weights runs/lenet5/model.pt \\\n"
        "                 --formats all --rates 0.01 0.02 0.05 0.1 --budget cpu --out runs/lenet5-table\n"
        "  tnn experiment --model resnet32 --dataset cifar10 --weights resnet32.th --formats all \\\n"
        "                 --rates 0.1 0.05 --budget cpu --out runs/resnet32-table\n"
        "  tnn experiment --study convergence --model resnet32 --dataset cifar10 --weights resnet32.th \\\n"
        "                 --formats rtt cp --rates 0.1 --budget cpu --out runs/convergence\n"
        "  tnn experiment --study convergence --model resnet32 --dataset cifar10 --weights resnet32.th \\\n"
        "                 --formats cp rtt --rates 0.1 --budget long --methods recipe end-to-end \\\n"
        "                 --threads 1 --out runs/convergence-long",
    )
    g = p.add_argument_group("experiment")
    g.add_argument("--study", choices=("table", "convergence"), default="table", help="what to run")
    g.add_argument("--model", required=True, help="model name (lenet5, resnet32, resnet50, ...)")
    g.add_argument("--weights", help="pretrained weights of the uncompressed model")
    g.add_argument("--dataset", required=True, help="dataset name (mnist, cifar10, imagenet, ...)")
    g.add_argument("--data-dir", help="data root (default: $TNN_DATA_DIR)")
    g.add_argument("--formats", nargs="+", default=["all"], help="formats, or 'all' for every format")
    g.add_argument("--rates", nargs="+", type=float, required=True, help="target compression rates")
    g.add_argument("--exclude", nargs="+", metavar="GLOB",
                   help="layers kept dense in every format (e.g. the classifier: fc2, linear, fc)")
    g.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS),
                   help="convergence study: the training methods compared (recipe: the budget's own "
                        "stages then fine-tuning, which must add up to its conv_steps)")
    g.add_argument("--max-cells", type=int, help="compute at most this many unfinished cells, then stop")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    common.add_budget(p, default="cpu")
    common.add_output(p, required=True)
    common.add_common(p)
    return p


def _formats(values: list[str]) -> list[str]:
    if values == ["all"]:
        return list(FORMATS)
    for name in values:
        common.check_format(name)
    return values


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    formats = _formats(list(args.formats))
    for rate in args.rates:
        common.check_rate(rate)
    common.check_positive(args.max_cells, "--max-cells")
    common.check_positive(args.threads, "--threads")
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = common.budget_from_args(args, args.model)
    device = common.device_of(args)
    torch.manual_seed(args.seed)
    if args.study == "convergence":
        if len(args.rates) != 1:
            raise CLIError(f"--study convergence takes one rate, got {args.rates}")
        summaries = run_convergence(args.model, args.dataset, formats, args.rates[0], budget, args.out,
                                    weights=args.weights, data_dir=args.data_dir, device=device,
                                    seed=args.seed, methods=args.methods, exclude=args.exclude, log=out)
        out((Path(args.out) / "convergence.md").read_text())
        out.result({"convergence": summaries})
        return 0
    rows = run_experiment(args.model, args.dataset, formats, args.rates, budget, args.out,
                          weights=args.weights, data_dir=args.data_dir, device=device, seed=args.seed,
                          progress=not args.quiet, exclude=args.exclude,
                          log=out, max_cells=args.max_cells)
    out((Path(args.out) / "results.md").read_text())
    out.result({"rows": rows})
    return 0
