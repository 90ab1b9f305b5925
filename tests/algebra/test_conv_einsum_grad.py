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


def test_gradient_of_convolution_matches_the_documented_rule():
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
