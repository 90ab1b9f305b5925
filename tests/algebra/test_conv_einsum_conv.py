"""Convolution semantics: several filters on one index, many convolution indices, mixed roles, dtypes."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tnn.algebra import conv_einsum, conv_einsum_path

DT = torch.float64


def _rand(*shape: int, dtype: torch.dtype = DT) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def full_convolve(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """True (flipped) full convolution of two 1-d tensors, by its definition."""
    out = torch.zeros(f.numel() + g.numel() - 1, dtype=f.dtype)
    for i in range(f.numel()):
        out[i : i + g.numel()] += f[i] * g
    return out


def correlate(x: torch.Tensor, g: torch.Tensor, left: int, right: int, stride: int, dilation: int,
              circular: bool) -> torch.Tensor:
    """PyTorch-style cross-correlation of 1-d ``x`` with ``g``, by its definition."""
    n = x.numel()
    idx = torch.arange(-left, n + right)
    xp = x[idx % n] if circular else torch.cat([x.new_zeros(left), x, x.new_zeros(right)])
    span = dilation * (g.numel() - 1)
    outs = [
        (xp[u : u + span + 1 : dilation] * g).sum() for u in range(0, xp.numel() - span, stride)
    ]
    return torch.stack(outs)


PATHS_4 = [
    [(0, 1), (0, 1), (0, 1)],
    [(1, 2), (0, 1), (0, 1)],
    [(2, 3), (0, 2), (0, 1)],
    [(1, 3), (1, 2), (0, 1)],
    [(0, 3), (0, 1), (0, 1)],
    "optimal",
    "greedy",
    "naive",
]


@pytest.mark.parametrize(
    "padding,stride,dilation,circular",
    [(0, 1, 1, False), ("full", 1, 1, False), ("same", 1, 2, False), (((1, 3),), 2, 1, False),
     (((2, 1),), 1, 1, True), ("full", 3, 2, True), (5, 1, 1, False)],
)
def test_several_filters_on_one_index_are_order_independent(padding, stride, dilation, circular):
    x, f1, f2, f3 = _rand(9), _rand(3), _rand(4), _rand(2)
    g = full_convolve(full_convolve(f1, f2), f3)
    k = g.numel()
    span = dilation * (k - 1)
    if padding == "full":
        left = right = span
    elif padding == "same":
        left, right = span // 2, span - span // 2
    elif isinstance(padding, int):
        left = right = padding
    else:
        left, right = padding[0]
    ref = correlate(x, g, left, right, stride, dilation, circular)
    for path in PATHS_4:
        out = conv_einsum("x,x,x,x->x|x", x, f1, f2, f3, optimize=path, padding=padding, stride=stride,
                          dilation=dilation, circular=circular)
        torch.testing.assert_close(out, ref, msg=f"path {path}")


def test_full_padding_is_the_algebraic_convolution():
    x, f = _rand(7), _rand(3)
    out = conv_einsum("x,x->x|x", x, f.flip(0), padding="full")
    torch.testing.assert_close(out, full_convolve(x, f))


def test_filters_with_batch_channels_reference_full_convolve_first():
    """Two 2-d filters with channel indices, then F.conv2d with the combined kernel."""
    x = _rand(2, 3, 8, 7)
    f1, f2 = _rand(3, 4, 2, 3), _rand(4, 5, 3, 2)  # s r h w, r t h w
    combined = torch.zeros(5, 3, 4, 4, dtype=DT)
    for i, j in itertools.product(range(2), range(3)):
        # true convolution of f1 and f2 in both spatial dims, contracted over r
        combined[:, :, i : i + 3, j : j + 2] += torch.einsum("sr,rthw->tshw", f1[:, :, i, j], f2)
    ref = F.conv2d(x, combined, padding=1)
    for optimize in ("optimal", "greedy", "naive", [(1, 2), (0, 1)]):
        out = conv_einsum("bshw,srhw,rthw->bthw|hw", x, f1, f2, padding=1, optimize=optimize)
        torch.testing.assert_close(out, ref)


def test_index_without_filter_only_pads_and_strides():
    x = _rand(2, 7)
    out = conv_einsum("bh->bh|h", x, padding=((2, 1),), stride=2)
    torch.testing.assert_close(out, F.pad(x, (2, 1))[:, ::2])
    out = conv_einsum("bh->bh|h", x, padding=3, circular=True)
    torch.testing.assert_close(out, x[:, torch.arange(-3, 10) % 7])


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2, 1, 2), (0, 1, 1, 0))])
def test_four_convolution_indices(stride, padding):
    """A 4-d convolution, checked against a sum of F.conv3d calls over the fourth index's offsets."""
    x, w = _rand(2, 3, 5, 4, 6, 5), _rand(2, 3, 2, 3, 2, 2)
    stride4 = stride if isinstance(stride, tuple) else (stride,) * 4
    pad4 = padding if isinstance(padding, tuple) else (padding,) * 4
    xp = F.pad(x, [p for q in reversed(pad4) for p in (q, q)])
    k4 = w.shape[-1]
    n4 = xp.shape[-1] - k4 + 1
    ref = torch.stack(
        [sum(F.conv3d(xp[..., e + j], w[..., j], stride=stride4[:3]) for j in range(k4)) for e in range(n4)],
        dim=-1,
    )[..., :: stride4[3]]
    out = conv_einsum("bsdefg,tsdefg->btdefg|defg", x, w, stride=stride, padding=padding)
    torch.testing.assert_close(out, ref)


def test_mixed_roles_step():
    """op0 is the signal of a, op1 a filter of a and the signal of b, op2 a filter of b."""
    p, q, r = _rand(3, 6), _rand(2, 7), _rand(3, 3)
    ref = torch.zeros(5, 5, dtype=DT)
    for a, b in itertools.product(range(5), range(5)):
        terms = [p[s, a + i] * q[i, b + j] * r[s, j] for s in range(3) for i in range(2) for j in range(3)]
        ref[a, b] = sum(terms)
    for optimize in ([(0, 2), (0, 1)], [(0, 1), (0, 1)], [(1, 2), (0, 1)], "optimal"):
        out = conv_einsum("sa,ab,sb->ab|ab", p, q, r, optimize=optimize)
        torch.testing.assert_close(out, ref, msg=f"path {optimize}")
    _, info = conv_einsum_path("sa,ab,sb->ab|ab", p, q, r, optimize=[(0, 2), (0, 1)])
    assert info.steps[-1].kind == "convolution (unfold)"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_dtypes(dtype):
    x, a, k, c = _rand(2, 8, 6, 6), _rand(8, 3), _rand(3, 3, 3), _rand(3, 4)
    ref = conv_einsum("bshw,sr,rhw,rt->bthw|hw", x, a, k, c, padding=1)
    out = conv_einsum("bshw,sr,rhw,rt->bthw|hw", *(t.to(dtype) for t in (x, a, k, c)), padding=1)
    assert out.dtype == dtype
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-4
    torch.testing.assert_close(out.double(), ref, atol=tol * ref.abs().max().item(), rtol=tol)


def test_path_info_is_printable():
    shapes = [(8, 16, 12, 12), (16, 4), (4, 3, 3), (4, 32)]
    _, info = conv_einsum_path("bshw,sr,rhw,rt->bthw|hw", *shapes, padding=1)
    text = str(info)
    for needle in ("Naive FLOP count", "Optimized FLOP count", "Largest intermediate", "convolution", "|hw"):
        assert needle in text
    assert len(info.steps) == 3
    assert info.largest_intermediate == max(s.size for s in info.steps)
    assert info.conv["h"]["out"] == 12


def test_conv_step_flops_counts_output_times_kernel():
    _, info = conv_einsum_path("bshw,tshw->bthw|hw", (2, 3, 10, 10), (4, 3, 3, 3), stride=2)
    (step,) = info.steps
    assert step.flops == 2 * 2 * 3 * 4 * (4 * 3) * (4 * 3)
