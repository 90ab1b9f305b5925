"""conv_einsum against F.conv1d/2d/3d and against reconstruct-the-kernel-then-convolve."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tnn.algebra import conv_einsum, conv_einsum_expression

DT = torch.float64


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=DT)


PADDINGS = [0, 1, 2, "same", "valid"]


@pytest.mark.parametrize("padding,stride,dilation", list(itertools.product(PADDINGS, [1, 2, 3], [1, 2])))
def test_conv1d_grid(padding, stride, dilation):
    if padding == "same" and stride > 1:
        pytest.skip("PyTorch forbids 'same' with stride > 1")
    x, w = _rand(2, 3, 11), _rand(4, 3, 3)
    ref = F.conv1d(x, w, padding=padding, stride=stride, dilation=dilation)
    out = conv_einsum("bsh,tsh->bth|h", x, w, padding=padding, stride=stride, dilation=dilation)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    "padding,stride,dilation,groups",
    [
        (p, s, d, g)
        for p, s, d, g in itertools.product([0, (1, 2), "same", "valid"], [1, (2, 1)], [1, (1, 2)], [1, 2])
        if not (p == "same" and s != 1)
    ],
)
def test_conv2d_grid_with_groups(padding, stride, dilation, groups):
    b, s_in, t_out = 2, 4, 6
    x, w = _rand(b, s_in, 9, 8), _rand(t_out, s_in // groups, 3, 2)
    ref = F.conv2d(x, w, padding=padding, stride=stride, dilation=dilation, groups=groups)
    xg = x.reshape(b, groups, s_in // groups, 9, 8)
    wg = w.reshape(groups, t_out // groups, s_in // groups, 3, 2)
    out = conv_einsum("bgshw,gtshw->bgthw|hw", xg, wg, padding=padding, stride=stride, dilation=dilation)
    torch.testing.assert_close(out.reshape(ref.shape), ref)


@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 2), ("same", 1), ((1, 0, 2), (1, 2, 1))])
def test_conv3d(padding, stride):
    x, w = _rand(2, 3, 6, 5, 7), _rand(2, 3, 3, 2, 3)
    ref = F.conv3d(x, w, padding=padding, stride=stride)
    out = conv_einsum("bsdhw,tsdhw->btdhw|dhw", x, w, padding=padding, stride=stride)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("padding", [1, 2, (1, 3)])
def test_circular_matches_padding_mode_circular(padding):
    x, w = _rand(2, 3, 7, 6), _rand(4, 3, 3, 3)
    pad = (padding, padding) if isinstance(padding, int) else padding
    ref = F.conv2d(F.pad(x, (pad[1], pad[1], pad[0], pad[0]), mode="circular"), w)
    out = conv_einsum("bshw,tshw->bthw|hw", x, w, padding=padding, circular=True)
    torch.testing.assert_close(out, ref)


def test_depthwise():
    x, w = _rand(2, 4, 7, 6), _rand(4, 3, 3)
    ref = F.conv2d(x, w.unsqueeze(1), padding=1, groups=4)
    torch.testing.assert_close(conv_einsum("bshw,shw->bshw|hw", x, w, padding=1), ref)


def test_per_index_dict_options():
    x, w = _rand(2, 3, 9, 10), _rand(4, 3, 3, 3)
    out = conv_einsum(
        "bshw,tshw->bthw|hw", x, w, padding={"h": (2, 0), "w": "same"}, stride={"h": 2}, dilation={"w": 2}
    )
    ref = F.conv2d(F.pad(x, (2, 2, 2, 0)), w, stride=(2, 1), dilation=(1, 2))
    torch.testing.assert_close(out, ref)


def test_expression_reusable_and_replans_for_new_batch():
    w = _rand(4, 3, 3, 3)
    expr = conv_einsum_expression("bshw,tshw->bthw|hw", (2, 3, 8, 8), w.shape, padding=1)
    for batch in (2, 5, 2):
        x = _rand(batch, 3, 8, 8)
        torch.testing.assert_close(expr(x, w), F.conv2d(x, w, padding=1))
