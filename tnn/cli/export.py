"""``tnn export``: write a (compressed) model as ONNX (checked in onnxruntime) or safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tnn.cli import common
from tnn.export import export_onnx, require_onnx, save_safetensors
from tnn.io import require

TARGETS = ("onnx", "safetensors")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers, "export", "export a (compressed) model to ONNX or safetensors",
        "Load --weights (a tnn checkpoint from 'tnn compress' / 'tnn train', a pretrained state_dict, or a\n"
        "tnn .safetensors file), rebuild the compressed architecture from its metadata, and write --out:\n"
        "  --to onnx         torch.onnx.export with a fixed input shape (--batch-size, the model's\n"
        "                    image size), run in onnxruntime and compared with PyTorch (<= --atol);\n"
        "  --to safetensors  the weights plus JSON metadata (model, format, rate, ranks, rebuild\n"
        "                    plan), read back by --weights FILE.safetensors / load_safetensors.\n"
        "The format is inferred from the --out suffix (.onnx / .safetensors) when --to is omitted.",
        "  tnn export --weights runs/rtt/model.pt --out runs/rtt/model.onnx\n"
        "  tnn export --weights runs/rtt/model.pt --to safetensors --out runs/rtt/model.safetensors\n"
        "  tnn export --weights runs/rtt/model.safetensors --out model.onnx --batch-size 8 --json",
    )
    common.add_model(p, required=False)
    p.add_argument("--to", choices=TARGETS, help="output format (default: from the --out suffix)")
    p.add_argument("--out", required=True, help="output file (.onnx or .safetensors)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the ONNX graph's input")
    p.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    p.add_argument("--atol", type=float, default=1e-4, help="tolerance of the onnxruntime check")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    g = p.add_argument_group("run")
    g.add_argument("--quiet", action="store_true", help="no human output")
    g.add_argument("--json", action="store_true",
                   help="end with one JSON line of the figures on stdout (human output goes to stderr)")
    return p


def _target(args: argparse.Namespace) -> str:
    if args.to:
        return str(args.to)
    suffix = Path(args.out).suffix.lower().lstrip(".")
    if suffix in TARGETS:
        return suffix
    raise common.CLIError(f"cannot tell the format of --out {args.out!r}: give --to onnx or --to "
                          "safetensors, or an .onnx / .safetensors file name")


def _load(args: argparse.Namespace):  # -> tuple[nn.Module, dict]
    if not args.weights:
        raise common.CLIError("--weights is required: the checkpoint or .safetensors file to export")
    model, meta = common.load_model(args)
    if not args.model:
        raise common.CLIError(f"--weights {args.weights} does not name its model; give --model")
    return model, meta


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    target = _target(args)
    common.check_positive(args.batch_size, "--batch-size")
    if not (args.atol >= 0):
        raise common.CLIError(f"--atol must be a non-negative number, got {args.atol}")
    dest = Path(args.out)
    if dest.is_dir():
        raise common.CLIError(f"--out {args.out} is a directory; give a file name")
    if not dest.parent.is_dir():
        raise common.CLIError(f"--out {args.out}: directory {str(dest.parent)!r} does not exist")
    if target == "onnx":
        require_onnx(check=not args.no_check)
    if target == "safetensors" or str(args.weights or "").lower().endswith(".safetensors"):
        # imported to check it is there before any work: safetensors is optional (the 'export' extra)
        require("safetensors.torch", "export", f"--to {target}" if target == "safetensors" else "--weights")
    model, meta = _load(args)
    model.eval()
    figures: dict[str, object] = {"model": args.model, "format": meta.get("format"), "to": target,
                                  "out": str(dest)}
    if target == "safetensors":
        extra = {k: meta[k] for k in ("model", "step") if meta.get(k) is not None}
        extra.setdefault("model", args.model)
        save_safetensors(dest, model, extra)
        out(f"wrote {dest} ({dest.stat().st_size:,} bytes, {len(model.state_dict())} tensors)")
    else:
        shape = (args.batch_size, *common.input_shape(args.model))
        ref = next(iter(model.parameters()), None)
        dtype = ref.dtype if ref is not None else torch.float32
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
        result = export_onnx(model, dest, x, opset=args.opset, check=not args.no_check, atol=args.atol)
        figures.update(input_shape=list(result.input_shape), max_abs_diff=result.max_abs_diff)
        checked = "" if result.max_abs_diff is None else (
            f"; onnxruntime vs PyTorch max abs diff {result.max_abs_diff:.3g}")
        out(f"wrote {dest} (input {tuple(result.input_shape)}){checked}")
    figures["bytes"] = dest.stat().st_size
    out.result(figures)
    return 0
