"""``svd``: the kernel as a product of a ``kh x 1`` and a ``1 x kw`` convolution (Jaderberg et al. 2014).

Factors ``U[s, h, r]`` and ``V[r, t, w]``: ``K[t, s, h, w] = sum_r U[s, h, r] V[r, t, w]``, the truncated
SVD of ``K`` permuted to an ``(S*kh) x (T*kw)`` matrix (``sqrt`` of the singular values on each side).
Linear layers: ``U[s, r] V[r, t]``. Parameters ``g * r * (S/g*kh + T/g*kw)``.
"""

from __future__ import annotations

from tnn.formats.base import KernelGeometry
from tnn.formats.engines import ChainFormat, Modes


class SVD(ChainFormat):
    name = "svd"
    description = "truncated SVD: kh x 1 conv then 1 x kw conv"

    def modes(self, geom: KernelGeometry) -> Modes:
        ins, outs, sizes = geom.letters()
        if geom.is_conv:
            return Modes((ins + "h", outs + "w"), sizes)
        return Modes((ins, outs), sizes)


FORMAT = SVD()
