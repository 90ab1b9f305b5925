"""How the tensor-ring initialisation of the ``tr`` / ``rtr`` layers is chosen (not a test).

1. ``--part gain``: every Conv2d of the pretrained ResNet-32 but ``conv1`` compressed at rate 0.1 with
   ``tr`` and ``rtr`` under each initialisation; prints the mean relative reconstruction error and the
   median / max *gain* = product of the cores' Frobenius norms / the kernel's norm (1 or a little more
   when the cores do not cancel; hundreds when they do).
2. ``--part train``: sequential training of tr and rtr at rate 0.1 from each initialisation with a short
   budget (``cpu`` with 60 steps per stage on 3,840 images), scored on the **held-out validation images**
   only; one experiment folder per initialisation under ``--out``.

Initialisations: ``svd`` (TR-SVD only, no sweeps), ``svdfill`` (TR-SVD, bonds it left at zero refilled with
small random values so that training can use them), ``als`` (10 plain ALS sweeps, the default before the
ridge), ``ridge<λ>`` (10 sweeps with ``regularization=λ``; the default is ``ridge0.1``).

Usage::

    python benchmarks/tr_init.py --part gain --weights resnet32-d509ac18.th
    python benchmarks/tr_init.py --part train --weights resnet32-d509ac18.th --data-dir DATA \\
        --inits als ridge0.1 svdfill ridge0.01 ridge1.0 --out runs/trinit
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
from collections.abc import Iterator

import torch
from init_error import compressed_layers, load_resnet32, relative_error  # benchmarks/ is on sys.path

import tnn.decompositions as decompositions
import tnn.formats.engines as engines
from tnn.decompositions import tr as tr_module


@contextlib.contextmanager
def initialisation(name: str) -> Iterator[None]:
    """Temporarily switch the tr/rtr layer initialisation to ``name``."""
    saved = engines.TR_ALS_SWEEPS, engines.TR_ALS_RIDGE, decompositions.tensor_ring
    try:
        if name == "svd":
            engines.TR_ALS_SWEEPS = 0
        elif name == "svdfill":
            original = decompositions.tensor_ring

            def svd_fill(tensor, rank, **_kw):  # type: ignore[no-untyped-def]
                cores = original(tensor, rank, n_iter_max=0).cores
                cores = tr_module._fill_dead_bonds(cores, tr_module.make_generator(0))
                error = tr_module.relative_error(tensor, tr_module.tr_to_tensor(cores))
                return tr_module.TRTensor(cores, error)

            decompositions.tensor_ring = svd_fill
        elif name == "als":
            engines.TR_ALS_RIDGE = 0.0
        elif name.startswith("ridge"):
            engines.TR_ALS_RIDGE = float(name[len("ridge"):])
        else:
            raise ValueError(f"unknown initialisation {name!r}")
        yield
    finally:
        engines.TR_ALS_SWEEPS, engines.TR_ALS_RIDGE, decompositions.tensor_ring = saved


def gain_table(weights: str, inits: list[str], rate: float) -> None:
    model = load_resnet32(weights)
    print("| initialisation | format | mean error | median gain | max gain |")
    print("| --- | --- | ---: | ---: | ---: |")
    for init in inits:
        for fmt in ("tr", "rtr"):
            with initialisation(init):
                pairs = compressed_layers(model, fmt, rate)
            errors, gains = [], []
            for conv, layer in pairs:
                errors.append(relative_error(conv, layer))
                norms = [float(p.detach().norm()) for n, p in layer.named_parameters() if n != "bias"]
                gains.append(math.prod(norms) / float(conv.weight.detach().norm()))
            print(f"| {init} | {fmt} | {statistics.mean(errors):.3f} | {statistics.median(gains):.1f} "
                  f"| {max(gains):.1f} |", flush=True)


def train_table(weights: str, data_dir: str, inits: list[str], rate: float, out: str) -> None:
    from tnn.experiments.runner import run_experiment
    from tnn.recipes import get_budget

    budget = get_budget("cpu", "resnet32", steps_per_stage=60, train_subset=3840, eval_limit=200)
    print("| initialisation | tr val % | rtr val % |")
    print("| --- | ---: | ---: |")
    for init in inits:
        with initialisation(init):
            rows = run_experiment("resnet32", "cifar10", ["tr", "rtr"], [rate], budget, f"{out}-{init}",
                                  weights=weights, data_dir=data_dir, exclude=["conv1", "linear"],
                                  log=lambda _msg: None)
        val = {r["format"]: r["acc_seq_val"] for r in rows if r["format"] != "baseline"}
        print(f"| {init} | {100 * val['tr']:.1f} | {100 * val['rtr']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["gain", "train"], default="gain")
    parser.add_argument("--weights", required=True, help="pretrained ResNet-32 checkpoint")
    parser.add_argument("--data-dir", help="data root holding CIFAR-10 (--part train)")
    parser.add_argument("--inits", nargs="+", default=["svd", "als", "ridge0.001", "ridge0.01", "ridge0.1"])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--out", default="runs/trinit", help="folder prefix of the training runs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "gain":
        gain_table(args.weights, args.inits, args.rate)
    else:
        if not args.data_dir:
            parser.error("--part train needs --data-dir")
        train_table(args.weights, args.data_dir, args.inits, args.rate, args.out)


if __name__ == "__main__":
    main()
