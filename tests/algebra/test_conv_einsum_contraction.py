"""Pure contractions (no convolution index) against torch.einsum, on hypothesis-generated specs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnn.algebra import conv_einsum, conv_einsum_path, parse_spec

LETTERS = "abcdefgAB"


@st.composite
def pure_specs(draw, max_operands: int = 5, diagonals: bool = False):
    """A random spec with batch, outer, contracted and summed-out indices, plus matching shapes."""
    n = draw(st.integers(1, max_operands))
    sizes = {ch: draw(st.integers(1, 3)) for ch in LETTERS}
    terms = []
    for _ in range(n):
        k = draw(st.integers(0, 4))
        letters = draw(st.lists(st.sampled_from(LETTERS), min_size=k, max_size=k, unique=not diagonals))
        terms.append("".join(letters))
    used = sorted(set("".join(terms)))
    out = draw(st.permutations(used)) if used else []
    keep = draw(st.integers(0, len(used)))
    output = "".join(out[:keep])
    spec = ",".join(terms) + "->" + output
    shapes = [tuple(sizes[ch] for ch in term) for term in terms]
    return spec, shapes


def _operands(shapes):
    return [torch.randn(s, dtype=torch.float64) for s in shapes]


@settings(max_examples=60, deadline=None)
@given(pure_specs(), st.sampled_from(["optimal", "greedy", "naive", "time"]))
def test_pure_contraction_equals_torch_einsum(case, optimize):
    spec, shapes = case
    ops = _operands(shapes)
    ref = torch.einsum(spec, *ops)
    out = conv_einsum(spec, *ops, optimize=optimize)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)


@settings(max_examples=30, deadline=None)
@given(pure_specs(max_operands=3, diagonals=True))
def test_repeated_index_within_operand_is_a_diagonal(case):
    spec, shapes = case
    ops = _operands(shapes)
    torch.testing.assert_close(conv_einsum(spec, *ops), torch.einsum(spec, *ops))


@settings(max_examples=40, deadline=None)
@given(pure_specs(max_operands=6))
def test_planned_flops_never_above_naive(case):
    spec, shapes = case
    for optimize in ("optimal", "greedy"):
        path, info = conv_einsum_path(spec, *shapes, optimize=optimize)
        assert info.opt_flops <= info.naive_flops
        assert len(path) == max(len(shapes) - 1, 0)


@pytest.mark.parametrize(
    "spec",
    ["ij,jk->ik", "bij,bjk->bik", "i,j->ij", "bi,bi->bi", "ij->", "ii->i", "ii->", "ij,ij,ij->", "i,i->"],
)
def test_named_contractions(spec):
    sizes = {"i": 3, "j": 4, "k": 2, "b": 2}
    ops = _operands([tuple(sizes[c] for c in t) for t in spec.split("->")[0].split(",")])
    torch.testing.assert_close(conv_einsum(spec, *ops), torch.einsum(spec, *ops))


def test_implicit_output_like_einsum():
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(conv_einsum("ij,jk", a, b), torch.einsum("ij,jk", a, b))
    assert parse_spec("ba,c").output == "abc"
    assert parse_spec("bh,h|h").output == "bh"


def test_spaces_and_comma_separated_conv_indices():
    assert parse_spec(" bs hw , tshw -> bthw | h, w") == parse_spec("bshw,tshw->bthw|hw")


def test_flop_optimal_path_matches_opt_einsum_on_a_chain():
    import opt_einsum

    from tnn.algebra.cost import Problem
    from tnn.algebra.paths import optimal_path, path_flops

    shapes = ((10, 20), (20, 5), (5, 30), (30, 2))
    problem = Problem(parse_spec("ab,bc,cd,de->ae"), shapes, ())
    _, oe_info = opt_einsum.contract_path("ab,bc,cd,de->ae", *shapes, shapes=True, optimize="optimal")
    assert path_flops(problem, optimal_path(problem, memory_weight=0)) == oe_info.opt_cost
    _, info = conv_einsum_path("ab,bc,cd,de->ae", *shapes)
    assert info.opt_flops <= info.naive_flops


@pytest.mark.parametrize("q", [1, 9, 16, 40])
def test_contiguous_block_contraction_on_both_sides_of_the_bmm_threshold(q):
    """``x (P, S, Q) x w (T, S)``: bmm for wide ``Q``, torch.einsum below ``BMM_MIN_COLUMNS``; same values."""
    from tnn.algebra.pairwise import BMM_MIN_COLUMNS, matmul_step

    fn, out_idx = matmul_step("pasq", "tas", frozenset("ptq"))
    assert out_idx == "ptq" and (q < BMM_MIN_COLUMNS) == (q in (1, 9))
    x = torch.randn(3, 4, 5, q, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, 5, dtype=torch.float64, requires_grad=True)
    got = fn(x, w)
    ref = torch.einsum("pasq,tas->ptq", x, w)
    torch.testing.assert_close(got, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, (x, w), g), torch.autograd.grad(ref, (x, w), g))


def test_matmul_step_declines_a_narrow_trailing_block_when_sizes_are_known():
    """With the sizes known, a ``Q`` below ``BMM_MIN_COLUMNS`` leaves the step to the caller's einsum;
    a wide one, or a ``Q`` whose sizes are not listed (convolution indices), keeps the bmm."""
    from tnn.algebra.pairwise import matmul_step

    assert matmul_step("pasq", "tas", frozenset("ptq"), {"p": 3, "a": 4, "s": 5, "t": 6, "q": 9}) is None
    assert matmul_step("pasq", "tas", frozenset("ptq"), {"p": 3, "a": 4, "s": 5, "t": 6, "q": 40}) is not None
    assert matmul_step("pasq", "tas", frozenset("ptq"), {"p": 3, "a": 4, "s": 5, "t": 6}) is not None


@pytest.mark.parametrize("small", [True, False])
def test_small_product_is_one_einsum_in_the_output_order(small):
    """A product with fewer than ``SMALL_PRODUCT`` result elements is one torch.einsum step that writes
    the output order itself (no bmm, no final permute); larger ones may take the bmm. Values and
    gradients match torch.einsum either way."""
    from tnn.algebra.contract import SMALL_PRODUCT

    s, r, t, k = (16, 8, 16, 3) if small else (64, 32, 64, 9)
    assert (s * t * k * k < SMALL_PRODUCT) == small
    a = torch.randn(s, r, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(r, t, k, dtype=torch.float64, requires_grad=True)
    _, info = conv_einsum_path("srh,rtw->tshw", a, b)
    if small:
        assert [st.equation for st in info.steps] == ["srh,rtw->tshw"]
    else:
        assert info.steps[0].equation != "srh,rtw->tshw"  # the bmm's own order, then a permute
    got = conv_einsum("srh,rtw->tshw", a, b)
    ref = torch.einsum("srh,rtw->tshw", a, b)
    torch.testing.assert_close(got, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, (a, b), g), torch.autograd.grad(ref, (a, b), g))
