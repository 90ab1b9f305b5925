"""The three network families every format is an instance of.

A format chooses *modes* — strings of letters (channel folds, ``h``, ``w``) whose row-major merge is
one axis of the kernel tensor that gets decomposed — and one of the families below:

- :class:`CPFormat`: one rank ``r``; factor ``k`` is ``[r, *mode_k]``. Modes of size 1 are left out of the
  CP decomposition and their factor carries the CP weights; otherwise the weights are spread evenly.
- :class:`TuckerFormat`: one rank per *factored* mode; factor ``k`` is ``[*mode_k, r_k]``; the core is
  ``[..]`` with each factored mode replaced by its rank letter (the other modes are kept as they are).
- :class:`ChainFormat`: a Tensor Train (``ring=False``, ``N-1`` ranks) or Tensor Ring (``ring=True``,
  ``N`` ranks) over ``N`` modes; core ``k`` is ``[rho_k, *mode_k, rho_{k+1}]`` without the boundary ranks
  of a train. *Trailing* letters (size-1 spatial modes of a 1x1 kernel) are appended to the last core.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import torch

from tnn import decompositions
from tnn.formats.base import RANK_LETTERS, Format, KernelGeometry, Network

__all__ = ["Modes", "CPFormat", "TuckerFormat", "ChainFormat"]

#: ALS sweeps refining TR-SVD in the ``tr`` / ``rtr`` decompositions
TR_ALS_SWEEPS = 10
#: Ridge weight of those sweeps (relative to the Gram diagonal). Plain ALS drives the ring's cores to large,
#: cancelling values (product of core norms ~200x the kernel norm for ``rtr`` on ResNet-32) that Adam then
#: cannot train; the ridge keeps them at the kernel's scale for the same error (docs/results-history.md).
TR_ALS_RIDGE = 0.1
#: ALS sweeps of the CP decompositions (``cp``, ``rcp``)
CP_ALS_SWEEPS = 100
#: Ridge weight of those sweeps (relative to the Gram diagonal, scaled by the current relative error so
#: that exact low-rank kernels are still recovered exactly). With many components plain CP-ALS gives large,
#: cancelling components; on ResNet-32 at rate 0.4 the ``cp`` layers then start almost exact (95% validation
#: accuracy) and Adam wrecks them (53%); with a ridge they train to ~99% (docs/results-history.md).
CP_ALS_RIDGE = 0.02


@dataclass(frozen=True)
class Modes:
    """The modes of a format on a geometry.

    Attributes
    ----------
    modes : tuple of str
        Letters of each mode (axis) of the decomposed kernel tensor.
    sizes : dict
        Size of every fold / spatial letter.
    factored : tuple of bool
        (Tucker only) which modes get a factor matrix.
    trailing : str
        Size-1 letters carried by the last factor instead of a mode of their own.
    """

    modes: tuple[str, ...]
    sizes: dict[str, int]
    factored: tuple[bool, ...] = ()
    trailing: str = ""

    def dims(self) -> list[int]:
        return [math.prod(self.sizes[c] for c in mode) for mode in self.modes]


def _network(geom: KernelGeometry, factors: list[str], sizes: dict[str, int]) -> Network:
    ins, outs, _ = geom.letters()
    return Network(tuple(factors), sizes, outs, ins, "hw" if geom.is_conv else "")


def _balanced_svd(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated SVD ``matrix ~ left @ right`` with ``sqrt(sigma)`` on both sides."""
    u, sv, vh = torch.linalg.svd(matrix, full_matrices=False)
    k = min(rank, sv.numel())
    root = sv[:k].sqrt()
    left, right = u[:, :k] * root, root[:, None] * vh[:k]
    if k < rank:  # pad with zero columns (the requested rank exceeds the matrix rank)
        left = torch.cat([left, left.new_zeros(left.shape[0], rank - k)], 1)
        right = torch.cat([right, right.new_zeros(rank - k, right.shape[1])], 0)
    return left, right


class _ModesFormat(Format):
    @abstractmethod
    def modes(self, geom: KernelGeometry) -> Modes:
        """The modes of this format on ``geom``."""


class CPFormat(_ModesFormat):
    """CP (canonical polyadic) over the modes: ``K = sum_r prod_k F_k[r, mode_k]``."""

    def rank_length(self, geom: KernelGeometry) -> int:
        return 1

    def max_ranks(self, geom: KernelGeometry) -> tuple[int, ...]:
        dims = [d for d in self.modes(geom).dims() if d > 1]
        if len(dims) <= 1:
            return (1,)
        return (math.prod(dims) // max(dims),)

    def network(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> Network:
        md = self.modes(geom)
        r = RANK_LETTERS[0]
        factors = [r + mode for mode in md.modes]
        factors[-1] += md.trailing
        return _network(geom, factors, md.sizes | {r: ranks[0]})

    def _decompose(
        self, kernel: torch.Tensor, geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> list[torch.Tensor]:
        md = self.modes(geom)
        shapes = self.network(geom, ranks).shapes()
        rank = ranks[0]
        dims = md.dims()
        big = [k for k, d in enumerate(dims) if d > 1]
        tensor = geom.kernel_tensor(kernel, md.modes).reshape([dims[k] for k in big])
        dtype = kernel.dtype
        if len(big) == 0:
            mats = []
            weights = tensor.reshape(1)
        elif len(big) == 1:
            mats = [tensor.reshape(-1, 1)]
            weights = torch.ones(1, dtype=dtype, device=kernel.device)
        elif len(big) == 2:
            left, right = _balanced_svd(tensor, rank)
            mats, weights = [left, right.T], torch.ones(rank, dtype=dtype, device=kernel.device)
        else:
            weights, mats, _ = decompositions.cp(
                tensor, rank, n_iter_max=CP_ALS_SWEEPS, tol=1e-6, random_state=0, regularization=CP_ALS_RIDGE
            )
            mats = list(mats)
        # spread the weights: all of them onto size-1 modes if any, else evenly over the factors
        ones = [k for k, d in enumerate(dims) if d == 1]
        factors: list[torch.Tensor] = [torch.empty(0)] * len(dims)
        if ones:
            for j, k in enumerate(big):
                factors[k] = mats[j].T
            for j, k in enumerate(ones):
                factors[k] = (weights if j == 0 else torch.ones_like(weights))[:, None]
        else:
            sign = torch.sign(weights)
            sign[sign == 0] = 1
            root = weights.abs() ** (1.0 / len(big))
            for j, k in enumerate(big):
                factors[k] = (mats[j] * root).T * (sign[:, None] if j == 0 else 1)
        return [f.reshape(s).to(dtype) for f, s in zip(factors, shapes, strict=True)]


class TuckerFormat(_ModesFormat):
    """(Partial) Tucker: one factor matrix ``[*mode_k, r_k]`` per factored mode and a core."""

    def rank_length(self, geom: KernelGeometry) -> int:
        return sum(self.modes(geom).factored)

    def max_ranks(self, geom: KernelGeometry) -> tuple[int, ...]:
        md = self.modes(geom)
        dims = md.dims()
        total = math.prod(dims)
        return tuple(min(d, total // d) for d, f in zip(dims, md.factored, strict=True) if f)

    def repair_ranks(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> tuple[int, ...]:
        """Lower ranks until none exceeds the product of the others times the untouched mode sizes (the
        rank of the core's unfolding along that mode)."""
        md = self.modes(geom)
        kept = math.prod(d for d, f in zip(md.dims(), md.factored, strict=True) if not f)
        full = list(ranks)
        changed = True
        while changed:
            changed = False
            for k in range(len(full)):
                bound = kept * math.prod(full[:k] + full[k + 1 :])
                if full[k] > bound:
                    full[k], changed = bound, True
        return tuple(full)

    def network(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> Network:
        md = self.modes(geom)
        sizes = dict(md.sizes)
        factors, core = [], ""
        it = iter(zip(RANK_LETTERS, ranks, strict=False))
        for mode, factored in zip(md.modes, md.factored, strict=True):
            if factored:
                letter, r = next(it)
                sizes[letter] = r
                factors.append(mode + letter)
                core += letter
            else:
                core += mode
        return _network(geom, [*factors, core + md.trailing], sizes)

    def _decompose(
        self, kernel: torch.Tensor, geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> list[torch.Tensor]:
        md = self.modes(geom)
        shapes = self.network(geom, ranks).shapes()
        tensor = geom.kernel_tensor(kernel, md.modes)
        modes = [k for k, f in enumerate(md.factored) if f]
        core, mats, _ = decompositions.partial_tucker(tensor, list(ranks), modes=modes)
        return [t.reshape(s) for t, s in zip([*mats, core], shapes, strict=True)]


class ChainFormat(_ModesFormat):
    """Tensor Train (``ring = False``) or Tensor Ring (``ring = True``) over the modes."""

    ring: bool = False

    def _n_modes(self, geom: KernelGeometry) -> int:
        n = len(self.modes(geom).modes)
        if n < 2:
            raise ValueError(
                f"format {self.name!r} needs at least 2 modes on a {geom.describe()}, got {n}; "
                "use more channel folds (m >= 2)"
            )
        return n

    def rank_length(self, geom: KernelGeometry) -> int:
        n = self._n_modes(geom)
        return n if self.ring else n - 1

    def max_ranks(self, geom: KernelGeometry) -> tuple[int, ...]:
        self._n_modes(geom)
        dims = self.modes(geom).dims()
        if not self.ring:  # bond k sits between modes k and k+1
            return tuple(
                min(math.prod(dims[: k + 1]), math.prod(dims[k + 1 :])) for k in range(len(dims) - 1)
            )
        # ring bond k sits before mode k; bond 0 closes the ring between the last and the first mode
        caps = [min(dims[0], dims[-1])]
        caps += [min(math.prod(dims[:k]), math.prod(dims[k:])) for k in range(1, len(dims))]
        return tuple(caps)

    def repair_ranks(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> tuple[int, ...]:
        """Lower ranks until no bond is redundant: for the bonds ``p, q`` on both sides of a mode of size
        ``I``, ``q <= p I`` and ``p <= I q`` (open ends of a train count as bonds of size 1)."""
        dims = self.modes(geom).dims()
        n = len(dims)
        full = list(ranks) if self.ring else [1, *ranks, 1]
        changed = True
        while changed:
            changed = False
            for k in range(n):
                left, right = k, ((k + 1) % n if self.ring else k + 1)
                if full[right] > full[left] * dims[k]:
                    full[right], changed = full[left] * dims[k], True
                if full[left] > full[right] * dims[k]:
                    full[left], changed = full[right] * dims[k], True
        return tuple(full) if self.ring else tuple(full[1:-1])

    def network(self, geom: KernelGeometry, ranks: tuple[int, ...]) -> Network:
        md = self.modes(geom)
        n = len(md.modes)
        sizes = dict(md.sizes)
        letters = RANK_LETTERS[: len(ranks)]
        sizes |= dict(zip(letters, ranks, strict=True))
        factors = []
        for k, mode in enumerate(md.modes):
            if self.ring:
                factors.append(letters[k] + mode + letters[(k + 1) % n])
            else:
                factors.append((letters[k - 1] if k > 0 else "") + mode + (letters[k] if k < n - 1 else ""))
        factors[-1] += md.trailing
        return _network(geom, factors, sizes)

    def _decompose(
        self, kernel: torch.Tensor, geom: KernelGeometry, ranks: tuple[int, ...]
    ) -> list[torch.Tensor]:
        md = self.modes(geom)
        shapes = self.network(geom, ranks).shapes()
        tensor = geom.kernel_tensor(kernel, md.modes)
        if not self.ring and len(md.modes) == 2:
            cores = list(_balanced_svd(tensor, ranks[0]))
        elif self.ring:
            cores, _ = decompositions.tensor_ring(
                tensor, list(ranks), n_iter_max=TR_ALS_SWEEPS, random_state=0, regularization=TR_ALS_RIDGE
            )
        else:
            cores, _ = decompositions.tensor_train(tensor, list(ranks))
        return [c.reshape(s) for c, s in zip(cores, shapes, strict=True)]
