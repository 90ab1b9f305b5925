"""TensorialLinear against nn.Linear (LeNet-5 and ResNet classifier shapes)."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from tnn.formats import FORMATS, get_format
from tnn.nn import TensorialLinear

SHAPES = {"lenet-fc1": (400, 120), "lenet-fc2": (120, 84), "lenet-fc3": (84, 10), "resnet-fc": (64, 10),
          "resnet50-fc": (2048, 1000)}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_linear_matches_dense(fmt: str, shape: str) -> None:
    fin, fout = SHAPES[shape]
    lin = nn.Linear(fin, fout, dtype=torch.float64)
    rate = 0.02 if fin * fout > 10**6 else 0.2  # keep the big classifier's ranks (and the test) small
    t = TensorialLinear.from_dense(lin, format=fmt, rate=rate, init="random")
    assert t.weight_params <= math.floor(rate * fin * fout + 1e-9)
    assert t.weight_params == get_format(fmt).param_count(t.geometry, t.ranks)
    x = torch.randn(3, 2, fin, dtype=torch.float64)
    expected = t.to_dense()(x)
    assert expected.shape == (3, 2, fout)
    for mode in ("factors", "dense"):
        t.evaluation = mode
        torch.testing.assert_close(t(x), expected, rtol=1e-9, atol=1e-10)
    t.evaluation = "factors"
    t(x).sum().backward()
    for p in t.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_linear_from_dense_error_decreases(fmt: str) -> None:
    als = fmt in ("cp", "rcp", "tr", "rtr")  # slow decompositions: a smaller layer
    lin = nn.Linear(12, 10, dtype=torch.float64) if als else nn.Linear(24, 20, dtype=torch.float64)
    errors = []
    for rate in (0.3, 0.55, 0.9) if als else (0.15, 0.3, 0.6):
        t = TensorialLinear.from_dense(lin, format=fmt, rate=rate)
        weight = lin.weight.detach()
        errors.append(float((t.dense_weight().detach() - weight).norm() / weight.norm()))
        torch.testing.assert_close(t.bias, lin.bias)
    slack = 1e-3 if als else 1e-9
    assert all(b <= a + slack for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0]


def test_linear_exact_at_full_rank_and_roundtrip() -> None:
    lin = nn.Linear(12, 10, dtype=torch.float64)
    t = TensorialLinear.from_dense(lin, format="svd", rank=10)
    torch.testing.assert_close(t.dense_weight(), lin.weight)
    x = torch.randn(5, 12, dtype=torch.float64)
    torch.testing.assert_close(t(x), lin(x))
    state = t.state_dict()
    fresh = TensorialLinear(12, 10, format="svd", rank=10, dtype=torch.float64)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), lin(x))
    torch.testing.assert_close(pickle.loads(pickle.dumps(t))(x), lin(x))
    assert "format='svd'" in repr(t) and "ranks=(10,)" in repr(t)
    assert t.flops((12,)) > 0 and t.flops((7, 12)) > t.flops((12,))


def test_linear_errors() -> None:
    with pytest.raises(ValueError, match="needs at least 2 modes"):
        TensorialLinear(84, 10, format="rtt", rate=0.5, m=1)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        TensorialLinear.from_dense(nn.Conv2d(3, 4, 1), format="cp", rate=0.5)
    t = TensorialLinear(8, 4, format="tk", rate=0.9)
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 8\)"):
        t(torch.randn(3, 9))
    with pytest.raises(ValueError, match="rate must be a finite float"):
        TensorialLinear(8, 4, format="tk", rate=float("nan"))
