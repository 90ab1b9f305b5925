"""``tk``: Tucker-2 decomposition of the kernel on its channel modes (Kim et al. 2016).

Factors ``A[s, r]``, ``C[t, q]`` and the core ``G[r, q, h, w]``:
``K[t, s, h, w] = sum_{r,q} A[s, r] G[r, q, h, w] C[t, q]`` — a 1x1 conv to ``r`` channels, a ``kh x kw``
conv to ``q`` channels, a 1x1 conv to ``T``. Parameters ``g * (S/g*r + r*q*kh*kw + T/g*q)``.
Linear layers: ``A[s, r] G[r, q] C[t, q]``.
"""

from __future__ import annotations

from tnn.formats.base import KernelGeometry
from tnn.formats.engines import Modes, TuckerFormat


class Tucker(TuckerFormat):
    name = "tk"
    description = "Tucker-2: 1x1 conv, kh x kw core conv, 1x1 conv"

    def modes(self, geom: KernelGeometry) -> Modes:
        ins, outs, sizes = geom.letters()
        if geom.is_conv:
            return Modes((ins, outs, "hw"), sizes, factored=(True, True, False))
        return Modes((ins, outs), sizes, factored=(True, True))


FORMAT = Tucker()
