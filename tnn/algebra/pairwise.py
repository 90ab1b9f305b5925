"""Evaluation of one pairwise step of a ``conv_einsum`` plan, and single-operand preparation.

Every function here is one (or a few) torch primitive(s) on whole tensors: ``torch.einsum`` on two
operands for contractions, one ``F.conv1d/2d/3d`` call (batch indices folded into ``groups``) for
steps with up to three shared convolution indices, and ``Tensor.unfold`` windows + ``torch.einsum``
for anything else (more than three shared convolution indices, or a step where each operand is the
signal of a different index).

Conventions per shared convolution index ``c`` of a step:

* ``"valid"`` (signal x filter): PyTorch cross-correlation without padding (beyond the signal's pending
  symmetric padding), with the index's dilation, and its stride if this step brings in the last filter;
* ``"full"`` (filter x filter): the full *true* convolution ``(f * g)[j] = sum_i f[i] g[j - i]`` of two
  filters, size ``k_f + k_g - 1`` (no dilation, no stride).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F

__all__ = ["ConvDim", "pad_dim", "stride_dim", "conv_step", "unfold_step"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@dataclass(frozen=True)
class ConvDim:
    """How one shared convolution index is treated by a step.

    Attributes
    ----------
    name : str
        The index letter.
    mode : str
        ``"valid"`` (one operand is the signal) or ``"full"`` (both are filters).
    signal : int
        0 if the first operand of the step is the signal, 1 if the second, -1 for ``"full"``.
    pad : int
        Symmetric zero padding still pending on the signal (``"valid"`` only).
    dilation, stride : int
    """

    name: str
    mode: str
    signal: int
    pad: int = 0
    dilation: int = 1
    stride: int = 1


def pad_dim(x: torch.Tensor, dim: int, left: int, right: int, circular: bool) -> torch.Tensor:
    """Pad ``x`` along ``dim`` by ``left``/``right`` zeros, or by wrapping around when ``circular``."""
    if left == 0 and right == 0:
        return x
    if circular:
        n = x.shape[dim]
        idx = torch.arange(-left, n + right, device=x.device) % n
        return x.index_select(dim, idx)
    return F.pad(x, [0, 0] * (x.ndim - 1 - dim) + [left, right])


def stride_dim(x: torch.Tensor, dim: int, stride: int) -> torch.Tensor:
    """Every ``stride``-th entry of ``x`` along ``dim``, starting with the first."""
    if stride == 1:
        return x
    return x[(slice(None),) * dim + (slice(None, None, stride),)]


def conv_step(
    x_idx: str,
    w_idx: str,
    dims: tuple[ConvDim, ...],
    out_idx: str,
    sizes: dict[str, int],
    extra: frozenset[str] = frozenset(),
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str]:
    """Compile a step evaluated by one ``F.conv{1,2,3}d`` call; ``x`` is the input, ``w`` the weight.

    ``x`` must be the signal on every ``"valid"`` dim. Layout: input ``(N, G*S, *C)``, weight
    ``(G*T, S, *C)``, ``groups=G``, output ``(N, G*T, *C')`` where ``N`` are the indices only in ``x``,
    ``T`` those only in ``w``, ``G`` the shared non-convolution indices that are kept, ``S`` those
    summed, ``C`` the shared convolution indices (in ``x`` order).

    Parameters
    ----------
    x_idx, w_idx : str
        Index strings of the two operands.
    dims : tuple of ConvDim
        The spatial dimensions of the call, in the order they appear in ``x_idx``: the shared
        convolution indices and the ``extra`` ones.
    out_idx : str
        Indices of the result (any order; used to decide kept vs summed).
    sizes : dict
        Sizes of the non-convolution indices (sizes of ``N`` and ``T``, which may hold
        convolution indices, are read from the operands).
    extra : frozenset of str
        Indices only in ``x`` that are carried as spatial dimensions with a kernel of size 1 (so that
        ``x`` needs no transposition), e.g. ``w`` in ``bahw,ahc->bchw|h``.

    Returns
    -------
    fn : callable ``(x, w) -> result``
    result_idx : str
        Index string of the result: ``N + G + T + C`` (``C`` including ``extra``).
    """
    conv_names = [d.name for d in dims]
    shared = set(x_idx) & set(w_idx)
    n_idx = [i for i in x_idx if i not in shared and i not in extra]
    g_idx = [i for i in x_idx if i in shared and i not in conv_names and i in out_idx]
    s_idx = [i for i in x_idx if i in shared and i not in conv_names and i not in out_idx]
    t_idx = [i for i in w_idx if i not in shared]
    w_conv = [i for i in conv_names if i not in extra]
    x_perm = [x_idx.index(i) for i in n_idx + g_idx + s_idx + conv_names]
    w_perm = [w_idx.index(i) for i in g_idx + t_idx + s_idx + w_conv]
    x_identity = x_perm == list(range(len(x_perm)))
    w_identity = w_perm == list(range(len(w_perm)))
    nx = len(n_idx)
    g = prod(sizes[i] for i in g_idx)
    s = prod(sizes[i] for i in s_idx)
    g_sizes = [sizes[i] for i in g_idx]
    ng, nt = len(g_idx), len(t_idx)
    is_extra = [d.name in extra for d in dims]
    any_extra = any(is_extra)
    flip = [2 + k for k, d in enumerate(dims) if d.mode == "full"]
    conv_fn = _CONV[len(dims)]
    stride = tuple(d.stride for d in dims)
    dilation = tuple(d.dilation for d in dims)
    full = [d.mode == "full" for d in dims]
    static_padding = None if flip else tuple(d.pad for d in dims)
    pads = [d.pad for d in dims]
    n_sp, n_wc = len(dims), len(w_conv)
    x_perm_or_none = None if x_identity else x_perm
    w_perm_or_none = None if w_identity else w_perm
    gs = g * s

    def fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x_perm_or_none is not None:
            x = x.permute(x_perm_or_none)
        if w_perm_or_none is not None:
            w = w.permute(w_perm_or_none)
        xs, ws = x.shape, w.shape
        batch = xs[:nx]
        t_sizes = ws[ng : ng + nt]
        t = prod(t_sizes)
        spatial_x = xs[len(xs) - n_sp :]
        if any_extra:
            it = iter(ws[len(ws) - n_wc :])
            spatial_w = tuple(1 if e else next(it) for e in is_extra)
        else:
            spatial_w = ws[len(ws) - n_wc :]
        x = x.reshape(prod(batch), gs, *spatial_x)
        w = w.reshape(g * t, s, *spatial_w)
        if static_padding is None:
            w = w.flip(flip)
            padding = tuple(k - 1 if f else p for k, f, p in zip(spatial_w, full, pads, strict=True))
        else:
            padding = static_padding
        if x.numel() == 0 or w.numel() == 0:
            out_sp = [
                (n + 2 * p - dl * (k - 1) - 1) // st + 1
                for n, k, p, dl, st in zip(spatial_x, spatial_w, padding, dilation, stride, strict=True)
            ]
            out = x.new_zeros(x.shape[0], g * t, *out_sp) + (x.sum() + w.sum()) * 0
        else:
            out = conv_fn(x, w, None, stride, padding, dilation, g)
        return out.reshape(*batch, *g_sizes, *t_sizes, *out.shape[2:])

    return fn, "".join(n_idx + g_idx + t_idx + conv_names)


def unfold_step(
    a_idx: str,
    b_idx: str,
    dims: tuple[ConvDim, ...],
    out_idx: str,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Compile a general step with any number of shared convolution indices and mixed roles.

    The signal of each ``"valid"`` dim is cut into (dilated, strided) windows with ``Tensor.unfold``;
    for a ``"full"`` dim the first operand is zero padded by ``k - 1`` on both sides, the second is
    flipped, and windows of size ``k`` are cut from the first. One ``torch.einsum`` then sums
    products over the window indices and the contracted indices. The result has indices ``out_idx``.
    """
    letters = iter(string.ascii_letters)
    local = {i: next(letters) for i in dict.fromkeys(a_idx + b_idx)}
    window = {}
    for d in dims:
        try:
            window[d.name] = next(letters)
        except StopIteration:
            raise ValueError(
                "too many distinct indices in one step (more than 52 with convolution windows)"
            ) from None
    a_lbl = [local[i] for i in a_idx]
    b_lbl = [local[i] for i in b_idx]
    plan = []
    for d in dims:
        if d.mode == "full" or d.signal == 0:
            plan.append((0, a_idx.index(d.name), b_idx.index(d.name), d))
            b_lbl[b_idx.index(d.name)] = window[d.name]
        else:
            plan.append((1, b_idx.index(d.name), a_idx.index(d.name), d))
            a_lbl[a_idx.index(d.name)] = window[d.name]
    a_extra = [window[d.name] for src, _, _, d in plan if src == 0]
    b_extra = [window[d.name] for src, _, _, d in plan if src == 1]
    eq = "".join(a_lbl + a_extra) + "," + "".join(b_lbl + b_extra) + "->" + "".join(local[i] for i in out_idx)

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ops = [a, b]
        for src, sdim, fdim, d in plan:
            sig, filt = ops[src], ops[1 - src]
            k = filt.shape[fdim]
            if d.mode == "full":
                sig = pad_dim(sig, sdim, k - 1, k - 1, False)
                filt = filt.flip(fdim)
                sig = sig.unfold(sdim, k, 1)
            else:
                sig = pad_dim(sig, sdim, d.pad, d.pad, False)
                sig = sig.unfold(sdim, d.dilation * (k - 1) + 1, d.stride)
                if d.dilation > 1:
                    sig = sig[..., :: d.dilation]
            ops[src], ops[1 - src] = sig, filt
        return torch.einsum(eq, ops[0], ops[1])

    return fn


#: smallest trailing block ``Q`` for which :func:`matmul_step` uses ``torch.bmm`` (measured on one CPU
#: thread: a (P, 64, Q) x (64, 64) product at Q = 4 / 9 took 7x / 5.6x longer by ``bmm`` than by
#: ``torch.einsum``, at Q >= 16 ``bmm`` was as fast or faster; see docs/benchmarks.md, "Algebra")
BMM_MIN_COLUMNS = 16


def matmul_step(
    x_idx: str, w_idx: str, out_idx: frozenset[str] | set[str], sizes: dict[str, int] | None = None
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], str] | None:
    """Compile a contraction ``x (P, S, Q) x w (T, S) -> (P, T, Q)`` as one ``torch.bmm`` / ``torch.mm``.

    Applies when the summed indices ``S`` form one contiguous block of ``x``, no shared index is
    kept, and every other index is kept: ``x`` is then used in place (no transposition, like a 1x1
    convolution) and the result is contiguous. Returns ``None`` when it does not apply. When the
    trailing block ``Q`` holds fewer than :data:`BMM_MIN_COLUMNS` elements (a 3x3 kernel's ``hw``),
    the many skinny products of a ``bmm`` are several times slower than ``torch.einsum``'s one
    transposed product: with the sizes of ``Q``'s indices in ``sizes`` (convolution indices change size
    along a path and are not listed there), the step then does not apply (the caller's
    own ``torch.einsum`` can write its result in any order, e.g. the final output's, sparing a permute);
    without them ``fn`` calls ``torch.einsum`` itself for such inputs.

    Returns
    -------
    fn : callable ``(x, w) -> result``
    result_idx : str
        ``P + T + Q``.
    """
    shared = set(x_idx) & set(w_idx)
    summed = [i for i in x_idx if i in shared]
    if not summed or any(i in out_idx for i in shared):
        return None
    if any(i not in out_idx for i in x_idx + w_idx if i not in shared):
        return None
    first = x_idx.index(summed[0])
    if x_idx[first : first + len(summed)] != "".join(summed):
        return None
    p_idx, q_idx = x_idx[:first], x_idx[first + len(summed) :]
    if q_idx and sizes is not None and all(i in sizes for i in q_idx):
        if prod(sizes[i] for i in q_idx) < BMM_MIN_COLUMNS:
            return None
    t_idx = "".join(i for i in w_idx if i not in shared)
    w_perm = [w_idx.index(i) for i in t_idx + "".join(summed)]
    w_identity = w_perm == list(range(len(w_perm)))
    n_p, n_s = len(p_idx), len(summed)
    equation = f"{x_idx},{w_idx}->{p_idx + t_idx + q_idx}"

    def fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if q_idx and prod(x.shape[n_p + n_s :]) < BMM_MIN_COLUMNS:
            return torch.einsum(equation, x, w)
        if not w_identity:
            w = w.permute(w_perm)
        xs = x.shape
        p_sizes, s_sizes, q_sizes = xs[:n_p], xs[n_p : n_p + n_s], xs[n_p + n_s :]
        t_sizes = w.shape[: len(w.shape) - n_s]
        s, t = prod(s_sizes), prod(t_sizes)
        wm = w.reshape(t, s)
        if q_sizes:
            # bmm against the broadcast weight: torch.matmul would fold (P, S, Q) into (P*Q, S) by
            # transposed copies of x and of the result whenever an operand requires grad
            xm = x.reshape(prod(p_sizes), s, prod(q_sizes))
            out = torch.bmm(wm.expand(xm.shape[0], t, s), xm)
        else:
            out = torch.matmul(x.reshape(prod(p_sizes), s), wm.t())
        return out.reshape((*p_sizes, *t_sizes, *q_sizes))

    return fn, p_idx + t_idx + q_idx
