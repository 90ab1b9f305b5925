"""Benchmark of the tensorial layers against ``nn.Conv2d`` and TensorLy-Torch (not a test).

1. Layers: every format at rates 0.1 and 0.05 on the conv shapes of ResNet-32 (batch 128 on 32/16/8 pixel
   maps) or, with ``--model resnet50``, of ResNet-50 (batch 8 at 224 pixels; 1x1, 3x3 and the 7x7 stem),
   read from the model by forward hooks: forward (no_grad) and forward+backward wall time as a ratio to
   the dense ``nn.Conv2d`` of the same shape, memory, parameters and planned FLOPs (ratios to the dense
   layer). The forward uses the inference choice of ``--prepare``: ``eval`` the cost model's
   (``model.eval()`` alone), ``optimize`` the measured one (``tnn.nn.optimize_for_inference``); the
   ``inf`` column says which evaluation it is, ``train`` the training plan's.
2. TensorLy-Torch: ``tltorch.FactorizedConv.from_conv(..., implementation="factorized")`` in CP, Tucker
   and TT at the *same ranks* as tnn's ``cp``, ``tk`` and ``tt`` (ratio tnn time / tltorch time).
3. The whole ResNet-32 compressed with ``tnn.compress`` (``rtt``, rate 0.1 by default): inference and
   SGD training-step time relative to the dense network.

Timings are the fastest of interleaved repetitions (the machine is shared); a ratio < 1 means faster
than the reference. Memory is the size of the tensors autograd saves for the backward pass plus the output
(on CUDA: the peak allocated memory of forward+backward).

Usage::

    python benchmarks/layers.py            # full run (about 5 minutes on 2 cores)
    python benchmarks/layers.py --quick    # batch 32, fewer repetitions, one rate
    python benchmarks/layers.py --model resnet50 --skip tltorch,resnet   # ResNet-50 shapes only
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from tnn.algebra import conv_einsum_path
from tnn.formats import FORMATS
from tnn.nn import TensorialConv2d, optimize_for_inference

Shape = tuple[int, int, int, int, int]  # (in, out, kernel, stride, input size), square kernels and maps


def conv_shapes(model: str) -> list[tuple[Shape, int]]:
    """The distinct conv shapes of ``model`` (a ``tnn.models`` name) at its input size, and how often each
    occurs, recorded by forward hooks on one sample (padding is ``kernel // 2`` in both ResNets)."""
    from tnn.models import get_model, model_info

    net = get_model(model).eval()
    seen: dict[Shape, int] = {}

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        key = (mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0], args[0].shape[-1])
        seen[key] = seen.get(key, 0) + 1

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, *model_info(model).input_shape))
    for h in handles:
        h.remove()
    return list(seen.items())


def _time(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Fastest of ``reps`` runs of each function (seconds), repetitions interleaved across functions.

    The minimum, not the median: on a shared machine interference only ever adds time. Two warm-up
    calls each (the first shape timed in a process once read 1.8-2.5x for layers that tie on a rerun)."""
    for _ in range(2):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in samples.items()}


def _forward(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return layer(x)

    return run


def _train(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        layer.zero_grad(set_to_none=True)
        out = layer(x)
        out.backward(torch.ones_like(out))
        return out

    return run


def _memory(layer: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for backward plus the output (CUDA: peak allocated in forward+backward)."""
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = layer(x)
        out.backward(torch.ones_like(out))
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, nn.Parameter) and t.data_ptr() != x.data_ptr():
            saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    return sum(saved.values()) + out.numel() * out.element_size()


def _dense_flops(conv: nn.Conv2d, shape: tuple[int, ...]) -> int:
    w = tuple(conv.weight.shape)
    opts = {"padding": conv.padding[0], "stride": conv.stride[0]}
    return int(conv_einsum_path("bshw,tshw->bthw|hw", shape, w, **opts)[1].opt_flops)


def bench_layers(shapes: list[tuple[Shape, int]], batch: int, rates: list[float], reps: int,
                 device: str, prepare: str = "optimize") -> list[dict]:
    rows = []
    for (cin, cout, k, stride, size), count in shapes:
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, device=device)
        x = torch.randn(batch, cin, size, size, device=device)
        xg = x.clone().requires_grad_(False)
        dense_mem = _memory(conv, xg)
        dense_flops = _dense_flops(conv, tuple(x.shape))
        for rate in rates:
            layers = {}
            for name in FORMATS:
                try:
                    layers[name] = TensorialConv2d.from_dense(conv, format=name, rate=rate, init="random")
                except ValueError:
                    continue
            for layer in layers.values():
                optimize_for_inference(layer, x, measure=prepare == "optimize")
                layer.train()  # the inference choice is kept; forward+backward uses the training plan
            fwd = _time({"dense": _forward(conv, x)} | {k: _forward(v, x) for k, v in layers.items()}, reps)
            bwd = _time({"dense": _train(conv, x)} | {k: _train(v, x) for k, v in layers.items()}, reps)
            for name in FORMATS:
                if name not in layers:
                    rows.append(
                        {
                            "shape": (cin, cout, k, stride, size),
                            "count": count,
                            "rate": rate,
                            "format": name,
                            "skipped": True,
                        }
                    )
                    continue
                layer = layers[name]
                rows.append(
                    {
                        "shape": (cin, cout, k, stride, size),
                        "count": count,
                        "rate": rate,
                        "format": name,
                        "ranks": layer.ranks,
                        "mode": layer.plan(tuple(x.shape)).mode,
                        "inference": layer.inference_mode(tuple(x.shape)),
                        "fwd": fwd[name] / fwd["dense"],
                        "fwdbwd": bwd[name] / bwd["dense"],
                        "fwd_dense_ms": 1e3 * fwd["dense"],
                        "fwdbwd_dense_ms": 1e3 * bwd["dense"],
                        "mem": _memory(layer, xg) / dense_mem,
                        "params": layer.compression_rate,
                        "flops": layer.flops(tuple(x.shape)) / dense_flops,
                    }
                )
    return rows


def bench_tltorch(batch: int, rate: float, reps: int, device: str) -> list[dict]:
    try:
        import tltorch
    except ImportError:  # pragma: no cover
        print("tltorch not installed: skipped")
        return []
    rows = []
    for (cin, cout, k, stride, size), _ in conv_shapes("resnet32"):
        if k != 3:
            continue
        conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, device=device)
        x = torch.randn(batch, cin, size, size, device=device)
        for ours, theirs in (("cp", "cp"), ("tk", "tucker"), ("tt", "tt")):
            t = TensorialConv2d.from_dense(conv, format=ours, rate=rate, init="random")
            if ours == "cp":
                rank: object = t.ranks[0]
            elif ours == "tk":
                rank = (t.ranks[1], t.ranks[0], 3, 3)  # tltorch kernel modes (T, S, kh, kw)
            else:
                rank = (1, *t.ranks, 1)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = tltorch.FactorizedConv.from_conv(
                        conv,
                        rank=rank,
                        factorization=theirs,
                        implementation="factorized",
                        decompose_weights=False,
                    )
                f = f.to(device)
            except Exception as exc:  # noqa: BLE001 - report and go on
                rows.append({"shape": (cin, cout, stride, size), "format": ours, "error": repr(exc)[:80]})
                continue
            fwd = _time({"tnn": _forward(t, x), "tltorch": _forward(f, x), "dense": _forward(conv, x)}, reps)
            bwd = _time({"tnn": _train(t, x), "tltorch": _train(f, x), "dense": _train(conv, x)}, reps)
            tl_params = sum(p.numel() for p in f.parameters())
            rows.append(
                {
                    "shape": (cin, cout, stride, size),
                    "format": ours,
                    "ranks": t.ranks,
                    "params": (t.weight_params, tl_params),
                    "fwd": fwd["tnn"] / fwd["tltorch"],
                    "fwdbwd": bwd["tnn"] / bwd["tltorch"],
                    "tl_fwd_vs_dense": fwd["tltorch"] / fwd["dense"],
                    "tnn_fwd_vs_dense": fwd["tnn"] / fwd["dense"],
                }
            )
    return rows


def bench_resnet32(batch: int, fmt: str, rate: float, reps: int, device: str) -> dict:
    from tnn.compression import compress
    from tnn.models import resnet32

    dense = resnet32().to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = compress(dense, format=fmt, rate=rate, init="random", input_shape=(3, 32, 32)).to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def infer(model: nn.Module) -> Callable[[], object]:
        def run() -> object:
            model.eval()
            with torch.no_grad():
                return model(x)

        return run

    def step(model: nn.Module) -> Callable[[], object]:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def run() -> object:
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return run

    inf = _time({"dense": infer(dense), "tnn": infer(small)}, reps)
    trn = _time({"dense": step(dense), "tnn": step(small)}, reps)
    n_dense = sum(p.numel() for p in dense.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    return {
        "format": fmt,
        "rate": rate,
        "params": n_small / n_dense,
        "infer": inf["tnn"] / inf["dense"],
        "train": trn["tnn"] / trn["dense"],
        "infer_dense_ms": 1e3 * inf["dense"],
        "train_dense_ms": 1e3 * trn["dense"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 32, 3 repetitions, rate 0.1 only")
    parser.add_argument("--model", default="resnet32", choices=("resnet32", "resnet50"),
                        help="whose conv shapes the layer part times (the other parts: ResNet-32)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: 128 for ResNet-32, 8 for ResNet-50; --quick: a quarter)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: layers,tltorch,resnet")
    parser.add_argument("--prepare", choices=("optimize", "eval"), default="optimize",
                        help="the layers' inference choice: measured (optimize_for_inference) or the cost "
                             "model's (eval)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    full_batch = 128 if args.model == "resnet32" else 8
    batch = args.batch or (full_batch // 4 if args.quick else full_batch)
    reps = args.reps or (3 if args.quick else 5)
    rates = [0.1] if args.quick else [0.1, 0.05]
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)
    print(
        f"device {args.device}, threads {torch.get_num_threads()}, batch {batch}, reps {reps}, "
        f"torch {torch.__version__}"
    )

    if "layers" not in skip:
        print(f"\n## Layers at the {args.model} shapes: time / memory / params / FLOPs relative to nn.Conv2d")
        print(
            f"{'in->out kxk s@px':>20} {'rate':>5} {'fmt':>4} {'ranks':>16} {'train':>7} {'inf':>7} "
            f"{'fwd':>6} {'fwd+bwd':>7} {'mem':>6} {'params':>7} {'FLOPs':>6}"
        )
        rows = bench_layers(conv_shapes(args.model), batch, rates, reps, args.device, args.prepare)
        for r in rows:
            cin, cout, k, s, px = r["shape"]
            head = f"{cin:>4}->{cout:<4} {k}x{k} s{s}@{px:<3} {r['rate']:>5} {r['format']:>4}"
            if r.get("skipped"):
                print(f"{head} {'(rate below the minimum)':>30}")
                continue
            print(
                f"{head} {str(r['ranks']):>16} {r['mode']:>7} {r['inference']:>7} {r['fwd']:6.2f} "
                f"{r['fwdbwd']:7.2f} {r['mem']:6.2f} {r['params']:7.3f} {r['flops']:6.3f}"
            )
        print(f"\nweighted by occurrences in {args.model} (geometric mean of ratios):")
        for rate in rates:
            for name in FORMATS:
                sel = [r for r in rows if r["rate"] == rate and r["format"] == name and not r.get("skipped")]
                if not sel:
                    continue
                w = sum(r["count"] for r in sel)

                def gm(key: str, sel: list[dict] = sel, w: int = w) -> float:
                    return float(
                        torch.tensor([r[key] for r in sel])
                        .log()
                        .mul(torch.tensor([float(r["count"]) for r in sel]))
                        .sum()
                        .div(w)
                        .exp()
                    )

                slowest = max(sel, key=lambda r: r["fwd"])
                print(
                    f"  rate {rate:<5} {name:>4}: fwd {gm('fwd'):.2f}  fwd+bwd {gm('fwdbwd'):.2f}  "
                    f"mem {gm('mem'):.2f}  FLOPs {gm('flops'):.3f}  (worst fwd {slowest['fwd']:.2f} "
                    f"at {slowest['shape']})"
                )

    if "tltorch" not in skip:
        print("\n## TensorLy-Torch (implementation='factorized') at the same ranks: tnn time / tltorch time")
        tl_rows = bench_tltorch(batch, 0.1, reps, args.device)
        for r in tl_rows:
            cin, cout, s, px = r["shape"]
            if "error" in r:
                print(f"{cin:>4}->{cout:<3} s{s}@{px:<3} {r['format']:>3}: tltorch failed: {r['error']}")
                continue
            print(
                f"{cin:>4}->{cout:<3} s{s}@{px:<3} {r['format']:>3} ranks {str(r['ranks']):>12} params "
                f"{r['params'][0]:>6} vs {r['params'][1]:>6}: fwd {r['fwd']:.2f} fwd+bwd {r['fwdbwd']:.2f} "
                f"(vs dense: tnn {r['tnn_fwd_vs_dense']:.2f}, tltorch {r['tl_fwd_vs_dense']:.2f})"
            )

        for name in ("cp", "tk", "tt"):
            sel = [r for r in tl_rows if r["format"] == name and "error" not in r]
            if sel:
                gm = {k: statistics.geometric_mean(r[k] for r in sel) for k in ("fwd", "fwdbwd")}
                print(f"  {name}: geometric mean over the shapes: fwd {gm['fwd']:.2f}, "
                      f"fwd+bwd {gm['fwdbwd']:.2f}")

    if "resnet" not in skip:
        print(
            "\n## ResNet-32 compressed by tnn.compress vs dense (inference = no_grad eval forward; "
            "train = forward+backward+SGD step)"
        )
        for fmt in ["rtt"] if args.quick else ["rtt", "tk"]:
            r = bench_resnet32(batch, fmt, 0.1, reps, args.device)
            print(
                f"  {r['format']:>4} rate {r['rate']}: params {r['params']:.3f}, inference {r['infer']:.2f}x "
                f"(dense {r['infer_dense_ms']:.1f} ms), training step {r['train']:.2f}x "
                f"(dense {r['train_dense_ms']:.1f} ms)"
            )


if __name__ == "__main__":
    main()
