"""Whole-network speed of compressed ResNet-32 against the dense network (not a test).

For every format and rate, ``tnn.compress(resnet32(), format, rate, init="random")`` (timing does not
depend on the values) is timed against the dense ResNet-32 in the same run, repetitions interleaved
across models, median of ``--reps``:

- inference: eval mode, ``torch.no_grad()`` forward, per batch size; with ``--prepare optimize``
  (default) each compressed model first goes through :func:`tnn.nn.optimize_for_inference` for that
  batch size, with ``eval`` only ``model.eval()`` (the cost model's choice and the cached kernel);
- training step: train mode, forward, cross-entropy, backward, SGD step (batch ``--train-batch``).

``--profile`` adds a ``torch.profiler`` breakdown of inference (self CPU time per operator, grouped into
convolution, matmul, copies, batch norm, elementwise and other) per model and batch size.

Usage::

    python benchmarks/network_speed.py --threads 1 2 --formats cp,tk,tt,svd,rtt --rates 0.1 \
        --batch-sizes 128 1 --json runs/network_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from tnn.compression import compress
from tnn.formats import FORMATS
from tnn.models import get_model
from tnn.nn.inference import median_times

# operator name fragments -> category of the profile breakdown (first match wins)
CATEGORIES = (
    ("convolution", ("conv", "mkldnn")),
    ("matmul", ("mm", "matmul", "einsum", "linear", "addmm")),
    ("copies", ("copy_", "clone", "contiguous", "cat", "pad", "flip", "expand")),
    ("batch_norm", ("batch_norm",)),
    ("elementwise", ("add", "mul", "relu", "clamp", "sum", "mean", "fill_", "zero_")),
)


def _infer(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run() -> object:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return run


def _prepare(model: nn.Module, x: torch.Tensor, how: str) -> None:
    model.eval()
    if how == "optimize":
        try:
            from tnn.nn import optimize_for_inference
        except ImportError:  # a checkout without inference mode: eval only
            return
        optimize_for_inference(model, x)


def _category(name: str) -> str:
    for cat, keys in CATEGORIES:
        if any(k in name for k in keys):
            return cat
    return "other"


def profile_inference(model: nn.Module, x: torch.Tensor, calls: int) -> dict[str, Any]:
    """Self CPU time per category and the top operators, in ms per forward call."""
    run = _infer(model, x)
    run()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            run()
    wall = (time.perf_counter() - t0) / calls
    cats: dict[str, float] = {}
    ops = []
    n_ops = 0
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1e3 / calls
        cats[_category(ev.key)] = cats.get(_category(ev.key), 0.0) + ms
        ops.append((ev.key, ms, ev.count // calls))
        n_ops += ev.count // calls
    ops.sort(key=lambda o: -o[1])
    return {
        "wall_ms": 1e3 * wall,
        "ops_per_call": n_ops,
        "categories_ms": {k: round(v, 3) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": k, "ms": round(ms, 3), "calls": c} for k, ms, c in ops[:8]],
    }


def build(formats: list[str], rates: list[float], seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    dense = get_model("resnet32")
    models = {"dense": dense}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rate in rates:
            for fmt in formats:
                models[f"{fmt}@{rate:g}"] = compress(copy.deepcopy(dense), format=fmt, rate=rate,
                                                     init="random")
    return models


def run(args: argparse.Namespace) -> dict[str, Any]:
    models = build(args.formats, args.rates)
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "reps": args.reps,
        "prepare": args.prepare,
        "inference": [],
        "training": [],
        "profile": [],
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, 32, 32)
            for name, m in models.items():
                _prepare(m, x, args.prepare if name != "dense" else "eval")
            times = median_times({k: _infer(m, x) for k, m in models.items()}, args.reps)
            for k, t in times.items():
                row = {"threads": threads, "batch": batch, "model": k, "ms": 1e3 * t,
                       "ratio": t / times["dense"]}
                result["inference"].append(row)
                print(f"inference threads {threads} batch {batch:>4} {k:>10}: {1e3 * t:9.2f} ms  "
                      f"ratio {row['ratio']:.2f}", flush=True)
            if args.profile and threads == args.threads[0]:
                for k, m in models.items():
                    prof = profile_inference(m, x, max(1, min(10, 256 // batch)))
                    result["profile"].append({"batch": batch, "model": k, **prof})
                    print(f"  profile {k:>10} batch {batch}: wall {prof['wall_ms']:.2f} ms, "
                          f"{prof['ops_per_call']} ops/call, {prof['categories_ms']}", flush=True)
        if args.train_batch:
            x = torch.randn(args.train_batch, 3, 32, 32)
            y = torch.randint(0, 10, (args.train_batch,))
            for m in models.values():
                m.train()
            times = median_times({k: _step(m, x, y) for k, m in models.items()}, args.reps)
            # each model against cp at its own rate ("svd@0.05" against "cp@0.05"); dense against the first
            cp_at = {k.partition("@")[2]: t for k, t in times.items() if k.startswith("cp@")}
            for k, t in times.items():
                cp = cp_at.get(k.partition("@")[2], next(iter(cp_at.values()), None))
                row = {"threads": threads, "batch": args.train_batch, "model": k, "ms": 1e3 * t,
                       "ratio": t / times["dense"], "ratio_to_cp": (t / cp) if cp else None}
                result["training"].append(row)
                extra = f"  vs cp {row['ratio_to_cp']:.2f}" if cp else ""
                print(f"train step threads {threads} batch {args.train_batch:>4} {k:>10}: {1e3 * t:9.2f} ms  "
                      f"ratio {row['ratio']:.2f}{extra}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="cp,tk,tt,svd,rtt", help="comma list, or 'all'")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1])
    parser.add_argument("--train-batch", type=int, default=128, help="0: no training-step timing")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--prepare", choices=("optimize", "eval"), default="optimize")
    parser.add_argument("--profile", action="store_true", help="torch.profiler breakdown of inference")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    args.formats = list(FORMATS) if args.formats == "all" else [f for f in args.formats.split(",") if f]
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown formats {unknown}; valid: {', '.join(FORMATS)}")
    result = run(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
