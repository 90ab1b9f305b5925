"""``tt`` and ``tr``: Tensor-Train / Tensor-Ring decomposition over the modes ``(S, kh, kw, T)``.

``tt`` factors ``G1[s, a]``, ``G2[a, h, c]``, ``G3[c, w, d]``, ``G4[d, t]`` (ranks ``(a, c, d)``);
``tr`` factors ``G1[e, s, a]``, ``G2[a, h, c]``, ``G3[c, w, d]``, ``G4[d, t, e]`` (ranks ``(e, a, c, d)``,
``e`` closing the ring). Spatial modes of size 1 (1x1 kernels) get no core: their letter is carried by
the last core, so a 1x1 conv is ``G1[s, a] G4[a, t, h, w]`` (``tt``). Linear layers: modes ``(S, T)``.
"""

from __future__ import annotations

from tnn.formats.base import KernelGeometry
from tnn.formats.engines import ChainFormat, Modes


def _chain_modes(geom: KernelGeometry) -> Modes:
    ins, outs, sizes = geom.letters()
    if not geom.is_conv:
        return Modes((ins, outs), sizes)
    spatial = [c for c in "hw" if sizes[c] > 1]
    trailing = "".join(c for c in "hw" if sizes[c] == 1)
    return Modes((ins, *spatial, outs), sizes, trailing=trailing)


class TT(ChainFormat):
    name = "tt"
    description = "Tensor-Train over (S, kh, kw, T)"
    ring = False

    def modes(self, geom: KernelGeometry) -> Modes:
        return _chain_modes(geom)


class TR(ChainFormat):
    name = "tr"
    description = "Tensor-Ring over (S, kh, kw, T)"
    ring = True

    def modes(self, geom: KernelGeometry) -> Modes:
        return _chain_modes(geom)


TT_FORMAT = TT()
TR_FORMAT = TR()
