"""Compression formats: how a layer's kernel is represented as a tensor network.

:data:`FORMATS` lists the names; :func:`get_format` returns the (stateless) :class:`Format` object that
knows the factor shapes, parameter count, ``conv_einsum`` string, rank selection for a budget,
decomposition of a dense kernel and random initialisation of that format. See ``docs/formats.md``.
"""

from __future__ import annotations

from tnn.formats.base import Format, KernelGeometry, Network, check_rate
from tnn.formats.cp import FORMAT as _CP
from tnn.formats.folding import balanced_factors
from tnn.formats.reshaped import RCP_FORMAT, RTK_FORMAT, RTR_FORMAT, RTT_FORMAT
from tnn.formats.svd import FORMAT as _SVD
from tnn.formats.tt import TR_FORMAT, TT_FORMAT
from tnn.formats.tucker import FORMAT as _TK

__all__ = [
    "FORMATS",
    "BASELINE_FORMATS",
    "RESHAPED_FORMATS",
    "Format",
    "KernelGeometry",
    "Network",
    "get_format",
    "check_format",
    "balanced_factors",
    "check_rate",
]

_REGISTRY: dict[str, Format] = {
    f.name: f for f in (_SVD, _CP, _TK, TT_FORMAT, TR_FORMAT, RCP_FORMAT, RTK_FORMAT, RTT_FORMAT, RTR_FORMAT)
}

#: every format name, baselines first
FORMATS: tuple[str, ...] = ("svd", "cp", "tk", "tt", "tr", "rcp", "rtk", "rtt", "rtr")
#: low-rank approximations of the original kernel
BASELINE_FORMATS: tuple[str, ...] = FORMATS[:5]
#: the paper's reshaped (folded-channel) TNN formats
RESHAPED_FORMATS: tuple[str, ...] = FORMATS[5:]

assert tuple(_REGISTRY) == FORMATS


def check_format(name: str) -> str:
    """Validate a format name: one of :data:`FORMATS`.

    This is the one check of the rule; :func:`get_format`, the layers, :func:`tnn.compress`, the
    experiment runner and the command line all call it.

    Parameters
    ----------
    name : str
        A format name such as ``"rtt"``.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`FORMATS` (or not a string); the message lists the valid names.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown format {name!r}; valid formats: {', '.join(FORMATS)}")
    return name


def get_format(name: str | Format) -> Format:
    """The :class:`Format` called ``name`` (a :class:`Format` is returned as is).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`FORMATS` (see :func:`check_format`).
    """
    if isinstance(name, Format):
        return name
    return _REGISTRY[check_format(name)]
