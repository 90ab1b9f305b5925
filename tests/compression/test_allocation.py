"""Rank allocation under one parameter budget: the greedy knapsack, the error curves, ``compress``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tnn
from tnn.compression.allocation import MAX_RATIO, CurvePoint, allocate_rates, error_curve


def _curve(*points: tuple[int, float]) -> list[CurvePoint]:
    return [CurvePoint(rate=p / 1000, params=p, error=e) for p, e in points]


def test_allocate_rates_takes_the_best_error_per_parameter_first() -> None:
    # "a" gains 0.5 for 10 parameters, then 0.01 for 10 more; "b" gains 0.3 for 10
    curves = {"a": _curve((10, 1.0), (20, 0.5), (30, 0.49)), "b": _curve((10, 1.0), (20, 0.7))}
    assert {k: p.params for k, p in allocate_rates(curves, 40).items()} == {"a": 20, "b": 20}
    assert {k: p.params for k, p in allocate_rates(curves, 30).items()} == {"a": 20, "b": 10}
    assert {k: p.params for k, p in allocate_rates(curves, 50).items()} == {"a": 30, "b": 20}
    assert {k: p.params for k, p in allocate_rates(curves, 25).items()} == {"a": 10, "b": 10}


def test_allocate_rates_skips_points_off_the_convex_hull_and_empty_curves() -> None:
    # (20, 0.9) is above the chord from (10, 1.0) to (30, 0.2): going straight to 30 is better per parameter;
    # (40, 0.3) is no improvement on (30, 0.2)
    curves = {"a": _curve((10, 1.0), (20, 0.9), (30, 0.2), (40, 0.3)), "dense": []}
    assert allocate_rates(curves, 30) == {"a": CurvePoint(0.03, 30, 0.2)}
    with pytest.raises(ValueError, match="more than the budget of 9"):
        allocate_rates(curves, 9)


def test_error_curve_leaves_out_infeasible_rates() -> None:
    conv = nn.Conv2d(8, 8, 3, bias=False)

    def build(rate: float) -> nn.Module | None:
        if rate < 0.1:
            return None
        return tnn.nn.TensorialConv2d.from_dense(conv, format="svd", rate=rate)

    points = error_curve(build, conv.weight, [0.05, 0.2, 0.5, 0.2])
    assert [p.rate for p in points] == [0.2, 0.5]
    assert points[0].params < points[1].params and points[0].error > points[1].error >= 0.0
    layer = build(0.5)
    assert layer is not None
    ref = ((layer.dense_weight() - conv.weight).norm() / conv.weight.norm()).item() ** 2
    assert points[1].error == pytest.approx(ref, rel=1e-5)


class _Two(nn.Module):
    """Two convolutions of one shape: ``easy`` has a rank-2 kernel (in the svd format's (S kh) x (T kw)
    matricization), ``hard`` a random one."""

    def __init__(self) -> None:
        super().__init__()
        self.easy = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.hard = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(16, 2, 3, generator=g), torch.randn(2, 16, 3, generator=g)
        with torch.no_grad():
            self.easy.weight.copy_(torch.einsum("srh,rtw->tshw", a, b) / 4)
            self.hard.weight.copy_(torch.randn(16, 16, 3, 3, generator=g) / 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hard(self.easy(x))


def _sq_error(small: nn.Module, dense: nn.Module) -> float:
    total = 0.0
    for name in ("easy", "hard"):
        w = getattr(dense, name).weight
        total += (((getattr(small, name).dense_weight() - w).norm() / w.norm()) ** 2).item()
    return total


def test_error_allocation_moves_parameters_to_the_layer_that_needs_them() -> None:
    model, rate = _Two(), 0.2
    uniform = tnn.compress(model, format="svd", rate=rate)
    spread = tnn.compress(model, format="svd", rate=rate, allocation="error")
    report = spread.tnn_report
    assert report.allocation == "error" and uniform.tnn_report.allocation == "uniform"
    rows = {r.name: r for r in report.layers}
    assert rows["easy"].params_after < rows["hard"].params_after
    assert rows["easy"].rate >= rate / MAX_RATIO and rows["hard"].rate <= rate * MAX_RATIO
    # one budget for both layers, and a smaller summed error than every layer at the rate
    assert report.params_after <= rate * report.params_before
    assert _sq_error(spread, model) < _sq_error(uniform, model)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(spread(x), spread.hard.to_dense()(spread.easy.to_dense()(x)))
    # the report rebuilds the architecture
    rebuilt = tnn.compress(_Two(), plan=report.to_dict())
    rebuilt.load_state_dict(spread.state_dict())
    torch.testing.assert_close(rebuilt(x), spread(x))
    assert type(report).from_dict(report.to_dict()).allocation == "error"


def test_compress_refuses_an_unknown_allocation() -> None:
    with pytest.raises(ValueError, match=r"allocation must be one of \['uniform', 'error'\], got 'greedy'"):
        tnn.compress(_Two(), format="svd", rate=0.2, allocation="greedy")
