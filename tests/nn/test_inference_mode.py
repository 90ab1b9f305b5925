"""Inference mode of the tensorial layers: cached kernel, per-shape evaluation choice, exactness."""

from __future__ import annotations

import copy
import pickle
import shutil

import pytest
import torch
from torch import nn

from tnn.formats import FORMATS
from tnn.nn import TensorialConv2d, TensorialLinear, optimize_for_inference

ATOL = 1e-10


def _conv(fmt: str) -> TensorialConv2d:
    torch.manual_seed(0)
    return TensorialConv2d(8, 8, 3, format=fmt, rate=0.3, padding=1, dtype=torch.float64).eval()


def _warm_dense(fmt: str, shape: tuple[int, ...]) -> tuple[TensorialConv2d, torch.Tensor]:
    """A layer forced to the cached-kernel evaluation for ``shape``, called once without autograd."""
    layer = _conv(fmt)
    x = torch.randn(shape, dtype=torch.float64)
    layer.set_inference_mode(x.shape, "dense")
    with torch.no_grad():
        layer(x)
    return layer, x


def _sgd_step(layer: nn.Module, x: torch.Tensor) -> None:
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer.train()
    opt.zero_grad()
    layer(x).square().sum().backward()
    opt.step()
    layer.eval()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["factors", "dense"])
def test_each_inference_mode_equals_dense_reconstruction(fmt, mode):
    layer = _conv(fmt)
    x = torch.randn(3, 8, 6, 5, dtype=torch.float64)
    layer.set_inference_mode(x.shape, mode)
    with torch.no_grad():
        got = layer(x)
        ref = layer.to_dense()(x)
    assert float((got - ref).abs().max()) <= ATOL


@pytest.mark.parametrize("fmt", ["cp", "rtt", "tk"])
def test_cached_kernel_is_reused_and_invalidated_by_an_optimizer_step(fmt):
    layer = _conv(fmt)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    layer.set_inference_mode(x.shape, "dense")
    with torch.no_grad():
        layer(x)
        first = layer._kernel_cache[1]
        layer(x)
        assert layer._kernel_cache[1] is first  # not rebuilt
    _sgd_step(layer, x)
    with torch.no_grad():
        got = layer(x)
        ref = layer.to_dense()(x)
    assert layer._kernel_cache[1] is not first
    assert float((got - ref).abs().max()) <= ATOL
    assert float((first - layer.dense_weight().detach()).abs().max()) > 1e-6  # the step changed the kernel


def test_cache_invalidated_by_load_state_dict_and_in_place_edits():
    layer = _conv("rtt")
    other = _conv("rtt")
    with torch.no_grad():
        for p in other.factors:
            p.mul_(1.5)
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    layer.set_inference_mode(x.shape, "dense")
    with torch.no_grad():
        layer(x)
        layer.load_state_dict(other.state_dict())
        assert float((layer(x) - other.to_dense()(x)).abs().max()) <= ATOL
        layer.factors[0].add_(0.25)
        assert float((layer(x) - layer.to_dense()(x)).abs().max()) <= ATOL


def test_grad_mode_rebuilds_and_differentiates_through_the_factors():
    layer, x = _warm_dense("rtt", (2, 8, 5, 5))
    layer(x).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in layer.factors)


def test_copies_and_pickles_drop_the_cache():
    layer, x = _warm_dense("cp", (1, 8, 4, 4))
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone._kernel_cache is None
        with torch.no_grad():
            assert float((clone(x) - layer(x)).abs().max()) <= ATOL


@pytest.mark.parametrize("fmt", ["tt", "rcp", "svd"])
def test_linear_inference_modes(fmt):
    torch.manual_seed(1)
    layer = TensorialLinear(16, 12, format=fmt, rate=0.4, dtype=torch.float64).eval()
    x = torch.randn(5, 16, dtype=torch.float64)
    for mode in ("factors", "dense"):
        layer.set_inference_mode(x.shape, mode)
        with torch.no_grad():
            assert float((layer(x) - layer.to_dense()(x)).abs().max()) <= ATOL


def test_set_inference_mode_rejects_unknown_mode():
    with pytest.raises(ValueError, match="inference mode"):
        _conv("cp").set_inference_mode((1, 8, 4, 4), "kernel")


def _small_model(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(
        TensorialConv2d(3, 8, 3, format="tk", rate=0.4, padding=1, dtype=dtype),
        nn.ReLU(),
        TensorialConv2d(8, 8, 3, format="rtt", rate=0.3, padding=1, stride=2, dtype=dtype),
        nn.Flatten(),
        TensorialLinear(8 * 3 * 3, 5, format="cp", rate=0.3, dtype=dtype),
    )


def _dense_copy(model: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*[m.to_dense() if hasattr(m, "to_dense") else m for m in model])


@pytest.mark.parametrize("measure", [True, False])
def test_optimize_for_inference_is_exact_for_the_shape_and_others(measure):
    model = _small_model()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    chosen = optimize_for_inference(model, x, measure=measure, reps=2)
    assert set(chosen) == {"0", "2", "4"} and set(chosen.values()) <= {"factors", "dense"}
    assert not model.training
    for batch in (4, 1):
        xb = torch.randn(batch, 3, 6, 6, dtype=torch.float64)
        with torch.no_grad():
            assert float((model(xb) - _dense_copy(model)(xb)).abs().max()) <= ATOL
    _sgd_step(model, x)
    with torch.no_grad():
        assert float((model(x) - _dense_copy(model)(x)).abs().max()) <= ATOL


def test_optimize_for_inference_rejects_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        optimize_for_inference("model", torch.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reps"):
        optimize_for_inference(_small_model(), torch.zeros(1, 3, 6, 6, dtype=torch.float64), reps=0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_torch_compile_with_inference_cache():
    model = _small_model(torch.float32)
    x = torch.randn(2, 3, 6, 6)
    optimize_for_inference(model, x, reps=1)
    with torch.no_grad():
        ref = model(x)
    try:
        compiled = torch.compile(model)
        with torch.no_grad():
            got = compiled(x)
    except Exception as exc:  # no working inductor toolchain here
        pytest.skip(f"torch.compile unavailable: {type(exc).__name__}")
    assert float((got - ref).abs().max()) <= 1e-5
    _sgd_step(model, x)
    with torch.no_grad():
        assert float((compiled(x) - _dense_copy(model)(x)).abs().max()) <= 1e-4


def test_inference_mode_reports_the_forced_then_the_cost_model_choice():
    layer = _conv("rcp")
    shape = (2, 8, 6, 6)
    default = layer.plan(shape).inference_mode
    other = "dense" if default == "factors" else "factors"
    assert layer.inference_mode(shape) == default
    layer.set_inference_mode(shape, other)
    assert layer.inference_mode(shape) == other
    assert layer.inference_mode((3, 8, 6, 6)) == layer.plan((3, 8, 6, 6)).inference_mode  # per shape
    layer.set_inference_mode(shape, None)
    assert layer.inference_mode(shape) == default
    layer.evaluation = "factors"
    assert layer.inference_mode(shape) == "factors"
