"""Architectures of tnn.models: parameter counts, shapes, key names, stages, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tnn.models import MODELS, get_model, stage_modules, stages


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_parameter_count_and_shape() -> None:
    model = get_model("lenet5")
    assert n_params(model) == 431_080
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("depth", "expected"), [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)]
)
def test_cifar_resnet_parameter_counts_and_shape(depth: int, expected: int) -> None:
    # 0.27M / 0.46M / 0.66M / 0.85M / 1.7M as in He et al. (2016), Table 6
    model = get_model(f"resnet{depth}")
    assert n_params(model) == expected
    model.eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_cifar_resnet32_state_dict_keys_match_checkpoint_listing() -> None:
    keys = {k for k in get_model("resnet32").state_dict() if not k.endswith("num_batches_tracked")}
    expected = {"conv1.weight", "linear.weight", "linear.bias"}
    expected |= {f"bn1.{s}" for s in ("weight", "bias", "running_mean", "running_var")}
    for layer in (1, 2, 3):
        for block in range(5):
            for conv in (1, 2):
                p = f"layer{layer}.{block}."
                expected.add(f"{p}conv{conv}.weight")
                expected |= {f"{p}bn{conv}.{s}" for s in ("weight", "bias", "running_mean", "running_var")}
    assert keys == expected


def test_option_a_shortcut_is_subsample_and_zero_pad() -> None:
    block = get_model("resnet20").layer2[0]
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0


def _torchvision_resnet50_keys() -> set[str]:
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", "fc.weight", "fc.bias", *(f"bn1.{s}" for s in bn)}
    for layer, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True):
        for b in range(blocks):
            p = f"layer{layer}.{b}."
            for i in (1, 2, 3):
                keys.add(f"{p}conv{i}.weight")
                keys |= {f"{p}bn{i}.{s}" for s in bn}
            if b == 0:
                keys.add(f"{p}downsample.0.weight")
                keys |= {f"{p}downsample.1.{s}" for s in bn}
    return keys


def test_resnet50_torchvision_keys_count_and_shape() -> None:
    model = get_model("resnet50")
    state = model.state_dict()
    assert set(state) == _torchvision_resnet50_keys()
    assert n_params(model) == 25_557_032
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # v1.5: stride on the 3x3 conv
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    assert state["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)
    model.eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_get_model_errors() -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg16'.*lenet5.*resnet50"):
        get_model("vgg16")
    with pytest.raises(TypeError):
        get_model(32)  # type: ignore[arg-type]
    from tnn.models import cifar_resnet

    with pytest.raises(ValueError, match="6n \\+ 2.*33"):
        cifar_resnet(33)


def test_get_model_num_classes() -> None:
    assert get_model("resnet20", num_classes=100)(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    assert get_model("lenet5", num_classes=7)(torch.randn(1, 1, 28, 28)).shape == (1, 7)


@pytest.mark.parametrize(
    ("name", "boundaries", "shape"),
    [
        ("lenet5", ["conv1", "conv2", "fc1", "fc2"], (2, 1, 28, 28)),
        ("resnet20", ["layer1", "layer2", "layer3", "linear"], (2, 3, 32, 32)),
        ("resnet50", ["layer1", "layer2", "layer3", "layer4", "fc"], (1, 3, 64, 64)),
    ],
)
def test_stages_partition_parameters_and_hook_in_order(
    name: str, boundaries: list[str], shape: tuple
) -> None:
    model = get_model(name).eval()
    assert stages(model) == boundaries
    # every parameter belongs to exactly one stage
    owned: list[str] = []
    for stage in stage_modules(model):
        for module in stage:
            owned += [f"{module}.{p}" for p, _ in model.get_submodule(module).named_parameters()]
    assert sorted(owned) == sorted(n for n, _ in model.named_parameters())
    # the boundaries fire in forward order and the last one is the output
    seen: list[tuple[str, torch.Tensor]] = []
    handles = [
        model.get_submodule(b).register_forward_hook(lambda m, i, o, b=b: seen.append((b, o)))
        for b in boundaries
    ]
    with torch.no_grad():
        out = model(torch.randn(*shape))
    for h in handles:
        h.remove()
    assert [b for b, _ in seen] == boundaries
    assert torch.equal(seen[-1][1], out)


def test_stages_reject_foreign_models() -> None:
    with pytest.raises(TypeError, match="stage_layout"):
        stages(nn.Linear(2, 2))


def test_models_tuple() -> None:
    assert MODELS == ("lenet5", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet50")
    for name in MODELS:
        assert get_model(name).arch == name
