"""The common interface of every compression format.

A format describes a convolution kernel ``K[t, s, h, w]`` (PyTorch layout ``(T, S/g, kh, kw)``) or a
linear weight ``W[t, s]`` (layout ``(T, S)``) as a *tensor network*: a list of factors, each a tensor
whose modes are labelled by letters. Everything else — the factor shapes, the parameter count, the
``conv_einsum`` string of the layer, the kernel reconstruction, the rank selection for a budget and the
random initialisation — is derived here from that single description (:meth:`Format.network`), so no
fact is stated twice. A concrete format only supplies

- :meth:`Format.rank_length` / :meth:`Format.max_ranks`: how many ranks it has and their useful maxima;
- :meth:`Format.network`: the letters of each factor and the size of each letter;
- :meth:`Format._decompose`: factors approximating one group's kernel (via :mod:`tnn.decompositions`).

Letter conventions in every network: ``b`` batch, ``g`` group (a partial-outer-product index present in
the input, every factor and the output when ``groups > 1``), ``h`` and ``w`` the spatial modes (conv
indices: the input carries the signal, the factor holding ``h``/``w`` is the filter). All other letters
are the format's own: input folds, output folds and ranks.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from tnn.formats.folding import balanced_factors

__all__ = ["KernelGeometry", "Network", "Format", "as_rank_tuple", "check_rate"]

#: letters reserved by the layer-level spec (batch, group, spatial)
RESERVED = "bghw"


#: letters of the input-channel folds, output-channel folds and ranks (disjoint, none in RESERVED)
IN_LETTERS = "sxyzjklSXYZJKL"
OUT_LETTERS = "tuvopqnTUVOPQN"
RANK_LETTERS = "racdefimRACDEFIMGHW"
#: the largest number of channel folds the letter pools allow
MAX_FOLDS = len(IN_LETTERS)


@dataclass(frozen=True)
class KernelGeometry:
    """The shape of a layer's weight and how its channels are folded.

    Parameters
    ----------
    out_channels : int
        ``T``, the number of output channels (features) of the whole layer.
    in_channels : int
        ``S``, the number of input channels of the whole layer.
    kernel_size : tuple of int
        ``(kh, kw)`` for a convolution, ``()`` for a linear layer.
    groups : int
        ``g``; each group maps ``S/g`` input to ``T/g`` output channels with its own factors.
    out_folds, in_folds : tuple of int
        Row-major folding of the *per-group* channel counts, ``T/g = prod(out_folds)`` and
        ``S/g = prod(in_folds)``; both have the same length ``m`` (1 for the baseline formats).
    """

    out_channels: int
    in_channels: int
    kernel_size: tuple[int, ...] = ()
    groups: int = 1
    out_folds: tuple[int, ...] = field(default=())
    in_folds: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("out_channels", "in_channels", "groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"KernelGeometry: {name} must be a positive int, got {value!r}")
        ks = tuple(self.kernel_size)
        if len(ks) not in (0, 2) or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(
                f"KernelGeometry: kernel_size must be () or two positive ints, got {self.kernel_size!r}"
            )
        object.__setattr__(self, "kernel_size", ks)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"KernelGeometry: in_channels={self.in_channels} and out_channels="
                f"{self.out_channels} must both be divisible by groups={self.groups}"
            )
        if not ks and self.groups != 1:
            raise ValueError(
                f"KernelGeometry: a linear layer (kernel_size=()) has groups=1, got {self.groups}"
            )
        out_folds = tuple(self.out_folds) or (self.t,)
        in_folds = tuple(self.in_folds) or (self.s,)
        if len(out_folds) != len(in_folds):
            raise ValueError(
                f"KernelGeometry: out_folds {out_folds} and in_folds {in_folds} differ in length"
            )
        if math.prod(out_folds) != self.t or math.prod(in_folds) != self.s:
            raise ValueError(
                f"KernelGeometry: folds {out_folds} x {in_folds} do not multiply to the per-group "
                f"channel counts T/g={self.t}, S/g={self.s}"
            )
        object.__setattr__(self, "out_folds", out_folds)
        object.__setattr__(self, "in_folds", in_folds)

    @classmethod
    def create(
        cls, out_channels: int, in_channels: int, kernel_size: Sequence[int] = (), groups: int = 1, m: int = 1
    ) -> KernelGeometry:
        """Geometry whose per-group channel counts are split into ``m`` balanced folds each."""
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(
                f"KernelGeometry: the number of channel folds m must be a positive int, got {m!r}"
            )
        if m > MAX_FOLDS:
            raise ValueError(f"KernelGeometry: at most {MAX_FOLDS} channel folds are supported, got m={m}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"KernelGeometry: in_channels={in_channels} and out_channels={out_channels} "
                f"must both be divisible by groups={groups}"
            )
        return cls(
            out_channels,
            in_channels,
            tuple(kernel_size),
            groups,
            balanced_factors(out_channels // groups, m),
            balanced_factors(in_channels // groups, m),
        )

    @property
    def t(self) -> int:
        """Output channels per group, ``T/g``."""
        return self.out_channels // self.groups

    @property
    def s(self) -> int:
        """Input channels per group, ``S/g``."""
        return self.in_channels // self.groups

    @property
    def m(self) -> int:
        """Number of channel folds."""
        return len(self.out_folds)

    @property
    def is_conv(self) -> bool:
        return bool(self.kernel_size)

    @property
    def spatial_size(self) -> int:
        """``kh * kw`` (1 for a linear layer)."""
        return math.prod(self.kernel_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch weight shape, ``(T, S/g, kh, kw)`` or ``(T, S)``."""
        return (self.out_channels, self.s, *self.kernel_size)

    @property
    def dense_params(self) -> int:
        """Number of weight parameters of the dense layer (bias excluded)."""
        return math.prod(self.weight_shape)

    def describe(self) -> str:
        kind = "x".join(map(str, self.kernel_size)) + " conv" if self.is_conv else "linear"
        grp = f", groups={self.groups}" if self.groups > 1 else ""
        return f"{self.in_channels}->{self.out_channels} {kind}{grp}"

    def letters(self) -> tuple[str, str, dict[str, int]]:
        """Input-fold letters, output-fold letters and the sizes of those and the spatial letters."""
        if self.m > MAX_FOLDS:
            raise ValueError(
                f"KernelGeometry: at most {MAX_FOLDS} channel folds are supported, got m={self.m}"
            )
        ins, outs = IN_LETTERS[: self.m], OUT_LETTERS[: self.m]
        sizes = dict(zip(ins, self.in_folds, strict=True)) | dict(zip(outs, self.out_folds, strict=True))
        if self.is_conv:
            sizes |= {"h": self.kernel_size[0], "w": self.kernel_size[1]}
        return ins, outs, sizes

    def kernel_tensor(self, kernel: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
        """Rearrange one group's kernel into a tensor with one axis per mode.

        ``kernel`` is ``(T/g, S/g, kh, kw)`` or ``(T/g, S/g)``; each mode is a string of letters (see
        :meth:`letters`: folds and ``h``/``w``), its axis the row-major merge of those letters. Letters
        absent from ``modes`` must have size 1 and are dropped.
        """
        ins, outs, sizes = self.letters()
        spatial = "hw" if self.is_conv else ""
        src = outs + ins + spatial
        dst = "".join(modes)
        dropped = set(src) - set(dst)
        if any(sizes[c] != 1 for c in dropped):  # pragma: no cover - a bug in a format
            raise RuntimeError(f"kernel_tensor: letters {sorted(dropped)} are dropped but not of size 1")
        full = kernel.reshape([sizes[c] for c in src])
        full = torch.einsum(f"{src}->{dst}", full) if src != dst else full
        return full.reshape([math.prod(sizes[c] for c in mode) for mode in modes])


@dataclass(frozen=True)
class Network:
    """A tensor network for one group's kernel.

    Attributes
    ----------
    factors : tuple of str
        The mode letters of each factor, in order (the group letter is *not* included).
    sizes : Mapping[str, int]
        The size of every letter.
    out_letters, in_letters : str
        Letters of the output / input channel folds (``m`` each, row-major).
    spatial : str
        ``"hw"`` for a convolution (each must appear in some factor), ``""`` for a linear layer.
    """

    factors: tuple[str, ...]
    sizes: Mapping[str, int]
    out_letters: str
    in_letters: str
    spatial: str

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.sizes[c] for c in f) for f in self.factors]

    def contracted(self) -> str:
        """Letters summed over when the kernel is reconstructed (the ranks)."""
        kept = set(self.out_letters + self.in_letters + self.spatial)
        return "".join(sorted({c for f in self.factors for c in f} - kept))


def as_rank_tuple(rank: int | Sequence[int], length: int, fmt: str) -> tuple[int, ...]:
    """Expand an int to ``length`` equal ranks; check a sequence's length and values."""
    if isinstance(rank, bool):
        raise TypeError(f"format {fmt!r}: rank must be an int or a tuple of ints, got {rank!r}")
    if isinstance(rank, int):
        ranks = (rank,) * length
    elif isinstance(rank, Sequence) and all(isinstance(r, int) and not isinstance(r, bool) for r in rank):
        ranks = tuple(rank)
    else:
        raise TypeError(f"format {fmt!r}: rank must be an int or a tuple of ints, got {rank!r}")
    if len(ranks) != length:
        raise ValueError(
            f"format {fmt!r}: expected {length} rank(s) for this layer, got {len(ranks)}: {ranks}"
        )
    if any(r < 1 for r in ranks):
        raise ValueError(f"format {fmt!r}: ranks must be >= 1, got {ranks}")
    return ranks


class Format(ABC):
    """A compression format (see the module docstring). Instances are stateless singletons."""

    #: the name listed in :data:`tnn.FORMATS`
    name: str = ""
    #: whether channels are folded (the paper's reshaped TNN formats)
    reshaped: bool = False
    #: default number of channel folds ``m``
    default_m: int = 1
    #: one-line description
    description: str = ""

    # ------------------------------------------------------------------ to be supplied by a format
    @abstractmethod
    def rank_length(self, geom: KernelGeometry) -> int:
        """Number of ranks of this format on ``geom``."""

    @abstractmethod
    def max_ranks(self, geom: KernelGeometry) -> tuple[int, ...]:
        """Largest useful rank for each rank position (beyond it the format only adds parameters)."""

    @abstractmethod
    def network(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> Network:
        """The tensor network of one group's kernel at ``ranks`` (already validated)."""

    @abstractmethod
    def _decompose(
        self, kernel: torch.Tensor, geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> list[torch.Tensor]:
        """Factors approximating one group's kernel ``(T/g, S/g, kh, kw)`` or ``(T, S)``."""

    # ------------------------------------------------------------------ derived
    def __repr__(self) -> str:
        return f"<format {self.name!r}: {self.description}>"

    def __reduce__(self) -> tuple:
        from tnn.formats import get_format  # the package imports this module: a top-level import cycles

        return (get_format, (self.name,))

    def geometry(
        self,
        out_channels: int,
        in_channels: int,
        kernel_size: Sequence[int] = (),
        groups: int = 1,
        m: int | None = None,
    ) -> KernelGeometry:
        """The :class:`KernelGeometry` of a layer in this format (``m`` defaults to :attr:`default_m`)."""
        if m is None:
            m = self.default_m
        if not self.reshaped and m != 1:
            raise ValueError(f"format {self.name!r} does not fold channels; m must be 1 (or None), got {m!r}")
        return KernelGeometry.create(out_channels, in_channels, tuple(kernel_size), groups, m)

    def check_ranks(self, geom: KernelGeometry, rank: int | Sequence[int]) -> tuple[int, ...]:
        """Validate ``rank`` (an int means the same rank everywhere, clipped to :meth:`max_ranks`).

        Raises
        ------
        ValueError
            If a tuple has the wrong length, a rank is < 1, or a rank exceeds :meth:`max_ranks`.
        """
        length = self.rank_length(geom)
        caps = self.max_ranks(geom)
        if isinstance(rank, int) and not isinstance(rank, bool):
            ranks = as_rank_tuple(rank, length, self.name)
            return self.repair_ranks(geom, tuple(min(r, c) for r, c in zip(ranks, caps, strict=True)))
        ranks = as_rank_tuple(rank, length, self.name)
        if any(r > c for r, c in zip(ranks, caps, strict=True)):
            raise ValueError(
                f"format {self.name!r} on a {geom.describe()}: ranks {ranks} exceed the maximal "
                f"useful ranks {caps}"
            )
        fixed = self.repair_ranks(geom, ranks)
        if fixed != ranks:
            raise ValueError(
                f"format {self.name!r} on a {geom.describe()}: ranks {ranks} have redundant bonds (a rank "
                f"larger than its neighbour times the mode size between them); the largest valid ranks "
                f"below are {fixed}"
            )
        return ranks

    def repair_ranks(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> tuple[int, ...]:
        """The largest ranks ``<= ranks`` without redundant bonds (a format with linked ranks overrides this;
        the default keeps ``ranks``)."""
        return ranks

    def factor_shapes(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Shapes of the layer's factor tensors (a leading ``g`` axis when ``groups > 1``)."""
        shapes = self.network(geom, ranks).shapes()
        return [(geom.groups, *s) for s in shapes] if geom.groups > 1 else shapes

    def param_count(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> int:
        """Exact number of weight parameters: the sum of the factor sizes."""
        return sum(math.prod(s) for s in self.factor_shapes(geom, ranks))

    def min_params(self, geom: KernelGeometry) -> int:
        """Parameters at the smallest ranks (all ones)."""
        return self.param_count(geom, (1,) * self.rank_length(geom))

    def ranks_for_budget(self, geom: KernelGeometry, max_params: int) -> tuple[int, ...]:
        """Largest ranks whose :meth:`param_count` is at most ``max_params``.

        A binary search over one uniform rank (clipped to :meth:`max_ranks`) is followed by a greedy pass
        that raises single ranks by one, in order, while the budget allows.

        Raises
        ------
        ValueError
            If even the smallest ranks need more than ``max_params`` parameters.
        """
        length = self.rank_length(geom)
        caps = self.max_ranks(geom)
        ones = (1,) * length
        need = self.param_count(geom, ones)
        if need > max_params:
            raise ValueError(
                f"format {self.name!r} on a {geom.describe()}: even the smallest ranks {ones} need "
                f"{need} parameters, more than the budget of {max_params}; the smallest possible "
                f"rate is {need / geom.dense_params:.4g}"
            )

        def clip(r: int) -> tuple[int, ...]:
            return self.repair_ranks(geom, tuple(min(r, c) for c in caps))

        lo, hi = 1, max(caps)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.param_count(geom, clip(mid)) <= max_params:
                lo = mid
            else:
                hi = mid - 1
        ranks = list(clip(lo))
        changed = True
        while changed:
            changed = False
            for k in range(length):
                if ranks[k] < caps[k]:
                    trial = ranks.copy()
                    trial[k] += 1
                    if (
                        self.repair_ranks(geom, tuple(trial)) == tuple(trial)
                        and self.param_count(geom, tuple(trial)) <= max_params
                    ):
                        ranks = trial
                        changed = True
        return tuple(ranks)

    def ranks_for_rate(self, geom: KernelGeometry, rate: float) -> tuple[int, ...]:
        """Largest ranks keeping at most ``rate`` of the dense layer's weight parameters.

        Raises
        ------
        ValueError
            If ``rate`` is not a finite number in (0, 1], or cannot be met (the message gives the minimum).
        """
        rate = check_rate(rate)
        budget = math.floor(rate * geom.dense_params + 1e-9)
        need = self.min_params(geom)
        if need > budget:
            raise ValueError(
                f"format {self.name!r} cannot compress a {geom.describe()} to rate {rate:g}: even "
                f"the smallest ranks need {need} of the dense {geom.dense_params} parameters, so "
                f"the smallest possible rate is {need / geom.dense_params:.4g}"
            )
        return self.ranks_for_budget(geom, budget)

    def spec(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> str:
        """The layer's ``conv_einsum`` string: input, then every factor, then the output.

        The input is ``b [g] S_0..S_{m-1} h w`` and the output ``b [g] T_0..T_{m-1} h w`` (no ``h w`` for a
        linear layer); ``|hw`` marks the convolved indices.
        """
        net = self.network(geom, ranks)
        g = "g" if geom.groups > 1 else ""
        operands = ["b" + g + net.in_letters + net.spatial] + [g + f for f in net.factors]
        out = "b" + g + net.out_letters + net.spatial
        return ",".join(operands) + "->" + out + ("|" + net.spatial if net.spatial else "")

    def kernel_equation(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> str:
        """The ``torch.einsum`` equation reconstructing ``[g,] T_0.., S_0.., h, w`` from the factors."""
        net = self.network(geom, ranks)
        g = "g" if geom.groups > 1 else ""
        return (
            ",".join(g + f for f in net.factors) + "->" + g + net.out_letters + net.in_letters + net.spatial
        )

    def reconstruct(
        self, factors: Sequence[torch.Tensor], geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> torch.Tensor:
        """The dense weight ``(T, S/g, kh, kw)`` (or ``(T, S)``) from the factors, via ``torch.einsum``."""
        expected = self.factor_shapes(geom, ranks)
        got = [tuple(f.shape) for f in factors]
        if got != expected:
            raise ValueError(f"format {self.name!r}: factor shapes {got} do not match {expected}")
        full = torch.einsum(self.kernel_equation(geom, ranks), *factors)
        return full.reshape(geom.weight_shape)

    def decompose(
        self, weight: torch.Tensor, geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> list[torch.Tensor]:
        """Factors approximating a dense weight of shape :attr:`KernelGeometry.weight_shape`."""
        if tuple(weight.shape) != geom.weight_shape:
            raise ValueError(
                f"format {self.name!r}: weight shape {tuple(weight.shape)} does not match the layer's "
                f"{geom.weight_shape}"
            )
        kernel = weight.detach().reshape(geom.groups, geom.t, geom.s, *geom.kernel_size)
        per_group = [self._decompose(kernel[i], geom, ranks) for i in range(geom.groups)]
        if geom.groups > 1:
            factors = [torch.stack(fs) for fs in zip(*per_group, strict=True)]
        else:
            factors = per_group[0]
        expected = self.factor_shapes(geom, ranks)
        got = [tuple(f.shape) for f in factors]
        if got != expected:  # pragma: no cover - a bug in a format
            raise RuntimeError(
                f"format {self.name!r}: decomposition produced shapes {got}, expected {expected}"
            )
        return [f.contiguous() for f in factors]

    def random_init(
        self,
        geom: KernelGeometry,
        ranks: tuple[int, ...],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> list[torch.Tensor]:
        """Random factors whose reconstructed kernel has the variance of PyTorch's default init.

        ``nn.Conv2d`` / ``nn.Linear`` draw ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (variance ``1/(3 fan_in)``,
        ``fan_in = S/g * kh * kw``). A kernel entry is a sum over the ``R`` combinations of the contracted
        (rank) letters of a product of ``F`` independent zero-mean factor entries, so drawing every factor
        from ``N(0, sigma^2)`` with ``sigma^(2F) = 1 / (3 fan_in R)`` gives exactly that variance.
        """
        net = self.network(geom, ranks)
        fan_in = geom.s * geom.spatial_size
        r = math.prod(net.sizes[c] for c in net.contracted())
        sigma = (1.0 / (3.0 * fan_in * r)) ** (1.0 / (2 * len(net.factors)))
        shapes = self.factor_shapes(geom, ranks)
        return [torch.randn(s, generator=generator, dtype=dtype, device=device) * sigma for s in shapes]


def check_rate(rate: float) -> float:
    """Validate a compression rate: a finite real number in ``(0, 1]``.

    This is the one check of the rule; layers, formats, :func:`tnn.compress`, the experiment runner and
    the command line all call it (some of them re-word the message for their own arguments).

    Parameters
    ----------
    rate : float
        The kept fraction of a layer's parameters. Any real number (``int``, ``float``, NumPy scalar)
        is accepted; ``bool`` and strings are not.

    Returns
    -------
    float
        ``rate`` as a Python float.

    Raises
    ------
    ValueError
        If ``rate`` is not a real number (``True``, ``"0.1"``, ``None``), is NaN or infinite, or is
        outside ``(0, 1]``; the message names the value.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError(f"rate must be a finite float in (0, 1], got {rate!r}")
    value = float(rate)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"rate must be a finite float in (0, 1], got {value!r}")
    return value
