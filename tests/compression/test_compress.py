"""tnn.compress on standard architectures: replacement, report, dense fallback, exactness, rebuild."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tnn
from tnn.compression import CompressionReport, LayerReport, dense_flops
from tnn.formats import get_format
from tnn.nn import TensorialConv2d, TensorialLinear


# ---------------------------------------------------------------- models built from standard modules
class OptionA(nn.Module):
    """Option-A shortcut: stride-2 subsampling plus zero channel padding (no weights)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, option: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut: nn.Module = nn.Identity()
        elif option == "A":
            self.shortcut = OptionA(cout)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.layer1 = Basic(8, 8, 1, "A")
        self.layer2 = Basic(8, 16, 2, "A")  # option-A shortcut
        self.layer3 = Basic(16, 24, 2, "B")  # projection shortcut
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(F.relu(self.conv1(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Bottleneck(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(16, 4, 1, bias=False)
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.expand = nn.Conv2d(4, 16, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.expand(F.relu(self.conv(F.relu(self.reduce(x)))))) + x)


class DepthwiseSeparable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.pointwise = nn.Conv2d(16, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(F.relu(self.depthwise(x)))


class DilatedGrouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grouped(F.relu(self.dilated(x)))


def mlp_head_net() -> nn.Module:
    return nn.Sequential(
        Bottleneck(), DepthwiseSeparable(), DilatedGrouped(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10)),
    )


def _eligible(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


MODELS = {
    "tiny_resnet": (TinyResNet, (3, 8, 8)),
    "blocks_mlp": (mlp_head_net, (16, 8, 8)),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fmt", ["rtt", "cp", "tk"])
def test_compress_replaces_layers_and_leaves_original_untouched(name: str, fmt: str) -> None:
    build, shape = MODELS[name]
    model = build().eval()
    before = copy.deepcopy(model.state_dict())
    small = tnn.compress(model, format=fmt, rate=0.3, input_shape=shape, init="random")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    names = _eligible(model)
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) for n, m in model.named_modules() if n in names)
    report = small.tnn_report
    assert [row.name for row in report.layers] == _eligible(model)
    modules = dict(small.named_modules())
    for row in report.layers:
        layer = modules[row.name]
        if row.status == "compressed":
            assert isinstance(layer, TensorialConv2d if row.kind == "Conv2d" else TensorialLinear)
            assert row.format == fmt and layer.format == fmt
            assert row.params_after == sum(p.numel() for p in layer.parameters())
            assert row.params_after <= row.params_before
            assert row.flops_after is not None and row.flops_after > 0
        else:
            assert type(layer) in (nn.Conv2d, nn.Linear) and row.reason
        dense = model.get_submodule(row.name)
        assert row.flops_before == dense_flops(dense, _input_of(model, row.name, shape))
    assert report.compressed, "something must be compressed"
    assert report.model_params_after == sum(p.numel() for p in small.parameters())
    assert report.achieved_rate < 0.6
    x = torch.randn(2, *shape)
    assert small(x).shape == model(x).shape
    table = report.table()
    assert all(row.name in table for row in report.layers) and "total" in table


def _input_of(model: nn.Module, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    seen = {}

    def hook(_m: nn.Module, args: tuple) -> None:
        seen.setdefault("s", args[0].shape[1:])

    h = model.get_submodule(name).register_forward_pre_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    h.remove()
    return tuple(seen["s"])


def test_depthwise_stays_dense_and_is_reported() -> None:
    model = mlp_head_net()
    small = tnn.compress(model, format="rtt", rate=0.1, init="random")
    rows = {r.name: r for r in small.tnn_report.layers}
    dw = rows["1.depthwise"]
    assert dw.status == "dense" and "smallest possible rate" in dw.reason
    assert type(small.get_submodule("1.depthwise")) is nn.Conv2d
    assert dw.params_after == dw.params_before
    assert "1.depthwise" in small.tnn_report.table()
    assert small.tnn_report.to_dict()["n_dense"] >= 1


def _exact_plan(model: nn.Module, fmt: str) -> list[LayerReport]:
    """Rows putting every layer in ``fmt`` at its maximal ranks (an exact representation)."""
    f = get_format(fmt)
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            geo = f.geometry(m.out_channels, m.in_channels, m.kernel_size, m.groups)
        elif isinstance(m, nn.Linear):
            geo = f.geometry(m.out_features, m.in_features)
        else:
            continue
        n = sum(p.numel() for p in m.parameters())
        ranks = list(f.max_ranks(geo))
        rows.append(LayerReport(name, type(m).__name__, tuple(m.weight.shape), fmt, ranks, n, n))
    return rows


@pytest.mark.parametrize(("fmt", "name"), [("tk", "tiny_resnet"), ("rtt", "tiny_resnet"),
                                           ("rtt", "blocks_mlp"), ("tt", "blocks_mlp")])
def test_exact_ranks_reproduce_the_original(fmt: str, name: str) -> None:
    torch.manual_seed(0)
    build, shape = MODELS[name]
    model = build().double().eval()
    small = tnn.compress(model, plan=_exact_plan(model, fmt), init="decompose").eval()
    assert all(r.status == "compressed" for r in small.tnn_report.layers)
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-7, atol=1e-9)


def test_lenet5_and_rebuild_from_plan(tmp_path) -> None:
    from tnn.models import get_model

    torch.manual_seed(0)
    model = get_model("lenet5").eval()
    small = tnn.compress(model, format="rcp", rate=0.1, exclude=["conv1"], init="random").eval()
    report = small.tnn_report
    assert {r.name: r.status for r in report.layers}["conv1"] == "skipped"
    assert isinstance(small.fc1, TensorialLinear) and isinstance(small.conv2, TensorialConv2d)
    assert 0.08 < report.achieved_rate < 0.12
    # save as a checkpoint would: plain data only, then rebuild without decomposing
    plan = report.to_dict()
    rebuilt = tnn.compress(get_model("lenet5"), plan=plan)
    rebuilt.load_state_dict(small.state_dict())
    rebuilt.eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), small(x))
    assert CompressionReport.from_dict(plan).plan() == report.plan()


def test_include_exclude_patterns() -> None:
    model = TinyResNet()
    small = tnn.compress(model, format="tk", rate=0.5, include=["layer*"], exclude=["*.shortcut.*"],
                         init="random")
    status = {r.name: r.status for r in small.tnn_report.layers}
    assert status["conv1"] == "skipped" and status["fc"] == "skipped"
    assert status["layer3.shortcut.0"] == "skipped"
    assert status["layer2.conv1"] == "compressed"


def test_decompose_init_approximates_pretrained_weights() -> None:
    """init='decompose' starts from the pretrained kernels: their reconstruction beats a random init."""
    torch.manual_seed(0)
    model = TinyResNet().eval()
    for init, bound in (("decompose", 0.9), ("random", None)):
        small = tnn.compress(model, format="tk", rate=0.6, init=init)
        for row in small.tnn_report.compressed:
            with torch.no_grad():
                w = model.get_submodule(row.name).weight
                rel = float((small.get_submodule(row.name).to_dense().weight - w).norm() / w.norm())
            if bound is not None:
                assert rel < bound, row.name
            else:
                assert rel > 0.9, row.name


def test_bad_arguments() -> None:
    model = TinyResNet()
    with pytest.raises(ValueError, match="unknown format 'nope'; valid formats: svd"):
        tnn.compress(model, format="nope")
    for rate in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"rate must be a number in \(0, 1\]"):
            tnn.compress(model, rate=rate)
    with pytest.raises(ValueError, match="init must be one of"):
        tnn.compress(model, init="zeros")
    with pytest.raises(TypeError, match="nn.Module"):
        tnn.compress("resnet")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="glob patterns"):
        tnn.compress(model, include=[1])  # type: ignore[list-item]
    plan = tnn.compress(model, format="tk", rate=0.5, init="random").tnn_report.plan()
    with pytest.raises(ValueError, match="not in the model"):
        tnn.compress(mlp_head_net(), plan=plan)
    plan[0]["shape"] = [1, 2, 3, 4]
    with pytest.raises(ValueError, match="another architecture"):
        tnn.compress(model, plan=plan)


# ------------------------------------------------ shared modules, other convolutions, classifiers
def test_a_shared_module_stays_shared_and_is_counted_once() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    small = tnn.compress(model, format="rtt", rate=0.3)
    assert small[0] is small[2] and isinstance(small[2], TensorialConv2d)
    report = small.tnn_report
    assert [row.name for row in report.layers] == ["0"]
    layer_params = sum(p.numel() for p in small[0].parameters())
    assert report.model_params_after == layer_params == sum(p.numel() for p in small.parameters())
    assert report.model_rate == pytest.approx(report.achieved_rate) and report.model_rate < 0.35
    # rebuilding from the plan shares the layer in the same way
    rebuilt = tnn.compress(model, plan=report)
    assert rebuilt[0] is rebuilt[2]
    rebuilt.load_state_dict(small.state_dict())
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(rebuilt(x), small(x))


@pytest.mark.parametrize("layer", [nn.Conv1d(4, 6, 3), nn.Conv3d(4, 6, 3), nn.ConvTranspose2d(4, 6, 3)])
def test_other_convolutions_are_listed_as_dense_with_the_reason(layer: nn.Module) -> None:
    model = nn.Sequential(layer)
    report = tnn.compress(model, format="rtt", rate=0.3).tnn_report
    (row,) = report.layers
    assert row.status == "dense" and row.kind == type(layer).__name__
    assert "not supported" in row.reason and row.params_after == row.params_before
    assert type(layer).__name__ in report.table()


def test_classifier_with_ranks_below_its_classes_stays_dense() -> None:
    from tnn.models import get_model

    small = tnn.compress(get_model("lenet5"), format="rtt", rate=0.1)
    row = next(r for r in small.tnn_report.layers if r.name == "fc2")
    assert row.status == "dense" and "below its 10 outputs" in row.reason
    assert isinstance(small.fc2, nn.Linear) and isinstance(small.fc1, TensorialLinear)
    # the floor can be turned off, and a rank at or above the classes is compressed
    off = tnn.compress(get_model("lenet5"), format="rtt", rate=0.1, classifier_rank_floor=False)
    assert isinstance(off.fc2, TensorialLinear)
    assert isinstance(tnn.compress(get_model("lenet5"), format="rcp", rate=0.2).fc2, TensorialLinear)
