"""Soak test: 1,000 random ``conv_einsum`` specs and 100 random tensorial layers, forward and
backward, each checked against an independent reference, while the process's memory must stay flat.

Not part of the quick suite: run it with ``make soak`` (``pytest -m soak tests``). The figures (wall time,
resident memory before / after) are printed to the terminal and recorded in ``docs/reliability.md``.

References
----------
- contractions: ``torch.einsum`` on the same operands;
- convolutions: the conv_einsum is rewritten as one plain ``torch.einsum`` with a 0/1 selection tensor
  ``E[o, p, i_1, .., i_m] = 1`` iff ``p = o * stride + dilation * (i_1 + .. + i_m) - pad_left`` (the filters
  applied one after another as cross-correlations, ``docs/algebra.md``), zero padding by range check;
- layers: the dense kernel reconstructed from the factors, then ``F.conv2d`` / ``F.linear``; gradients
  of the factors through that reference path with ``torch.autograd.grad``.
"""

from __future__ import annotations

import gc
import itertools
import random
import resource
import string
import time

import pytest
import torch
import torch.nn.functional as F

from tnn.algebra import conv_einsum
from tnn.formats import FORMATS
from tnn.nn import TensorialConv2d, TensorialLinear

pytestmark = pytest.mark.soak

N_SPECS = 1000
N_LAYERS = 100
MAX_RSS_GROWTH_MIB = 64.0


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20




# ------------------------------------------------------------------ random specs and the reference
def _padding(mode: object, span: int) -> tuple[int, int]:
    if mode == "valid":
        return (0, 0)
    if mode == "same":
        return (span // 2, span - span // 2)
    if mode == "full":
        return (span, span)
    return (int(mode), int(mode))  # type: ignore[call-overload]


def reference(
    terms: list[str], output: str, conv: str, ops: list[torch.Tensor], options: dict
) -> torch.Tensor:
    fresh = iter(c for c in string.ascii_letters if c not in "".join(terms) + output)
    new_terms, new_out = list(terms), output
    extra_terms, extra_ops = [], []
    for c in conv:
        carriers = [p for p, t in enumerate(terms) if c in t]
        sig, filters = carriers[0], carriers[1:]
        kernels = [ops[f].shape[terms[f].index(c)] for f in filters]
        n = ops[sig].shape[terms[sig].index(c)]
        pad_mode, stride, dil = options[c]
        span = dil * sum(k - 1 for k in kernels)
        left, right = _padding(pad_mode, span)
        out = (n + left + right - span - 1) // stride + 1
        sel = torch.zeros(out, n, *kernels, dtype=torch.float64)
        for o in range(out):
            for offs in itertools.product(*[range(k) for k in kernels]):
                p = o * stride + dil * sum(offs) - left
                if 0 <= p < n:
                    sel[(o, p, *offs)] += 1.0
        o_letter, p_letter = next(fresh), next(fresh)
        offs_letters = [next(fresh) for _ in filters]
        new_terms[sig] = new_terms[sig].replace(c, p_letter)
        for f, letter in zip(filters, offs_letters, strict=True):
            new_terms[f] = new_terms[f].replace(c, letter)
        new_out = new_out.replace(c, o_letter)
        extra_terms.append(o_letter + p_letter + "".join(offs_letters))
        extra_ops.append(sel)
    return torch.einsum(",".join(new_terms + extra_terms) + "->" + new_out, *ops, *extra_ops)


def random_problem(rng: random.Random) -> tuple[str, list[str], str, str, list[torch.Tensor], dict]:
    plain, conv_letters = "abcdefg", "hwz"
    n_ops = rng.randint(1, 4)
    n_conv = rng.choice([0, 0, 1, 1, 2, 3])
    convs = conv_letters[:n_conv]
    terms = []
    for _ in range(n_ops):
        letters = rng.sample(plain, rng.randint(0, 3))
        letters += [c for c in convs if rng.random() < 0.6]
        rng.shuffle(letters)
        terms.append("".join(letters))
    used = sorted(set("".join(terms)))
    conv = "".join(c for c in convs if c in used)
    others = [c for c in used if c not in conv]
    kept = rng.sample(others, rng.randint(0, len(others)))
    out_letters = kept + list(conv)
    rng.shuffle(out_letters)
    output = "".join(out_letters)
    sizes = {c: rng.randint(1, 3) for c in plain}
    shapes, options, first = [], {}, {}
    for pos, t in enumerate(terms):
        shape = []
        for ch in t:
            if ch in conv and ch not in first:
                first[ch] = pos
                shape.append(rng.randint(5, 8))
            elif ch in conv:
                shape.append(rng.randint(1, 3))
            else:
                shape.append(sizes[ch])
        shapes.append(shape)
    for c in conv:
        n_filters = sum(1 for t in terms if c in t) - 1
        stride = rng.choice([1, 1, 2])
        modes: list[object] = [0, 1, "valid", "full"] + (["same"] if stride == 1 else [])
        dil = rng.choice([1, 1, 2]) if n_filters <= 2 else 1
        mode = rng.choice(modes)
        carriers = [pos for pos, t in enumerate(terms) if c in t]
        n = shapes[carriers[0]][terms[carriers[0]].index(c)]
        span = dil * sum(shapes[f][terms[f].index(c)] - 1 for f in carriers[1:])
        left, right = _padding(mode, span)
        if n + left + right - span < 1:  # the filters do not fit the signal: pad fully
            mode = "full"
        options[c] = (mode, stride, dil)
    ops = [torch.randn(s, dtype=torch.float64) for s in shapes]
    spec = ",".join(terms) + "->" + output + ("|" + conv if conv else "")
    return spec, terms, output, conv, ops, options


def check_spec(rng: random.Random) -> str:
    spec, terms, output, conv, ops, options = random_problem(rng)
    kw = {}
    if conv:
        kw = {"padding": {c: options[c][0] for c in conv}, "stride": {c: options[c][1] for c in conv},
              "dilation": {c: options[c][2] for c in conv}}
    expected = reference(terms, output, conv, ops, options)
    got = conv_einsum(spec, *ops, **kw)
    assert got.shape == expected.shape, (spec, kw)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9, msg=lambda m: f"{spec} {kw}: {m}")
    if len(ops) > 1:  # backward through the planned path equals backward through the reference
        leaves = [op.clone().requires_grad_(True) for op in ops]
        ref_leaves = [op.clone().requires_grad_(True) for op in ops]
        weight = torch.randn(expected.shape, dtype=torch.float64)
        grads = torch.autograd.grad((conv_einsum(spec, *leaves, **kw) * weight).sum(), leaves)
        ref_grads = torch.autograd.grad((reference(terms, output, conv, ref_leaves, options) * weight).sum(),
                                        ref_leaves)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9, msg=lambda m: f"grad {spec} {kw}: {m}")
    return "conv" if conv else "contraction"


# ------------------------------------------------------------------ random layers
def random_layer(rng: random.Random) -> tuple[torch.nn.Module, torch.Tensor, object]:
    """A feasible random TensorialConv2d / TensorialLinear, an input, and its dense reference function."""
    while True:
        fmt = rng.choice(FORMATS)
        rate = rng.choice([0.1, 0.25, 0.5, 0.8, 1.0])
        try:
            if rng.random() < 0.7:
                groups = rng.choice([1, 1, 2])
                s, t = groups * rng.randint(1, 8), groups * rng.randint(1, 8)
                k = (rng.randint(1, 3), rng.randint(1, 3))
                stride = rng.choice([1, 2])
                padding: object = rng.choice([0, 1, "valid"] + (["same"] if stride == 1 else []))
                dilation = rng.choice([1, 2])
                layer = TensorialConv2d(s, t, k, format=fmt, rate=rate, stride=stride, padding=padding,
                                        dilation=dilation, groups=groups, bias=rng.random() < 0.5,
                                        dtype=torch.float64)
                x = torch.randn(2, s, rng.randint(5, 9), rng.randint(5, 9), dtype=torch.float64)

                def ref(x, w, layer=layer):
                    xin = F.pad(x, layer._pre_pad) if layer._pre_pad else x
                    return F.conv2d(xin, w, layer.bias, stride=layer.stride, padding=layer._conv_pad,
                                    dilation=layer.dilation, groups=layer.groups)
            else:
                s, t = rng.randint(2, 24), rng.randint(2, 24)
                layer = TensorialLinear(s, t, format=fmt, rate=rate, bias=rng.random() < 0.5,
                                        dtype=torch.float64)
                x = torch.randn(3, s, dtype=torch.float64)

                def ref(x, w, layer=layer):
                    return F.linear(x, w, layer.bias)
        except ValueError:  # this budget/geometry is infeasible for the format: documented, draw again
            continue
        return layer, x, ref


def check_layer(rng: random.Random) -> str:
    layer, x, ref = random_layer(rng)
    out = layer(x)
    expected = ref(x, layer.dense_weight())
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9, msg=lambda m: f"{layer!r}: {m}")
    weight = torch.randn(out.shape, dtype=torch.float64)
    params = list(layer.parameters())
    grads = torch.autograd.grad((layer(x) * weight).sum(), params)
    ref_grads = torch.autograd.grad((ref(x, layer.dense_weight()) * weight).sum(), params)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-8, msg=lambda m: f"grad {layer!r}: {m}")
    return type(layer).__name__ + "/" + layer.format


# ------------------------------------------------------------------ the soak
def test_soak_random_specs_and_layers_against_references(capsys):
    rng = random.Random(20240607)
    t0 = time.perf_counter()
    rss0 = rss_mib()
    kinds: dict[str, int] = {}
    rss_warm = None
    for i in range(N_SPECS):
        kind = check_spec(rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        if i == N_SPECS // 4 - 1:
            gc.collect()
            rss_warm = rss_mib()
    t_specs = time.perf_counter() - t0
    gc.collect()
    rss_specs = rss_mib()
    layer_kinds: dict[str, int] = {}
    rss_layers_warm = None
    for i in range(N_LAYERS):
        kind = check_layer(rng)
        layer_kinds[kind] = layer_kinds.get(kind, 0) + 1
        if i == N_LAYERS // 4 - 1:
            gc.collect()
            rss_layers_warm = rss_mib()
    gc.collect()
    rss_end = rss_mib()
    wall = time.perf_counter() - t0
    assert rss_warm is not None and rss_layers_warm is not None
    growth_specs = rss_specs - rss_warm
    growth_layers = rss_end - rss_layers_warm
    with capsys.disabled():
        print(
            f"\nsoak: {N_SPECS} specs ({kinds}) in {t_specs:.1f} s, {N_LAYERS} layers "
            f"({len(layer_kinds)} kinds) in {wall - t_specs:.1f} s; wall {wall:.1f} s\n"
            f"soak: RSS start {rss0:.1f} MiB, after {N_SPECS // 4} specs {rss_warm:.1f}, "
            f"after {N_SPECS} specs {rss_specs:.1f} (growth {growth_specs:+.1f}), "
            f"after {N_LAYERS // 4} layers {rss_layers_warm:.1f}, "
            f"end {rss_end:.1f} (growth {growth_layers:+.1f}); peak "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"
        )
    assert kinds.get("conv", 0) >= N_SPECS // 3 and kinds.get("contraction", 0) >= N_SPECS // 10
    assert growth_specs < MAX_RSS_GROWTH_MIB, f"memory grew {growth_specs:.1f} MiB over {N_SPECS} specs"
    assert growth_layers < MAX_RSS_GROWTH_MIB, f"memory grew {growth_layers:.1f} MiB over {N_LAYERS} layers"
