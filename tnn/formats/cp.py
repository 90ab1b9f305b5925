"""``cp``: CP decomposition of the kernel viewed as an ``(S, kh*kw, T)`` tensor (Lebedev et al. 2015).

Factors ``A[r, s]``, ``B[r, h, w]``, ``C[r, t]``: ``K[t, s, h, w] = sum_r A[r, s] B[r, h, w] C[r, t]`` — a
1x1 conv to ``r`` channels, a depthwise ``kh x kw`` conv, a 1x1 conv to ``T``. Parameters
``g * r * (S/g + kh*kw + T/g)``. Linear layers: ``A[r, s] C[r, t]`` (a rank-``r`` matrix).
"""

from __future__ import annotations

from tnn.formats.base import KernelGeometry
from tnn.formats.engines import CPFormat, Modes


class CP(CPFormat):
    name = "cp"
    description = "CP: 1x1 conv, depthwise kh x kw conv, 1x1 conv"

    def modes(self, geom: KernelGeometry) -> Modes:
        ins, outs, sizes = geom.letters()
        return Modes((ins, "hw", outs) if geom.is_conv else (ins, outs), sizes)


FORMAT = CP()
