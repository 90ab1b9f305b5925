"""Backpropagation through every kind of step (gradcheck in float64), as derived in docs/algebra.md."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from tnn.algebra import conv_einsum

DT = torch.float64


def _leaf(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=DT, requires_grad=True)


CASES = {
    "contraction": ("ij,jk->ik", [(3, 4), (4, 2)], {}),
    "batched contraction": ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)], {}),
    "partial outer product": ("bi,bi->bi", [(2, 3), (2, 3)], {}),
    "outer product": ("i,j->ij", [(3,), (2,)], {}),
    "summed-out index": ("ij,j->j", [(3, 4), (4,)], {}),
    "diagonal": ("ii,i->i", [(3, 3), (3,)], {}),
    "convolution": ("bsh,tsh->bth|h", [(2, 2, 7), (3, 2, 3)], {"padding": 1, "stride": 2, "dilation": 2}),
    "convolution 2d same": ("bshw,tshw->bthw|hw", [(1, 2, 5, 4), (2, 2, 3, 2)], {"padding": "same"}),
    "circular": ("bh,h->bh|h", [(2, 6), (3,)], {"padding": "same", "circular": True}),
    "depthwise (conv + partial outer)": ("bsh,sh->bsh|h", [(2, 3, 6), (3, 3)], {"padding": 1}),
    "filter-filter (full)": ("h,h,h->h|h", [(8,), (3,), (2,)], {"padding": "full"}),
    "compound cp layer": (
        "bshw,sr,rhw,rt->bthw|hw",
        [(2, 3, 5, 5), (3, 2), (2, 3, 3), (2, 2)],
        {"padding": 1},
    ),
    "compound tt layer": (
        "bshw,sa,ahc,cwd,dt->bthw|hw",
        [(1, 2, 5, 4), (2, 2), (2, 3, 2), (2, 2, 2), (2, 3)],
        {"padding": (1, 0), "stride": (1, 2)},
    ),
    "mixed roles (unfold)": ("sa,ab,sb->ab|ab", [(2, 5), (2, 5), (2, 2)], {}),
    "four convolution indices": ("bdefg,defg->bdefg|defg", [(1, 3, 3, 3, 3), (2, 2, 2, 2)], {"padding": 1}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    spec, shapes, kwargs = CASES[name]
    ops = tuple(_leaf(*s) for s in shapes)
    for optimize in ("optimal", "naive"):
        assert gradcheck(lambda *t, o=optimize: conv_einsum(spec, *t, optimize=o, **kwargs), ops)


def test_documented_convolution_filter_gradient():
    """dL/dw[t,s,j] = sum_{b,u} dL/dy[b,t,u] x_pad[b,s,u*stride + j*dilation] (docs/algebra.md)."""
    x, w = _leaf(2, 3, 9), _leaf(4, 3, 3)
    y = conv_einsum("bsh,tsh->bth|h", x, w, padding=1, stride=2, dilation=2)
    gy = torch.randn_like(y)
    y.backward(gy)
    xp = torch.nn.functional.pad(x.detach(), (1, 1))
    expected = torch.zeros_like(w)
    for j in range(3):
        window = xp[:, :, j * 2 :: 2][:, :, : y.shape[-1]]
        expected[:, :, j] = torch.einsum("btu,bsu->ts", gy, window)
    torch.testing.assert_close(w.grad, expected)


def test_documented_convolution_signal_gradient():
    """dL/dx_pad[b,s,m] = sum_{t,u,j: u*stride + j*dilation = m} dL/dy[b,t,u] w[t,s,j]; then crop."""
    x, w = _leaf(2, 3, 9), _leaf(4, 3, 3)
    pad, stride, dil = 1, 2, 2
    y = conv_einsum("bsh,tsh->bth|h", x, w, padding=pad, stride=stride, dilation=dil)
    gy = torch.randn_like(y)
    y.backward(gy)
    gxp = torch.zeros(2, 3, 9 + 2 * pad, dtype=DT)
    for u in range(y.shape[-1]):
        for j in range(3):
            gxp[:, :, u * stride + j * dil] += torch.einsum("bt,ts->bs", gy[:, :, u], w.detach()[:, :, j])
    torch.testing.assert_close(x.grad, gxp[:, :, pad:-pad])


def test_documented_circular_signal_gradient_folds_the_wrapped_entries():
    x, f = _leaf(6), _leaf(3)
    y = conv_einsum("h,h->h|h", x, f, padding=2, circular=True)
    gy = torch.randn_like(y)
    y.backward(gy)
    gxp = torch.zeros(10, dtype=DT)
    for u in range(y.numel()):
        gxp[u : u + 3] += gy[u] * f.detach()
    expected = torch.zeros(6, dtype=DT).index_add_(0, torch.arange(-2, 8) % 6, gxp)
    torch.testing.assert_close(x.grad, expected)


def test_documented_full_convolution_adjoint():
    """y = x * f (full true convolution) => dL/dx = dL/dy (valid-corr) f, dL/df = dL/dy (valid-corr) x."""
    x, f = _leaf(7), _leaf(3)
    y = conv_einsum("h,h->h|h", x, f.flip(0), padding="full")  # true convolution x * f
    gy = torch.randn_like(y)
    y.backward(gy)
    torch.testing.assert_close(x.grad, conv_einsum("h,h->h|h", gy, f.detach()))
    torch.testing.assert_close(f.grad, conv_einsum("h,h->h|h", gy, x.detach()))


def test_documented_contraction_and_partial_outer_product_gradients():
    a, b = _leaf(3, 4, 2), _leaf(4, 5, 2)  # Y[i,j,p] = sum_k A[i,k,p] B[k,j,p]: k contracted, p partial outer
    y = conv_einsum("ikp,kjp->ijp", a, b)
    gy = torch.randn_like(y)
    y.backward(gy)
    torch.testing.assert_close(a.grad, torch.einsum("ijp,kjp->ikp", gy, b.detach()))
    torch.testing.assert_close(b.grad, torch.einsum("ijp,ikp->kjp", gy, a.detach()))


def test_documented_compound_gradient_replaces_the_operand_by_the_output_gradient():
    ops = [_leaf(3, 4), _leaf(4, 5), _leaf(5, 2)]
    y = conv_einsum("ij,jk,kl->il", *ops)
    gy = torch.randn_like(y)
    y.backward(gy)
    a, b, c = (o.detach() for o in ops)
    torch.testing.assert_close(ops[1].grad, torch.einsum("ij,il,kl->jk", a, gy, c))
