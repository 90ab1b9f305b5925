"""The true compression rate of the paper authors' r-CP rank rule on a whole model.

``python -m tnn.experiments.paper_rank_rule --model resnet32 --rates 0.05 0.1``
prints, for each nominal rate and number of channel folds ``m``, the fraction of the compressed layers'
weights that r-CP layers at the rule's ranks (:func:`tnn.formats.paper_rules.paper_rcp_rank`) really keep,
next to the rank ``tnn`` chooses for the same nominal rate. The layers are those ``tnn.compress`` would
compress in ``rcp`` with the same ``include`` / ``exclude``, less those that rank 1 already puts above the
rate with ``m`` folds (left out of both sums).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from tnn.compression import compress
from tnn.formats import KernelGeometry
from tnn.formats.paper_rules import paper_rcp_rank
from tnn.formats.reshaped import RCP_FORMAT
from tnn.models import get_model, model_info

__all__ = ["RuleRates", "paper_rule_rates"]


@dataclass(frozen=True)
class RuleRates:
    """Whole-model figures of the authors' rule at one nominal rate and number of folds."""

    rate: float
    m: int
    dense_params: int
    paper_params: int
    tnn_params: int
    #: (layer name, paper rank, tnn rank) per compressed layer
    ranks: tuple[tuple[str, int, int], ...]

    @property
    def paper_rate(self) -> float:
        """Fraction of the compressed layers' weights the rule keeps."""
        return self.paper_params / self.dense_params

    @property
    def tnn_rate(self) -> float:
        """Fraction kept by ``tnn``'s rule (at most ``rate`` in every layer)."""
        return self.tnn_params / self.dense_params


def paper_rule_rates(
    model: nn.Module,
    rate: float,
    m: int = 3,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> RuleRates:
    """Compare the authors' r-CP rank rule with ``tnn``'s on every layer ``rcp`` would compress.

    Parameters
    ----------
    model : nn.Module
        The (dense) model; only its layer shapes are read.
    rate : float
        The nominal rate in ``(0, 1]``.
    m : int
        Number of channel folds per side (``tnn``'s ``rcp`` default is 3; 2 gives larger folds).
    include, exclude : list of str, optional
        As in :func:`tnn.compress`.
    """
    small = compress(model, format="rcp", rate=rate, include=include, exclude=exclude, init="random")
    report = small.tnn_report
    dense = paper = ours = 0
    ranks = []
    for row in report.layers:
        if row.status != "compressed":
            continue
        out_ch, in_ch, *kernel = row.shape
        geom = KernelGeometry.create(out_ch, in_ch, tuple(kernel), m=m)
        p_rank = paper_rcp_rank(geom, rate)
        try:
            t_rank = RCP_FORMAT.ranks_for_rate(geom, rate)
        except ValueError:  # rank 1 is already above the rate with these folds: left out of both sums
            continue
        dense += geom.dense_params
        paper += RCP_FORMAT.param_count(geom, (p_rank,))
        ours += RCP_FORMAT.param_count(geom, t_rank)
        ranks.append((row.name, p_rank, t_rank[0]))
    return RuleRates(rate, m, dense, paper, ours, tuple(ranks))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tnn.experiments.paper_rank_rule", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet32")
    p.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    p.add_argument("--folds", type=int, nargs="+", default=[2, 3], help="numbers of channel folds m")
    p.add_argument("--include", nargs="*", default=None)
    p.add_argument("--exclude", nargs="*", default=None,
                   help="layers kept dense (default: the model's dense_by_default, as in tnn experiment)")
    args = p.parse_args(argv)
    model = get_model(args.model)
    if args.exclude is None:
        args.exclude = list(model_info(args.model).dense_by_default)
    print("| nominal rate | m | true rate, authors' rule | rate kept by tnn "
          "| ranks (authors / tnn), largest layer |")
    print("|---|---|---|---|---|")
    for rate in args.rates:
        for m in args.folds:
            r = paper_rule_rates(model, rate, m, include=args.include, exclude=args.exclude)
            name, p_rank, t_rank = r.ranks[-1]
            print(f"| {rate:g} | {m} | {r.paper_rate:.3f} | {r.tnn_rate:.3f} "
                  f"| {p_rank} / {t_rank} ({name}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
