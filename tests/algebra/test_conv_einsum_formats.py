"""Layer strings of every compression format against reconstruct-the-kernel-then-F.conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tnn.algebra import conv_einsum, conv_einsum_path

DT = torch.float64
B, S, T, H, W, K = 2, 6, 4, 7, 6, 3
# reshaped formats fold S = 2 x 3 (x, y) and T = 2 x 2 (u, v)
S1, S2, T1, T2 = 2, 3, 2, 2

# name: (layer string, factor shapes, kernel reconstruction einsum giving t s h w (or u v x y h w))
FORMATS = {
    "svd": ("bshw,srh,rtw->bthw|hw", [(S, 3, K), (3, T, K)], "srh,rtw->tshw"),
    "cp": ("bshw,sr,rhw,rt->bthw|hw", [(S, 3), (3, K, K), (3, T)], "sr,rhw,rt->tshw"),
    "tk": ("bshw,sr,rqhw,qt->bthw|hw", [(S, 3), (3, 2, K, K), (2, T)], "sr,rqhw,qt->tshw"),
    "tt": ("bshw,sa,ahc,cwd,dt->bthw|hw", [(S, 2), (2, K, 3), (3, K, 2), (2, T)], "sa,ahc,cwd,dt->tshw"),
    # the "bshw,asb,bhc,..." reuses b for batch and a rank; the batch is n here
    "tr": (
        "nshw,asb,bhc,cwd,dta->nthw|hw",
        [(2, S, 3), (3, K, 2), (2, K, 2), (2, T, 2)],
        "asb,bhc,cwd,dta->tshw",
    ),
    "rcp": ("bxyhw,rxu,ryv,rhw->buvhw|hw", [(3, S1, T1), (3, S2, T2), (3, K, K)], "rxu,ryv,rhw->uvxyhw"),
    "rtk": (
        "bxyhw,xup,yvq,pqhw->buvhw|hw",
        [(S1, T1, 2), (S2, T2, 3), (2, 3, K, K)],
        "xup,yvq,pqhw->uvxyhw",
    ),
    "rtt": ("bxyhw,xua,ayvc,chw->buvhw|hw", [(S1, T1, 2), (2, S2, T2, 3), (3, K, K)], "xua,ayvc,chw->uvxyhw"),
    "rtr": (
        "bxyhw,dxua,ayvc,chwd->buvhw|hw",
        [(2, S1, T1, 3), (3, S2, T2, 2), (2, K, K, 2)],
        "dxua,ayvc,chwd->uvxyhw",
    ),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("optimize", ["optimal", "greedy", "naive"])
@pytest.mark.parametrize("padding,stride", [(1, 1), (0, 2), ("same", 1)])
def test_format_layer_equals_reconstructed_kernel(name, optimize, padding, stride):
    spec, factor_shapes, recon = FORMATS[name]
    factors = [torch.randn(*s, dtype=DT) for s in factor_shapes]
    x = torch.randn(B, S, H, W, dtype=DT)
    kernel = torch.einsum(recon, *factors).reshape(T, S, K, K)
    ref = F.conv2d(x, kernel, padding=padding, stride=stride)
    xin = x.reshape(B, S1, S2, H, W) if name.startswith("r") else x
    out = conv_einsum(spec, xin, *factors, padding=padding, stride=stride, optimize=optimize)
    torch.testing.assert_close(out.reshape(ref.shape), ref)


def _resnet_shapes(spec: str) -> list[tuple[int, ...]]:
    """Operand shapes of a layer string at a ResNet-32-like size (batch 128, 16 -> 32 channels)."""
    size = {"b": 128, "n": 128, "s": 16, "t": 32, "x": 4, "y": 4, "u": 4, "v": 8}
    terms = spec.split("->")[0].split(",")
    return [
        tuple((32 if pos == 0 else 3) if ch in "hw" else size.get(ch, 5) for ch in term)
        for pos, term in enumerate(terms)
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_planned_flops_not_above_naive(name):
    spec = FORMATS[name][0]
    shapes = _resnet_shapes(spec)
    _, naive = conv_einsum_path(spec, *shapes, padding=1, optimize="naive")
    assert naive.opt_flops == naive.naive_flops
    for optimize in ("optimal", "greedy"):
        _, info = conv_einsum_path(spec, *shapes, padding=1, optimize=optimize)
        assert info.naive_flops == naive.naive_flops
        assert 0 < info.opt_flops <= info.naive_flops
    _, greedy = conv_einsum_path(spec, *shapes, padding=1, optimize="greedy")
    _, best = conv_einsum_path(spec, *shapes, padding=1, optimize="optimal")
    assert best.cost <= greedy.cost


def test_paper_cp_string():
    """The issue's example ``nabxy,rac,rbd,rxy->ncdxy|xy`` (a reshaped CP layer)."""
    x = torch.randn(2, 2, 3, 6, 5, dtype=DT)
    a, b, k = torch.randn(4, 2, 3, dtype=DT), torch.randn(4, 3, 2, dtype=DT), torch.randn(4, 3, 3, dtype=DT)
    kernel = torch.einsum("rac,rbd,rxy->cdabxy", a, b, k).reshape(6, 6, 3, 3)
    ref = F.conv2d(x.reshape(2, 6, 6, 5), kernel, padding=1).reshape(2, 3, 2, 6, 5)
    torch.testing.assert_close(conv_einsum("nabxy,rac,rbd,rxy->ncdxy|xy", x, a, b, k, padding=1), ref)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_default_path_is_the_cheaper_of_bounded_and_free(name):
    """``auto`` (the default) takes the ``optimal`` or the ``time`` path, whichever runs cheaper."""
    from tnn.algebra.contract import _prepare
    from tnn.algebra.paths import evaluation_cost

    spec = FORMATS[name][0]
    shapes = tuple(_resnet_shapes(spec))
    problem = _prepare(spec, shapes, 1, 1, 1, False, "auto").problem
    paths = {opt: conv_einsum_path(spec, *shapes, padding=1, optimize=opt)[0] for opt in ("optimal", "time")}
    default, _ = conv_einsum_path(spec, *shapes, padding=1)
    assert default in paths.values()
    assert evaluation_cost(problem, default) == min(evaluation_cost(problem, p) for p in paths.values())


def test_time_optimizer_may_reconstruct_the_kernel_first():
    """At small ranks the objective prefers building the kernel, even above the naive FLOPs."""
    spec = "bxyhw,xua,ayvc,chw->buvhw|hw"
    shapes = [(128, 4, 4, 32, 32), (4, 4, 4), (4, 4, 4, 4), (4, 3, 3)]
    _, bounded = conv_einsum_path(spec, *shapes, padding=1, optimize="optimal")
    _, free = conv_einsum_path(spec, *shapes, padding=1, optimize="time")
    assert conv_einsum_path(spec, *shapes, padding=1)[0] == conv_einsum_path(spec, *shapes, padding=1,
                                                                             optimize="time")[0]
    assert bounded.opt_flops <= bounded.naive_flops < free.opt_flops
    assert free.cost < bounded.cost
    assert free.steps[-1].kind == "convolution" and free.steps[-1].equation.startswith("bxyhw,")
    ops = [torch.randn(*s[:1], *s[1:], dtype=DT) if i else torch.randn(2, 4, 4, 6, 6, dtype=DT)
           for i, s in enumerate(shapes)]
    torch.testing.assert_close(
        conv_einsum(spec, *ops, padding=1, optimize="time"),
        conv_einsum(spec, *ops, padding=1, optimize="optimal"),
    )
