"""Hypothesis fuzzing: any string raises only ValueError; random convolution specs equal a brute force.

The brute-force reference rewrites a conv_einsum as one plain ``torch.einsum``: for a convolution
index ``c`` with signal ``x`` and filters ``f_1 .. f_m`` (offsets ``i_1 .. i_m``), output position
``o`` reads the (padded) signal at ``o * stride + dilation * (i_1 + ... + i_m) - pad_left`` -- applying
the filters one after another as cross-correlations. A 0/1 selection tensor ``E[o, p, i_1, .., i_m]``
encodes that (wrapping around for circular padding), and everything else is ordinary einsum.
"""

from __future__ import annotations

import itertools
import string

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnn.algebra import conv_einsum, conv_einsum_path

ALPHABET = "abchwxy,->| ,.1$|-"


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=ALPHABET, max_size=16),
    st.lists(st.lists(st.integers(0, 4), max_size=4), max_size=4),
)
def test_random_strings_raise_only_value_error(spec, shapes):
    try:
        conv_einsum_path(spec, *[tuple(s) for s in shapes])
    except ValueError:
        return
    ops = [torch.randn(s, dtype=torch.float64) for s in shapes]
    out = conv_einsum(spec, *ops)
    assert isinstance(out, torch.Tensor)


def _selection(n: int, kernels: list[int], out: int, pad: tuple[int, int], stride: int, dilation: int,
               circular: bool) -> torch.Tensor:
    sel = torch.zeros(out, n, *kernels, dtype=torch.float64)
    for o in range(out):
        for offs in itertools.product(*[range(k) for k in kernels]):
            p = o * stride + dilation * sum(offs) - pad[0]
            if circular:
                p %= n
            elif not 0 <= p < n:
                continue
            sel[(o, p, *offs)] += 1.0
    return sel


def brute_force(spec: str, ops: list[torch.Tensor], padding, stride, dilation, circular) -> torch.Tensor:
    lhs, _, rest = spec.partition("->")
    output, _, conv = rest.partition("|")
    terms = lhs.split(",")
    fresh = iter(c for c in string.ascii_letters if c not in spec)
    new_terms = list(terms)
    new_out = output
    extra_terms, extra_ops = [], []
    for c in conv:
        carriers = [p for p, t in enumerate(terms) if c in t]
        sig, filters = carriers[0], carriers[1:]
        kernels = [ops[f].shape[terms[f].index(c)] for f in filters]
        n = ops[sig].shape[terms[sig].index(c)]
        big_k = 1 + sum(k - 1 for k in kernels)
        span = dilation * (big_k - 1)
        pad = {"valid": (0, 0), "same": (span // 2, span - span // 2), "full": (span, span)}.get(
            padding, (padding, padding) if isinstance(padding, int) else padding
        )
        out = (n + pad[0] + pad[1] - span - 1) // stride + 1
        o, p = next(fresh), next(fresh)
        offs = [next(fresh) for _ in filters]
        new_terms[sig] = new_terms[sig].replace(c, p)
        for f, letter in zip(filters, offs, strict=True):
            new_terms[f] = new_terms[f].replace(c, letter)
        new_out = new_out.replace(c, o)
        extra_terms.append(o + p + "".join(offs))
        extra_ops.append(_selection(n, kernels, out, pad, stride, dilation, circular))
    eq = ",".join(new_terms + extra_terms) + "->" + new_out
    return torch.einsum(eq, *ops, *extra_ops)


@st.composite
def conv_problems(draw):
    n_ops = draw(st.integers(1, 4))
    plain, convs = "abcd", "hwz"
    terms = []
    n_conv = draw(st.integers(1, 3))
    for _ in range(n_ops):
        letters = draw(st.lists(st.sampled_from(plain), max_size=3, unique=True))
        letters += [c for c in convs[:n_conv] if draw(st.integers(0, 2))]
        terms.append("".join(draw(st.permutations(letters))))
    used = sorted(set("".join(terms)))
    conv = [c for c in convs if c in used and draw(st.booleans())]
    if not conv:
        conv = [c for c in convs if c in used][:1]
    others = [c for c in used if c not in conv]
    kept = draw(st.lists(st.sampled_from(others), unique=True)) if others else []
    output = "".join(draw(st.permutations(kept + conv)))
    spec = ",".join(terms) + "->" + output + ("|" + "".join(conv) if conv else "")
    sizes = {c: draw(st.integers(1, 3)) for c in plain}
    shapes = []
    first = {}
    for pos, t in enumerate(terms):
        shape = []
        for ch in t:
            if ch in conv:
                if ch not in first:
                    first[ch] = pos
                    shape.append(draw(st.integers(3, 7)))
                else:
                    shape.append(draw(st.integers(1, 3)))
            else:
                shape.append(sizes.get(ch, 2) if ch in plain else draw(st.integers(1, 3)))
        shapes.append(tuple(shape))
    for ch in convs:  # a convolution letter not chosen as convolution index is a plain index
        if ch in used and ch not in conv:
            size = draw(st.integers(1, 3))
            shapes = [
                tuple(size if c == ch else s for c, s in zip(t, sh, strict=True))
                for t, sh in zip(terms, shapes, strict=True)
            ]
    padding = draw(st.sampled_from([0, 1, "same", "full", "valid", (0, 2)]))
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    circular = draw(st.booleans())
    optimize = draw(st.sampled_from(["optimal", "greedy", "naive", "time"]))
    return spec, shapes, padding, stride, dilation, circular, optimize


@settings(max_examples=120, deadline=None)
@given(conv_problems())
def test_random_conv_specs_equal_brute_force(problem):
    spec, shapes, padding, stride, dilation, circular, optimize = problem
    ops = [torch.randn(s, dtype=torch.float64) for s in shapes]
    conv = spec.partition("|")[2]
    pad_arg = {c: padding for c in conv}
    try:
        out = conv_einsum(spec, *ops, padding=pad_arg, stride=stride, dilation=dilation, circular=circular,
                          optimize=optimize)
    except ValueError as err:  # no valid output, or 'same' with stride 2
        assert "no valid output" in str(err) or "'same' needs stride 1" in str(err)
        return
    ref = brute_force(spec, ops, padding, stride, dilation, circular)
    torch.testing.assert_close(out, ref)
