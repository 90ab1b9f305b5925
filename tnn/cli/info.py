"""``tnn info``: per-layer ranks, parameters and FLOPs of a model compressed in a format at a rate."""

from __future__ import annotations

import argparse

from tnn.cli import common
from tnn.compression import compress
from tnn.models import get_model


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers, "info", "per-layer ranks / parameters / FLOPs for a format and rate",
        "Show what compressing a model would give, layer by layer: the ranks chosen for the budget,\n"
        "parameters and FLOPs (per image) before and after, and the layers that stay\n"
        "dense. Nothing is decomposed or trained (the factors are initialised at random).",
        "  tnn info --model resnet32 --format rtt --rate 0.1\n"
        "  tnn info --model lenet5 --format cp --rate 0.05 --json\n"
        "  tnn info --model resnet32 --format tk --rate 0.2 --exclude conv1 linear",
    )
    common.add_model(p, weights=False)  # nothing is loaded: the factors are random
    common.add_compression(p, required=True)
    common.add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    common.check_format(args.format)
    common.check_rate(args.rate)
    model = get_model(args.model)
    small = compress(model, format=args.format, rate=args.rate, include=args.include, exclude=args.exclude,
                     init="random", input_shape=common.input_shape(args.model))
    report = small.tnn_report
    out(f"{args.model}, format {args.format}, target rate {args.rate}")
    out(report.table())
    out.result({"model": args.model, **report.to_dict()})
    return 0
