"""The rank rule of the paper authors' 2018 code for reshaped CP, kept to measure its true rate.

The authors chose the r-CP rank of a ``k x k`` convolution with ``S`` inputs and ``T`` outputs, folded into
``S = S_0...S_{m-1}`` and ``T = T_0...T_{m-1}``, at a nominal rate ``c`` as

    R = ceil(c * k^2 * S * T / ((2k if k > 1 else 0) + sum_l S_l + sum_l T_l)),

a denominator that counts the parameters per rank of a CP decomposition of the *unfolded* kernel with its
modes folded (``S_l`` and ``T_l`` as separate factors). An r-CP layer instead holds one factor per pair mode
``(S_l, T_l)`` and one spatial factor, ``R * (sum_l S_l * T_l + k^2)`` parameters (``tnn.formats`` ``rcp``),
so the rule keeps more than ``c`` of the layer. :func:`paper_rcp_rank` gives the rule's rank;
:func:`paper_rcp_rate` the fraction of the layer it really keeps. The library never uses this rule to
choose ranks (``Format.ranks_for_rate`` keeps at most ``c`` of every layer); it exists to compare.
"""

from __future__ import annotations

import math

from tnn.formats.base import KernelGeometry, check_rate
from tnn.formats.reshaped import RCP_FORMAT

__all__ = ["paper_rcp_rank", "paper_rcp_rate"]


def paper_rcp_rank(geom: KernelGeometry, rate: float) -> int:
    """The r-CP rank the authors' rule picks for a layer at a nominal ``rate``.

    Parameters
    ----------
    geom : KernelGeometry
        The layer's shape and channel folds (``groups == 1``); a linear layer counts as ``k = 1``.
    rate : float
        The nominal compression rate in ``(0, 1]``.

    Returns
    -------
    int
        ``R >= 1``.

    Examples
    --------
    >>> geom = KernelGeometry.create(64, 64, (3, 3), m=2)  # folds (8, 8) x (8, 8)
    >>> paper_rcp_rank(geom, 0.05)  # ceil(0.05 * 9 * 64 * 64 / (6 + 16 + 16))
    49
    """
    rate = check_rate(rate)
    if geom.groups != 1:
        raise ValueError(f"paper_rcp_rank: the authors' rule is for groups=1 layers, got {geom.describe()}")
    spatial = sum(geom.kernel_size) if geom.spatial_size > 1 else 0
    per_rank = spatial + sum(geom.in_folds) + sum(geom.out_folds)
    return max(1, math.ceil(rate * geom.dense_params / per_rank - 1e-9))


def paper_rcp_rate(geom: KernelGeometry, rate: float) -> float:
    """The fraction of the layer's weight parameters an r-CP layer at :func:`paper_rcp_rank` keeps."""
    rank = paper_rcp_rank(geom, rate)
    return RCP_FORMAT.param_count(geom, (rank,)) / geom.dense_params
