"""Data-fitted initialisation (``tnn.train.calibrate``) on a small random network, every format."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tnn
from tnn.compression import compress
from tnn.nn import TensorialConv2d, TensorialLinear
from tnn.train.calibrate import (
    _flat_weight,
    _objective,
    _patches,
    anchored,
    bn_scale,
    fit_layers,
    layer_statistics,
)

RATE = 0.2


class SmallNet(nn.Module):
    """conv-bn-relu, conv-bn-relu, pool, linear; random weights and random BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 4).flatten(1))


def _teacher() -> nn.Module:
    torch.manual_seed(0)
    net = SmallNet()
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_(0.0, 0.2)
            bn.running_mean.normal_(0.0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _inputs(n: int = 64) -> torch.Tensor:
    return torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def _output_error(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        y = teacher(x)
        return float((student(x) - y).norm() / y.norm())


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fmt", tnn.FORMATS)
def test_data_fit_beats_kernel_fit_and_touches_only_tensorial_layers(fmt: str) -> None:
    teacher = _teacher()
    x = _inputs()
    student = compress(teacher, fmt, RATE, classifier_rank_floor=False).eval()  # fc too
    tensorial = [n for n, m in student.named_modules() if isinstance(m, (TensorialConv2d, TensorialLinear))]
    assert tensorial == ["conv1", "conv2", "fc"]
    teacher_before, student_before = _state(teacher), _state(student)
    kernel_error = _output_error(student, teacher, x)

    report = fit_layers(student, teacher, x, steps=50, lr=1e-2, batch_size=32)

    data_error = _output_error(student, teacher, x)
    assert data_error < 0.9 * kernel_error, (fmt, kernel_error, data_error)
    assert [r["name"] for r in report] == tensorial
    assert all(r["rel_error_after"] <= r["rel_error_before"] for r in report)
    assert any(r["rel_error_after"] < 0.95 * r["rel_error_before"] for r in report)
    for k, v in _state(teacher).items():
        assert torch.equal(v, teacher_before[k]), k
    after = _state(student)
    outside = [k for k in after if not any(k.startswith(n + ".") for n in tensorial)]
    assert outside  # the BatchNorms
    for k in outside:
        assert torch.equal(after[k], student_before[k]), k
    assert not teacher.training and not student.training


def test_modes_restored_and_bad_arguments() -> None:
    teacher, x = _teacher(), _inputs(8)
    student = compress(teacher, "cp", RATE)
    student.train()
    fit_layers(student, teacher, x, steps=1)
    assert student.training and not teacher.training
    with pytest.raises(ValueError, match="target"):
        fit_layers(student, teacher, x, target="kernel")
    with pytest.raises(ValueError, match="weighting"):
        fit_layers(student, teacher, x, weighting="gamma")


@pytest.mark.parametrize("name", ["conv2", "fc"])
def test_statistics_objective_equals_direct_error(name: str) -> None:
    """The Gram-matrix objective is the squared output error of the layer on its real input."""
    teacher, x = _teacher(), _inputs(16)
    student = compress(teacher, "tt", RATE).eval()
    stats = layer_statistics(student, teacher, name, x, batch_size=5)
    layer, dense = student.get_submodule(name), teacher.get_submodule(name)
    inputs: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    with torch.no_grad():
        student(x)
        handle.remove()
        got, want = layer(inputs[0]).double(), _teacher_output(teacher, dense, x).double()
    direct = float((got - want).pow(2).sum() / want.pow(2).sum())
    w = _flat_weight(layer)
    ones = torch.ones(w.shape[0], dtype=torch.float64)
    assert float(_objective(w, stats, ones)) == pytest.approx(direct, rel=1e-4)
    assert stats.count == _patches(layer, inputs[0]).shape[1]


def _teacher_output(teacher: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, a, o: out.append(o))
    teacher(x)
    handle.remove()
    return out[0]


def test_anchored_objective_adds_the_ridge_term_exactly() -> None:
    """E_ridge(W_hat) * norm = E(W_hat) * norm0 + mu ||W_hat - W||^2 with mu = lambda tr(G) / K."""
    teacher, x = _teacher(), _inputs(16)
    student = compress(teacher, "cp", RATE).eval()
    stats = layer_statistics(student, teacher, "conv2", x)
    w_teacher, w_student = _flat_weight(teacher.conv2), _flat_weight(student.conv2)
    ones = torch.ones(w_teacher.shape[0], dtype=torch.float64)
    ridge = anchored(stats, w_teacher, 0.1)
    mu = 0.1 * float(torch.diagonal(stats.gram).sum()) / stats.gram.shape[0]
    plain = float(_objective(w_student, stats, ones)) * float(stats.yy.sum())
    want = plain + mu * float((w_student - w_teacher).pow(2).sum())
    assert float(_objective(w_student, ridge, ones)) * float(ridge.yy.sum()) == pytest.approx(want, rel=1e-9)
    assert anchored(stats, w_teacher, 0.0) is stats
    with pytest.raises(ValueError, match="ridge"):
        anchored(stats, w_teacher, -1.0)
    with pytest.raises(ValueError, match="does not match"):
        anchored(stats, w_teacher[:, :-1], 0.1)


def test_ridge_keeps_the_fitted_kernel_closer_to_the_teacher() -> None:
    teacher, x = _teacher(), _inputs(32)
    dists = {}
    for ridge in (0.0, 1.0):
        student = compress(teacher, "cp", RATE).eval()
        fit_layers(student, teacher, x, steps=100, lr=3e-2, ridge=ridge)
        dists[ridge] = float((_flat_weight(student.conv2) - _flat_weight(teacher.conv2)).norm())
    assert dists[1.0] < dists[0.0]


def test_dense_target_is_teacher_kernel_on_student_input() -> None:
    teacher, x = _teacher(), _inputs(16)
    student = compress(teacher, "rcp", RATE).eval()
    stats = layer_statistics(student, teacher, "conv2", x, target="dense")
    ones = torch.ones(16, dtype=torch.float64)
    assert float(_objective(_flat_weight(teacher.conv2), stats, ones)) == pytest.approx(0.0, abs=1e-9)
    assert float(_objective(_flat_weight(student.conv2), stats, ones)) > 1e-3


def test_bn_scale_follows_conv_names() -> None:
    teacher = _teacher()
    scale = bn_scale(teacher, "conv2")
    want = teacher.bn2.weight.abs() / torch.sqrt(teacher.bn2.running_var + teacher.bn2.eps)
    assert torch.allclose(scale, want.double())
    assert bn_scale(teacher, "fc") is None


def test_column_subsampling_keeps_about_the_asked_number() -> None:
    teacher, x = _teacher(), _inputs(16)
    student = compress(teacher, "cp", RATE).eval()
    full = layer_statistics(student, teacher, "conv1", x, batch_size=4)
    sub = layer_statistics(student, teacher, "conv1", x, batch_size=4, columns=200)
    assert full.count == 16 * 64 and sub.count == 200
    ratio = float(sub.gram.trace() / full.gram.trace()) * full.count / sub.count
    assert 0.5 < ratio < 2.0
