"""How many independent output channels a compressed layer can still produce, per format and rate.

A layer's *channel rank* is the rank of its kernel ``(T, S, kh, kw)`` unfolded to a ``T x (S·kh·kw)``
matrix: the dimension of the space its ``T`` output channels span (before batch norm and the
non-linearity). A dense layer has full channel rank ``min(T, S·kh·kw)``. A low-rank baseline caps it by its
rank (cp rank ``R``: at most ``R``; tk, tt, tr: at most the output-side rank), so at rate 0.01 a 64-channel
ResNet-32 layer in cp keeps a 2-dimensional channel space. A reshaped format of the same size is a sum of
Kronecker-like products over the folded channel modes, whose unfolding is generically of full rank.

``python -m tnn.experiments.channel_rank --model resnet32 --rates 0.01 0.02 0.05 0.1``
prints, per format and rate, the channel rank of every compressed layer as a fraction of its full rank
(mean and minimum over the layers). The factors are float64: without ``--weights`` random (the rank the
format allows, almost surely), with ``--weights`` the decompositions of the pretrained kernels (and a
column with their mean relative reconstruction error).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tnn.compression import compress
from tnn.decompositions import relative_error
from tnn.formats import FORMATS
from tnn.models import get_model, model_info
from tnn.models.pretrained import load_pretrained
from tnn.nn import TensorialConv2d, TensorialLinear

__all__ = ["LayerRank", "channel_rank", "layer_ranks"]


@dataclass(frozen=True)
class LayerRank:
    """Channel rank of one compressed layer."""

    name: str
    shape: tuple[int, ...]
    rank: int
    #: ``||W - W_hat|| / ||W||`` against the dense layer's kernel, when :func:`layer_ranks` had it
    error: float | None = None

    @property
    def full(self) -> int:
        """The channel rank of a generic dense kernel of this shape, ``min(T, S·kh·kw)``."""
        out_ch, *rest = self.shape
        return min(out_ch, math.prod(rest))

    @property
    def fraction(self) -> float:
        return self.rank / self.full


def channel_rank(kernel: torch.Tensor) -> int:
    """Rank of ``kernel`` ``(T, S, ...)`` unfolded to ``T x (S·...)``.

    Singular values below ``eps · max(T, S·...) · σ_max`` count as zero, with the ``eps`` of the
    kernel's own dtype: a float32 reconstruction's rounding noise is not rank.
    """
    if kernel.dim() < 2:
        raise ValueError(f"expected a kernel with output and input modes, got shape {tuple(kernel.shape)}")
    matrix = kernel.detach().reshape(kernel.shape[0], -1)
    rtol = torch.finfo(kernel.dtype).eps * max(matrix.shape)
    return int(torch.linalg.matrix_rank(matrix.to(torch.float64), rtol=rtol))


def layer_ranks(model: nn.Module, dense: nn.Module | None = None) -> list[LayerRank]:
    """The channel rank of every tensorial layer of a compressed ``model``, in module order; with the
    ``dense`` model it was compressed from, also each kernel's relative reconstruction error."""
    rows = []
    for name, layer in model.named_modules():
        if isinstance(layer, (TensorialConv2d, TensorialLinear)):
            kernel = layer.dense_weight().detach()  # (T, S/groups, kh, kw) or (T, S)
            original = None if dense is None else dense.get_submodule(name).weight.detach()
            error = None if original is None else relative_error(original, kernel)
            rows.append(LayerRank(name, tuple(kernel.shape), channel_rank(kernel), error))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tnn.experiments.channel_rank", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet32")
    p.add_argument("--weights", default=None,
                   help="pretrained weights: decompose them (default: random factors)")
    p.add_argument("--formats", nargs="+", default=["cp", "rcp", "tk", "rtk", "tt", "rtt", "tr", "rtr"],
                   choices=FORMATS)
    p.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    p.add_argument("--exclude", nargs="*", default=None,
                   help="layers kept dense (default: the model's dense_by_default, as in tnn experiment)")
    args = p.parse_args(argv)
    model = get_model(args.model).double()  # float64 factors: exact ranks
    if args.weights:
        load_pretrained(model, args.weights)
    if args.exclude is None:
        args.exclude = list(model_info(args.model).dense_by_default)
    torch.manual_seed(0)
    header = "| format | rate | layers compressed | channel rank / full, mean | minimum (layer) |"
    print(header + (" mean relative reconstruction error |" if args.weights else ""))
    print("|---|---|---|---|---|" + ("---|" if args.weights else ""))
    for fmt in args.formats:
        for rate in args.rates:
            small = compress(model, format=fmt, rate=rate, exclude=args.exclude,
                             init="decompose" if args.weights else "random")
            rows = layer_ranks(small, model if args.weights else None)
            if not rows:
                print(f"| {fmt} | {rate:g} | 0 | — | — |" + (" — |" if args.weights else ""))
                continue
            low = min(rows, key=lambda r: r.fraction)
            mean = sum(r.fraction for r in rows) / len(rows)
            line = f"| {fmt} | {rate:g} | {len(rows)} | {mean:.3f} | {low.rank} of {low.full} ({low.name}) |"
            if args.weights:
                line += f" {sum(r.error for r in rows) / len(rows):.3f} |"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
