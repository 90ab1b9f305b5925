"""``tnn compress``: map a pretrained model to a TNN (decomposing its kernels) and save it."""

from __future__ import annotations

import argparse
import time

from tnn.cli import common
from tnn.compression import compress, compressed_metadata, save_model
from tnn.compression.allocation import ALLOCATIONS
from tnn.io import atomic_write_text
from tnn.train import evaluate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers, "compress", "compress a pretrained model into a TNN (no training)",
        "Replace every Conv2d/Linear of a pretrained model by a tensorial layer in --format, with ranks\n"
        "chosen for --rate and factors initialised by decomposing the pretrained kernels. Writes\n"
        "OUT/model.pt (a checkpoint that 'tnn evaluate' and 'tnn train --weights' rebuild), OUT/report.json\n"
        "and OUT/report.txt. With --dataset, also measures test accuracy before and after.",
        "  tnn compress --model resnet32 --weights r32.th --format rtt --rate 0.1 --out runs/rtt\n"
        "  tnn compress --model resnet32 --weights r32.th --format cp --rate 0.05 --exclude conv1 --out cp\n"
        "  tnn compress --model lenet5 --weights lenet5.pt --format tk --dataset digits --out runs/tk \\\n"
        "               --json\n"
        "  tnn compress --model resnet32 --weights r32.th --format cp --rate 0.05 --exclude conv1 linear \\\n"
        "               --allocation error --out runs/cp-alloc",
    )
    common.add_model(p, random_weights=True)
    common.add_compression(p, required=True)
    p.add_argument("--allocation", choices=ALLOCATIONS, default="uniform",
                   help="uniform: every layer keeps at most --rate of its parameters (the paper's rule); "
                        "error: one budget of --rate for the compressed layers together, spread over them "
                        "by reconstruction error (decomposes each layer at ~10 rates first)")
    common.add_data(p, required=False)
    p.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    common.add_output(p, required=True, overwrite=True)
    common.add_threads(p)
    common.add_common(p)
    return p


#: Files whose presence in --out marks an earlier result: refused unless --overwrite.
RUN_FILES = ("model.pt", "report.json", "report.txt")


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    common.check_no_earlier_run(args.out, RUN_FILES, overwrite=args.overwrite)
    common.check_format(args.format)
    common.check_rate(args.rate)
    common.check_positive(args.limit, "--limit")
    device = common.device_of(args)
    model, meta = common.load_model(args)
    if meta.get("plan"):
        raise common.CLIError(f"--weights {args.weights} is already a compressed model (format "
                              f"{meta.get('format')}); give the dense pretrained weights")
    data = common.load_data(args, "test") if args.dataset else None
    figures: dict[str, object] = {"model": args.model, "format": args.format, "rate": args.rate}
    if data is not None:
        figures["accuracy_before"] = evaluate(model, data, limit=args.limit, device=device)["accuracy"]
    t0 = time.perf_counter()
    small = compress(model, format=args.format, rate=args.rate, include=args.include, exclude=args.exclude,
                     input_shape=common.input_shape(args.model), allocation=args.allocation)
    figures["compress_s"] = round(time.perf_counter() - t0, 3)
    report = small.tnn_report
    if data is not None:
        figures["accuracy_after"] = evaluate(small, data, limit=args.limit, device=device)["accuracy"]
    with common.output_dir(args.out) as folder:
        assert folder is not None
        save_model(folder / "model.pt", small, compressed_metadata(args.model, report))
        common.write_json(folder / "report.json", report.to_dict())

        atomic_write_text(folder / "report.txt", report.table() + "\n")
    out(report.table())
    acc = "".join(f", {k} {figures[k]:.4f}" for k in ("accuracy_before", "accuracy_after") if k in figures)
    out(f"achieved rate {report.achieved_rate:.4f} ({report.params_after:,} / {report.params_before:,} "
        f"parameters){acc}; wrote {args.out}/model.pt")
    figures.update(achieved_rate=report.achieved_rate, params_before=report.params_before,
                   params_after=report.params_after, n_dense=len(report.dense), out=str(args.out))
    out.result(figures)
    return 0
