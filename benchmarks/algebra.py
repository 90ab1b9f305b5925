"""Benchmark of ``tnn.conv_einsum`` on the layer strings of every format (not a test).

For each format at ResNet-32 shapes (batch 128; 16/32/64 channels at 32/16/8 pixels) and ResNet-50
shapes (3x3 layers, 64..512 channels at 56..7 pixels; smaller batch to fit the time budget) it prints
the naive (left-to-right) and planned FLOPs and the measured forward (no_grad) and forward+backward
times of ``conv_einsum`` as a ratio to the best hand-written torch evaluation of the same layer (the
faster of "reconstruct the kernel, then one F.conv2d" and a layer-by-layer sequence of F.conv2d /
torch.einsum calls). Pure-contraction strings are compared with ``torch.einsum``. Timings are the
minima over interleaved repetitions (robust to load spikes on a shared machine); ratios < 1 mean
conv_einsum is faster.

Usage::

    python benchmarks/algebra.py --threads 1            # all 7 shapes
    python benchmarks/algebra.py --quick --threads 1    # one shape per network
    python benchmarks/algebra.py --quick --optimize time --formats rtt,rtr

Measured durations (shared 2-core machine at load average 8-16, so not the unloaded figure): the
full run with 2 threads and 5 repetitions took 26 min; ``--quick --threads 1`` about 5 min. The
default is now 3 repetitions (``--reps``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tnn.algebra import conv_einsum, conv_einsum_path

K = 3


def _split(c: int) -> tuple[int, int]:
    """Fold a channel count into two factors as close as possible (16=(4,4), 32=(4,8), 64=(8,8))."""
    a = 2 ** (int(math.log2(c)) // 2)
    return a, c // a


def layer(name: str, s: int, t: int) -> tuple[str, list[tuple[int, ...]], str, Callable | None]:
    """Layer string, factor shapes, kernel reconstruction string (-> t s h w) and a sequential form."""
    r2, r4 = max(s // 2, 2), max(s // 4, 2)
    s1, s2 = _split(s)
    t1, t2 = _split(t)
    rr = max(s // 8, 4)
    if name == "dense":
        return "bshw,tshw->bthw|hw", [(t, s, K, K)], "tshw->tshw", None
    if name == "svd":
        def seq(x, a, b):
            y = F.conv2d(x, a.permute(1, 0, 2).unsqueeze(-1), padding=(1, 0))
            return F.conv2d(y, b.permute(1, 0, 2).unsqueeze(2), padding=(0, 1))
        return "bshw,srh,rtw->bthw|hw", [(s, r2, K), (r2, t, K)], "srh,rtw->tshw", seq
    if name == "cp":
        def seq(x, a, k, c):
            y = F.conv2d(x, a.t()[:, :, None, None])
            y = F.conv2d(y, k.unsqueeze(1), padding=1, groups=k.shape[0])
            return F.conv2d(y, c.t()[:, :, None, None])
        return "bshw,sr,rhw,rt->bthw|hw", [(s, r2), (r2, K, K), (r2, t)], "sr,rhw,rt->tshw", seq
    if name == "tk":
        def seq(x, a, k, c):
            y = F.conv2d(x, a.t()[:, :, None, None])
            y = F.conv2d(y, k.permute(1, 0, 2, 3), padding=1)
            return F.conv2d(y, c.t()[:, :, None, None])
        return "bshw,sr,rqhw,qt->bthw|hw", [(s, r4), (r4, r4, K, K), (r4, t)], "sr,rqhw,qt->tshw", seq
    if name == "tt":
        def seq(x, a, b, c, d):
            y = F.conv2d(x, a.t()[:, :, None, None])
            y = F.conv2d(y, b.permute(2, 0, 1).unsqueeze(-1), padding=(1, 0))
            y = F.conv2d(y, c.permute(2, 0, 1).unsqueeze(2), padding=(0, 1))
            return F.conv2d(y, d.t()[:, :, None, None])
        shapes = [(s, r4), (r4, K, r4), (r4, K, r4), (r4, t)]
        return "bshw,sa,ahc,cwd,dt->bthw|hw", shapes, "sa,ahc,cwd,dt->tshw", seq
    if name == "tr":
        rt = max(s // 8, 2)

        def seq(x, a, b, c, d):
            ra, rb, rc = a.shape[0], a.shape[2], b.shape[2]
            y = torch.einsum("nshw,asb->nabhw", x, a).flatten(1, 2)
            wb = b.permute(2, 0, 1).unsqueeze(-1).repeat(ra, 1, 1, 1)
            y = F.conv2d(y, wb, padding=(1, 0), groups=ra)
            wc = c.permute(2, 0, 1).unsqueeze(2).repeat(ra, 1, 1, 1)
            y = F.conv2d(y, wc, padding=(0, 1), groups=ra)
            del rb, rc
            return torch.einsum("nadhw,dta->nthw", y.unflatten(1, (ra, -1)), d)
        # the issue writes "bshw,asb,..." (b both batch and rank); the batch is n here
        shapes = [(rt, s, rt), (rt, K, rt), (rt, K, rt), (rt, t, rt)]
        return "nshw,asb,bhc,cwd,dta->nthw|hw", shapes, "asb,bhc,cwd,dta->tshw", seq
    if name == "rcp":
        def seq(x, a, b, k):
            y = torch.einsum("bxyhw,rxu,ryv->bruvhw", x, a, b)
            n, r, u, v, h, w = y.shape
            y = F.conv2d(y.reshape(n, r * u * v, h, w), k.repeat_interleave(u * v, 0).unsqueeze(1),
                         padding=1, groups=r * u * v)
            return y.reshape(n, r, u, v, h, w).sum(1)
        shapes = [(r2, s1, t1), (r2, s2, t2), (r2, K, K)]
        return "bxyhw,rxu,ryv,rhw->buvhw|hw", shapes, "rxu,ryv,rhw->uvxyhw", seq
    if name == "rtk":
        def seq(x, a, b, k):
            y = torch.einsum("bxyhw,xup,yvq->buvpqhw", x, a, b)
            n, u, v, p, q, h, w = y.shape
            y = F.conv2d(y.reshape(n * u * v, p * q, h, w), k.reshape(1, p * q, K, K), padding=1)
            return y.reshape(n, u, v, h, w)
        shapes = [(s1, t1, rr), (s2, t2, rr), (rr, rr, K, K)]
        return "bxyhw,xup,yvq,pqhw->buvhw|hw", shapes, "xup,yvq,pqhw->uvxyhw", seq
    if name == "rtt":
        def seq(x, a, b, k):
            y = torch.einsum("bxyhw,xua,ayvc->buvchw", x, a, b)
            n, u, v, c, h, w = y.shape
            y = F.conv2d(y.reshape(n * u * v, c, h, w), k.unsqueeze(0), padding=1)
            return y.reshape(n, u, v, h, w)
        shapes = [(s1, t1, rr), (rr, s2, t2, rr), (rr, K, K)]
        return "bxyhw,xua,ayvc,chw->buvhw|hw", shapes, "xua,ayvc,chw->uvxyhw", seq
    if name == "rtr":
        def seq(x, a, b, k):
            y = torch.einsum("bxyhw,dxua,ayvc->buvcdhw", x, a, b)
            n, u, v, c, d, h, w = y.shape
            y = F.conv2d(y.reshape(n * u * v, c * d, h, w), k.permute(0, 3, 1, 2).reshape(1, c * d, K, K),
                         padding=1)
            return y.reshape(n, u, v, h, w)
        rt = max(s // 16, 2)
        shapes = [(rt, s1, t1, rt), (rt, s2, t2, rt), (rt, K, K, rt)]
        return "bxyhw,dxua,ayvc,chwd->buvhw|hw", shapes, "dxua,ayvc,chwd->uvxyhw", seq
    raise ValueError(name)


FORMATS = ["dense", "svd", "cp", "tk", "tt", "tr", "rcp", "rtk", "rtt", "rtr"]


def timeit(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Minimum wall time of each callable over interleaved repetitions (seconds)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def _fwd_bwd(fn: Callable[..., torch.Tensor], ops: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for t in ops:
            t.grad = None
        fn(*ops).sum().backward()

    return run


def bench_layer(name: str, b: int, s: int, t: int, px: int, reps: int, optimize: str = "auto"
                ) -> dict[str, object]:
    spec, shapes, recon, seq = layer(name, s, t)
    reshaped = name.startswith("r")
    xshape = (b, *_split(s), px, px) if reshaped else (b, s, px, px)
    x = torch.randn(*xshape)
    factors = [torch.randn(*sh) * 0.1 for sh in shapes]
    _, info = conv_einsum_path(spec, x, *factors, padding=1, optimize=optimize)

    def ours(*ops):
        return conv_einsum(spec, *ops, padding=1, optimize=optimize)

    def by_kernel(xx, *fs):
        kernel = torch.einsum(recon, *fs).reshape(t, s, K, K)
        return F.conv2d(xx.reshape(b, s, px, px), kernel, padding=1)

    hands: dict[str, Callable] = {"kernel": by_kernel}
    if seq is not None:
        hands["seq"] = lambda xx, *fs: seq(xx.reshape(b, s, px, px) if not reshaped else xx, *fs)
    ops = [x, *factors]
    with torch.no_grad():
        fns = {"ours": lambda: ours(*ops), **{k: (lambda f=f: f(*ops)) for k, f in hands.items()}}
        fwd = timeit(fns, reps)
    gops = [o.clone().requires_grad_(True) for o in ops]
    bwd = timeit({"ours": _fwd_bwd(ours, gops), **{k: _fwd_bwd(f, gops) for k, f in hands.items()}}, reps)
    best_f = min((v, k) for k, v in fwd.items() if k != "ours")
    best_b = min((v, k) for k, v in bwd.items() if k != "ours")
    return {
        "naive": info.naive_flops,
        "planned": info.opt_flops,
        "fwd": fwd["ours"] / best_f[0],
        "fwd_by": best_f[1],
        "bwd": bwd["ours"] / best_b[0],
        "bwd_by": best_b[1],
        "fwd_ms": fwd["ours"] * 1e3,
        "fwd_seq": fwd["ours"] / fwd["seq"] if "seq" in fwd else float("nan"),
        "bwd_seq": bwd["ours"] / bwd["seq"] if "seq" in bwd else float("nan"),
    }


def bench_pure(spec: str, shapes: list[tuple[int, ...]], reps: int) -> tuple[float, float]:
    ops = [torch.randn(*sh) for sh in shapes]
    with torch.no_grad():
        fwd = timeit(
            {"ours": lambda: conv_einsum(spec, *ops), "einsum": lambda: torch.einsum(spec, *ops)}, reps
        )
    gops = [o.clone().requires_grad_(True) for o in ops]
    bwd = timeit(
        {
            "ours": _fwd_bwd(lambda *o: conv_einsum(spec, *o), gops),
            "einsum": _fwd_bwd(lambda *o: torch.einsum(spec, *o), gops),
        },
        reps,
    )
    return fwd["ours"] / fwd["einsum"], bwd["ours"] / bwd["einsum"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one shape per network, fewer repetitions")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement")
    parser.add_argument("--batch50", type=int, default=4, help="batch size at ResNet-50 shapes")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated format names")
    parser.add_argument("--optimize", default="auto",
                        help="conv_einsum optimizer for the layers (default: conv_einsum's default)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = args.reps or 3
    r32 = [(128, 16, 16, 32), (128, 32, 32, 16), (128, 64, 64, 8)]
    r50 = [(args.batch50, 64, 64, 56), (args.batch50, 128, 128, 28), (args.batch50, 256, 256, 14),
           (args.batch50, 512, 512, 7)]
    if args.quick:
        r32, r50 = r32[:1], r50[-1:]
    formats = args.formats.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, reps={reps}, "
          f"optimize={args.optimize!r}")
    print("ratios = conv_einsum time / best hand-written time (kernel: reconstruct + F.conv2d, "
          "seq: layer by layer); fwd/seq, f+b/seq: ratios to the layer-by-layer form alone")
    header = (f"{'net':<6} {'B':>4} {'S':>4} {'T':>4} {'px':>3} {'format':<6} {'naive GF':>9} "
              f"{'plan GF':>8} {'plan/naive':>10} {'fwd ratio':>13} {'fwd+bwd ratio':>15} {'fwd ms':>8} "
              f"{'fwd/seq':>8} {'f+b/seq':>8}")
    print(header)
    fwd_r, bwd_r, worst_plan = [], [], 0.0
    for net, configs in (("r32", r32), ("r50", r50)):
        for b, s, t, px in configs:
            for name in formats:
                r = bench_layer(name, b, s, t, px, reps, args.optimize)
                fwd_r.append(r["fwd"])
                bwd_r.append(r["bwd"])
                worst_plan = max(worst_plan, r["planned"] / r["naive"])
                print(f"{net:<6} {b:>4} {s:>4} {t:>4} {px:>3} {name:<6} {r['naive'] / 1e9:>9.3f} "
                      f"{r['planned'] / 1e9:>8.3f} {r['planned'] / r['naive']:>10.3f} "
                      f"{r['fwd']:>7.2f} ({r['fwd_by']:<6}) {r['bwd']:>7.2f} ({r['bwd_by']:<6}) "
                      f"{r['fwd_ms']:>8.2f} {r['fwd_seq']:>8.2f} {r['bwd_seq']:>8.2f}", flush=True)

    def gmean(v: list[float]) -> float:
        return math.exp(sum(math.log(x) for x in v) / len(v))

    print(f"layers: planned/naive max {worst_plan:.3f}; fwd ratio geomean {gmean(fwd_r):.3f} "
          f"max {max(fwd_r):.3f}; fwd+bwd ratio geomean {gmean(bwd_r):.3f} max {max(bwd_r):.3f}")
    print("\npure contractions: conv_einsum time / torch.einsum time")
    pure = []
    s, t = (16, 16) if args.quick else (64, 64)
    for name in formats:
        spec, shapes, recon, _ = layer(name, s, t)
        pure.append((f"{name} kernel", recon, shapes))
    pure += [
        ("1x1 cp", "bshw,sr,rt->bthw", [(128, 16, 32, 32), (16, 8), (8, 16)]),
        ("1x1 tt", "bshw,sa,ac,ct->bthw", [(128, 16, 32, 32), (16, 4), (4, 4), (4, 16)]),
        ("1x1 rtt", "bxyhw,xua,ayv->buvhw", [(128, 4, 4, 32, 32), (4, 4, 4), (4, 4, 4)]),
        ("linear tt", "bs,sa,ac,ct->bt", [(128, 512), (512, 8), (8, 8), (8, 512)]),
    ]
    pf, pb = [], []
    for label, spec, shapes in pure:
        f, bw = bench_pure(spec, shapes, reps * 4)
        pf.append(f)
        pb.append(bw)
        print(f"  {label:<12} {spec:<28} fwd {f:6.2f}  fwd+bwd {bw:6.2f}", flush=True)
    print(f"pure: fwd ratio geomean {gmean(pf):.3f} max {max(pf):.3f}; "
          f"fwd+bwd ratio geomean {gmean(pb):.3f} max {max(pb):.3f}")


if __name__ == "__main__":
    main()
