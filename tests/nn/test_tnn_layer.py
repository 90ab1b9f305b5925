"""TNNLayer: exactness against torch.einsum / F.conv2d, bias, init variance, caching, errors."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tnn.nn import TNNLayer

D = torch.float64


def test_contraction_matches_einsum_with_bias_and_batches() -> None:
    sizes = dict(i=3, j=4, k=5, p=2, q=3, r=4)
    layer = TNNLayer("b i j k, i p, j q, k r -> b p q r", sizes, dtype=D)
    assert layer.bias_indices == "pqr" and layer.bias.shape == (2, 3, 4)
    with torch.no_grad():
        layer.bias.normal_()
    for batch in (1, 6):
        x = torch.randn(batch, 3, 4, 5, dtype=D)
        ref = torch.einsum("bijk,ip,jq,kr->bpqr", x, *layer.kernels) + layer.bias
        torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)
    assert len(layer._plans) == 2


def test_partial_outer_product_and_explicit_bias_order() -> None:
    # the bias is given in another order than the output's: it must be permuted, not reshaped
    layer = TNNLayer("bsn,snt->btn", dict(s=3, n=4, t=5), bias="nt", dtype=D)
    assert layer.bias.shape == (4, 5)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 4, dtype=D)
    ref = torch.einsum("bsn,snt->btn", x, layer.kernels[0]) + layer.bias.T
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("padding", "stride", "dilation"), [(0, 1, 1), (1, 1, 1), (2, 2, 1), (2, 1, 2)])
def test_conv_spec_matches_conv2d(padding: int, stride: int, dilation: int) -> None:
    layer = TNNLayer(
        "bshw,tshw->bthw|hw", dict(s=3, t=4, h=3, w=3), padding=padding, stride=stride, dilation=dilation,
        dtype=D,
    )
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 9, 8, dtype=D)
    ref = F.conv2d(x, layer.kernels[0], layer.bias, stride, padding, dilation)
    torch.testing.assert_close(layer(x), ref, rtol=1e-12, atol=1e-12)
    assert layer.fan_in == 27


def test_grouped_conv_spec_matches_conv2d_groups() -> None:
    g, s, t = 2, 3, 4
    layer = TNNLayer("bgshw,gtshw->bgthw|hw", dict(g=g, s=s, t=t, h=3, w=3), padding=1, dtype=D)
    assert layer.bias_indices == "gt"
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, g * s, 6, 6, dtype=D)
    y = layer(x.reshape(2, g, s, 6, 6)).reshape(2, g * t, 6, 6)
    ref = F.conv2d(x, layer.kernels[0].reshape(g * t, s, 3, 3), layer.bias.reshape(-1), padding=1, groups=g)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_multi_kernel_conv_matches_reconstructed_kernel() -> None:
    # a Tucker-2 layer: the reconstructed kernel convolved with F.conv2d
    layer = TNNLayer("bshw,sr,rqhw,qt->bthw|hw", dict(s=4, r=2, q=3, h=3, w=3, t=5), padding=1, bias=False,
                     dtype=D)
    a, g, c = layer.kernels
    kernel = torch.einsum("sr,rqhw,qt->tshw", a, g, c)
    x = torch.randn(2, 4, 7, 7, dtype=D)
    torch.testing.assert_close(layer(x), F.conv2d(x, kernel, padding=1), rtol=1e-12, atol=1e-12)
    assert layer.bias is None and layer.fan_in == 4 * 2 * 3 * 9


def test_activation_and_gradients_reach_every_parameter() -> None:
    layer = TNNLayer("bij,ipz,jqz->bpq", dict(i=3, j=4, p=2, q=5, z=3), activation=torch.relu, dtype=D)
    x = torch.randn(5, 3, 4, dtype=D)
    y = layer(x)
    ref = torch.relu(torch.einsum("bij,ipz,jqz->bpq", x, *layer.kernels) + layer.bias)
    torch.testing.assert_close(y, ref)
    assert (y >= 0).all()
    y.square().sum().backward()
    for p in layer.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert "relu" in repr(layer)


def test_gradcheck_through_layer() -> None:
    layer = TNNLayer("bshw,sr,rhw,rt->bthw|hw", dict(s=2, r=2, h=2, w=2, t=2), padding=1, dtype=D)
    x = torch.randn(1, 2, 3, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp, *ps: layer(inp), (x, *layer.parameters()))


@pytest.mark.parametrize(
    ("spec", "sizes", "shape", "options"),
    [
        ("bijk,ipz,jqz,krz->bpqr", dict(i=8, j=8, k=8, p=6, q=6, r=6, z=4), (256, 8, 8, 8), {}),
        ("bshw,sr,rqhw,qt->bthw|hw", dict(s=16, r=8, q=8, h=3, w=3, t=16), (64, 16, 12, 12), {}),
    ],
)
def test_init_preserves_variance(spec: str, sizes: dict, shape: tuple, options: dict) -> None:
    variances = []
    for seed in range(4):
        torch.manual_seed(seed)
        layer = TNNLayer(spec, sizes, dtype=D, **options)
        with torch.no_grad():
            variances.append(layer(torch.randn(shape, dtype=D)).var().item())
    mean = sum(variances) / len(variances)
    assert 0.7 < mean < 1.3, variances
    torch.manual_seed(0)
    relu_layer = TNNLayer(spec, sizes, dtype=D, gain=math.sqrt(2.0))
    with torch.no_grad():
        out = relu_layer(torch.randn(shape, dtype=D))
    assert 1.3 < out.var().item() < 2.8


def test_state_dict_pickle_and_deepcopy_roundtrip() -> None:
    sizes = dict(i=3, j=4, p=2, q=3)
    layer = TNNLayer("bij,ip,jq->bpq", sizes, dtype=D)
    x = torch.randn(2, 3, 4, dtype=D)
    y = layer(x)
    assert set(layer.state_dict()) == {"kernels.0", "kernels.1", "bias"}
    other = TNNLayer("bij,ip,jq->bpq", sizes, dtype=D)
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(x), y)
    buf = io.BytesIO()
    torch.save(layer, buf)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._plans == {}
    torch.testing.assert_close(clone(x), y)
    torch.testing.assert_close(copy.deepcopy(layer)(x), y)


def test_reset_parameters_is_reproducible_with_generator() -> None:
    layer = TNNLayer("bij,ip,jq->bpq", dict(i=3, j=4, p=2, q=3), dtype=D)
    layer.reset_parameters(torch.Generator().manual_seed(1))
    first = [k.detach().clone() for k in layer.kernels]
    layer.reset_parameters(torch.Generator().manual_seed(1))
    for a, b in zip(first, layer.kernels, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("spec", "sizes", "kwargs", "exc", "match"),
    [
        ("bi->b", dict(i=2), {}, ValueError, "at least one kernel"),
        ("bi,ij->bj", dict(i=2), {}, ValueError, "lacks index 'j'"),
        ("bi,ij->bj", dict(i=2, j=3, k=4), {}, ValueError, "'k' which does not occur"),
        ("bi,ij->bj", dict(i=2, j=0), {}, ValueError, "positive int"),
        ("bi,ij->bj", dict(i=2, j=True), {}, ValueError, "positive int"),
        ("bi,ij->bj", [("i", 2)], {}, TypeError, "mapping"),
        ("bik,ij->bj", dict(i=2, j=3), {}, ValueError, "summed out of the input only"),
        ("bi,ij->bj", dict(i=2, j=3), {"bias": "i"}, ValueError, "bias index 'i'"),
        ("bshw,tshw->bthw|hw", dict(s=2, t=3, h=3, w=3), {"bias": "th"}, ValueError, "bias index 'h'"),
        ("bi,ij->bj", dict(i=2, j=3), {"bias": 3}, TypeError, "bias must be"),
        ("bi,ij->bj", dict(i=2, j=3), {"activation": 3}, TypeError, "activation"),
        ("bi,ij->bj", dict(i=2, j=3), {"gain": -1.0}, ValueError, "gain"),
        ("bi,i%->bj", dict(i=2), {}, ValueError, "invalid character"),
    ],
)
def test_construction_errors(spec: str, sizes: object, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        TNNLayer(spec, sizes, **kwargs)


def test_call_errors_name_the_problem() -> None:
    layer = TNNLayer("bij,ip,jq->bpq", dict(i=3, j=4, p=2, q=3))
    with pytest.raises(ValueError, match="3 indices"):
        layer(torch.randn(2, 3))
    with pytest.raises(ValueError, match="input index 'j' has size 5"):
        layer(torch.randn(2, 3, 5))
    conv = TNNLayer("bshw,tshw->bthw|hw", dict(s=2, t=3, h=5, w=5))
    with pytest.raises(ValueError):
        conv(torch.randn(1, 2, 3, 3))  # the kernel is larger than the unpadded input


@st.composite
def _contraction_layers(draw: st.DrawFn) -> tuple[str, dict[str, int], tuple[int, ...]]:
    """Random input term (batch b first) and 1-3 kernels over a small alphabet, with an explicit output."""
    letters = "ijklmn"
    sizes = {c: draw(st.integers(1, 3)) for c in letters}
    x_term = "b" + "".join(draw(st.permutations(letters))[: draw(st.integers(1, 3))])
    kernels = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 3))
        kernels.append("".join(draw(st.permutations(letters))[:k]))
    used = set(x_term + "".join(kernels)) - {"b"}
    kept = [c for c in sorted(used) if draw(st.booleans())]
    out = "b" + "".join(kept)
    spec = ",".join([x_term, *kernels]) + "->" + out
    kernel_letters = set("".join(kernels))
    layer_sizes = {c: sizes[c] for c in used if c in kernel_letters or (c in x_term and c not in out)}
    shape = (2, *(sizes[c] for c in x_term[1:]))
    return spec, layer_sizes, shape


@settings(max_examples=30, deadline=None)
@given(_contraction_layers())
def test_random_contraction_layers_match_einsum(case: tuple[str, dict[str, int], tuple[int, ...]]) -> None:
    spec, sizes, shape = case
    layer = TNNLayer(spec, sizes, dtype=D)
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.normal_()
    x = torch.randn(shape, dtype=D)
    ref = torch.einsum(spec, x, *layer.kernels)
    out = spec.split("->")[1]
    if layer.bias is not None:
        view = [layer.sizes[c] if c in layer.bias_indices else 1 for c in out]
        ref = ref + layer.bias.reshape(view)  # bias letters are in output order by default
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)
