"""The reshaped formats of the paper: ``rcp``, ``rtk``, ``rtt``, ``rtr``.

The per-group channels are folded row-major into ``m`` factors each, ``S/g = S_0...S_{m-1}`` and
``T/g = T_0...T_{m-1}``; the kernel becomes a tensor over the ``m`` pair modes ``(S_l, T_l)`` and the
spatial mode ``(kh, kw)``, decomposed in CP / Tucker / TT / TR form. With letters ``x_l`` (input folds),
``u_l`` (output folds), for ``m = 3``:

- ``rcp``: ``A_l[r, x_l, u_l]`` and ``C[r, h, w]``; ranks ``(r,)``.
- ``rtk``: ``U_l[x_l, u_l, r_l]`` and the core ``G[r_0, .., r_{m-1}, h, w]``; ranks ``(r_0, .., r_{m-1})``.
- ``rtt``: ``U_0[x_0, u_0, r_0]``, ``U_l[r_{l-1}, x_l, u_l, r_l]``, ``C[r_{m-1}, h, w]``; ``m`` ranks.
- ``rtr``: ``U_l[r_l, x_l, u_l, r_{l+1}]`` and ``C[r_m, h, w, r_0]``; ``m + 1`` ranks.

For 1x1 kernels ``rtt`` / ``rtr`` drop ``C``: the last pair core carries the size-1 ``h, w`` (and closes
the train / ring); linear layers have no spatial mode at all.
"""

from __future__ import annotations

from tnn.formats.base import KernelGeometry
from tnn.formats.engines import ChainFormat, CPFormat, Modes, TuckerFormat


def _pair_modes(geom: KernelGeometry, keep_unit_spatial: bool) -> Modes:
    ins, outs, sizes = geom.letters()
    pairs = tuple(x + u for x, u in zip(ins, outs, strict=True))
    if not geom.is_conv:
        return Modes(pairs, sizes)
    if geom.spatial_size > 1 or keep_unit_spatial:
        return Modes((*pairs, "hw"), sizes)
    return Modes(pairs, sizes, trailing="hw")


class RCP(CPFormat):
    name = "rcp"
    reshaped = True
    default_m = 3
    description = "reshaped CP over (S_l T_l)..., (kh kw)"

    def modes(self, geom: KernelGeometry) -> Modes:
        return _pair_modes(geom, keep_unit_spatial=True)


class RTK(TuckerFormat):
    name = "rtk"
    reshaped = True
    default_m = 2
    description = "reshaped Tucker on the (S_l T_l) modes"

    def modes(self, geom: KernelGeometry) -> Modes:
        md = _pair_modes(geom, keep_unit_spatial=True)
        return Modes(md.modes, md.sizes, factored=tuple(m != "hw" for m in md.modes))


class RTT(ChainFormat):
    name = "rtt"
    reshaped = True
    default_m = 3
    ring = False
    description = "reshaped Tensor-Train over (S_l T_l)..., (kh kw)"

    def modes(self, geom: KernelGeometry) -> Modes:
        return _pair_modes(geom, keep_unit_spatial=False)


class RTR(ChainFormat):
    name = "rtr"
    reshaped = True
    default_m = 3
    ring = True
    description = "reshaped Tensor-Ring over (S_l T_l)..., (kh kw)"

    def modes(self, geom: KernelGeometry) -> Modes:
        return _pair_modes(geom, keep_unit_spatial=False)


RCP_FORMAT, RTK_FORMAT, RTT_FORMAT, RTR_FORMAT = RCP(), RTK(), RTT(), RTR()
