"""load_pretrained: safe loading, prefix stripping, key/shape checks, and the public ResNet-32 (92.63%)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tnn.data import get_dataset, loader
from tnn.models import get_model, load_pretrained


def _randomised(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.randn_like(v, dtype=torch.float32).to(v.dtype) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model"])
def test_roundtrip_with_module_prefix(tmp_path: Path, wrap: str) -> None:
    source = get_model("resnet20")
    state = {
        f"module.{k}": v for k, v in _randomised(source).items() if not k.endswith("num_batches_tracked")
    }
    obj = state if wrap == "raw" else {wrap: state, "best_prec1": 90.0}
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    target = get_model("resnet20")
    assert load_pretrained(target, path) is target
    got = target.state_dict()
    for key, value in state.items():
        assert torch.equal(got[key.removeprefix("module.")], value)


def test_truncated_and_garbage_checkpoints_name_the_file(tmp_path: Path) -> None:
    model = get_model("lenet5")
    path = tmp_path / "lenet.pt"
    torch.save(model.state_dict(), path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_pretrained(get_model("lenet5"), truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match="garbage.pt"):
        load_pretrained(get_model("lenet5"), garbage)
    with pytest.raises(ValueError, match="missing.pt"):
        load_pretrained(get_model("lenet5"), tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):  # pragma: no cover - never executed under weights_only
        import os

        return (os.system, ("echo pwned",))


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": _Evil()}, path)
    with pytest.raises(ValueError, match="evil.pt"):
        load_pretrained(get_model("lenet5"), path)


def test_checkpoint_for_another_model(tmp_path: Path) -> None:
    path = tmp_path / "r20.pt"
    torch.save(get_model("resnet20").state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit model resnet32: missing \[layer1\.3\.conv1\.weight"):
        load_pretrained(get_model("resnet32"), path)
    with pytest.raises(ValueError, match=r"does not fit model resnet20: unexpected \[layer1\.3"):
        torch.save(get_model("resnet32").state_dict(), path)
        load_pretrained(get_model("resnet20"), path)
    torch.save(get_model("lenet5", num_classes=7).state_dict(), path)
    mismatch = r"shape mismatch \[fc2\.weight: checkpoint \(7, 500\) vs model \(10, 500\)"
    with pytest.raises(ValueError, match=mismatch):
        load_pretrained(get_model("lenet5"), path)


def test_real_checkpoint_does_not_fit_resnet20(resnet32_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="does not fit model resnet20: unexpected"):
        load_pretrained(get_model("resnet20"), resnet32_checkpoint)


@pytest.mark.slow
def test_pretrained_resnet32_gives_9263_of_10000(resnet32_checkpoint: Path, datasets_dir: Path) -> None:
    model = load_pretrained(get_model("resnet32"), resnet32_checkpoint).eval()
    test = get_dataset("cifar10", "test", data_dir=datasets_dir / "cifar10", model="resnet32")
    correct = 0
    with torch.inference_mode():
        for x, y in loader(test, 500):
            correct += int((model(x).argmax(1) == y).sum())
    assert correct == 9263
