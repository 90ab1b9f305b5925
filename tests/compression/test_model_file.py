"""Model files: save_model / load_model round trips (.pt, .safetensors), training checkpoints, foreign
state_dicts, wrong-model errors, and the one rebuild function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tnn.compression import (
    compress,
    compressed_metadata,
    load_model,
    rebuild_model,
    save_model,
)
from tnn.io import CheckpointError, checkpoint_metadata, save_checkpoint
from tnn.models import get_model
from tnn.nn import TensorialConv2d, TensorialLinear

SUFFIXES = (".pt", ".safetensors")


def _outputs_match(a: nn.Module, b: nn.Module) -> None:
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def _perturbed(model: nn.Module) -> nn.Module:
    """``model`` with every parameter and float buffer moved off its initial value (in place)."""
    with torch.no_grad():
        for value in [*model.parameters(), *model.buffers()]:
            if value.is_floating_point():
                value.add_(0.1 * torch.randn_like(value).abs())
    return model


@pytest.fixture(scope="module")
def lenet_compressed() -> dict[str, nn.Module]:
    # perturbed: a rebuild under the same seed must not reproduce the weights without loading them
    torch.manual_seed(0)
    dense = get_model("lenet5").eval()
    return {f: _perturbed(compress(dense, format=f, rate=0.3, init="random")).eval() for f in ("rtt", "cp")}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("fmt", ["rtt", "cp"])
def test_compressed_round_trip_gives_identical_outputs(tmp_path, lenet_compressed, fmt, suffix):
    small = lenet_compressed[fmt]
    path = tmp_path / f"m{suffix}"
    written = save_model(path, small, compressed_metadata("lenet5", small.tnn_report, step=3))
    loaded, meta = load_model(path)
    assert meta == written
    assert meta["model"] == "lenet5" and meta["format"] == fmt and meta["step"] == 3 and meta["plan"]
    assert meta["ranks"] == {r.name: r.ranks for r in small.tnn_report.compressed}
    assert not loaded.training
    assert {TensorialConv2d, TensorialLinear} <= {type(m) for m in loaded.modules()}
    _outputs_match(loaded, small)
    # a freshly rebuilt architecture has other (random) weights: the comparison above can fail
    with pytest.raises(AssertionError):
        _outputs_match(rebuild_model("lenet5", meta), small)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_dense_round_trip_and_metadata_from_the_model(tmp_path, suffix):
    torch.manual_seed(2)
    dense = _perturbed(get_model("lenet5")).eval()
    path = tmp_path / f"dense{suffix}"
    written = save_model(path, dense)
    assert written["model"] == "lenet5" and written.get("plan") is None and written["step"] == 0
    loaded, meta = load_model(path, model_name="lenet5")
    assert meta["model"] == "lenet5"
    _outputs_match(loaded, dense)


def test_file_format_overrides_the_suffix(tmp_path, lenet_compressed):
    small = lenet_compressed["rtt"]
    path = tmp_path / "model.bin"
    save_model(path, small, file_format="safetensors")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_model(path)  # read as a torch.save file by its name
    loaded, _ = load_model(path, file_format="safetensors")
    _outputs_match(loaded, small)
    with pytest.raises(ValueError, match="file_format must be"):
        save_model(path, small, file_format="onnx")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nn.Module"):
        save_model(path, {"w": torch.zeros(1)})  # type: ignore[arg-type]


def test_training_checkpoint_with_optimizer_and_position_loads(tmp_path, lenet_compressed):
    small = lenet_compressed["cp"]
    opt = torch.optim.Adam(small.parameters(), lr=1e-3)
    small.train()(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    opt.zero_grad()
    small.eval()
    meta = checkpoint_metadata(step=5, kind="sequential", stages=["s1"],
                               **compressed_metadata("lenet5", small.tnn_report))
    path = tmp_path / "checkpoint-sequential.pt"
    save_checkpoint(path, {
        "metadata": meta,
        "model": small.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "position": {"phase": 0, "step": 5, "global_step": 5, "phases": ["s1"], "time": 1.0},
        "history": {"steps": [], "phases": []},
    })
    loaded, got = load_model(path, model_name="lenet5")
    assert got["step"] == 5 and got["kind"] == "sequential"
    _outputs_match(loaded, small)


def test_foreign_dense_state_dict_loads(tmp_path):
    torch.manual_seed(3)
    dense = _perturbed(get_model("lenet5")).eval()
    path = tmp_path / "pretrained.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in dense.state_dict().items()}}, path)
    loaded, meta = load_model(path, model_name="lenet5")
    assert meta == {}
    _outputs_match(loaded, dense)
    with pytest.raises(CheckpointError, match=r"pretrained\.pth'? does not name its model"):
        load_model(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_wrong_model_is_a_clear_error(tmp_path, lenet_compressed, suffix):
    small = lenet_compressed["rtt"]
    path = tmp_path / f"lenet{suffix}"
    save_model(path, small)
    with pytest.raises(CheckpointError, match=rf"lenet\{suffix}' holds a 'lenet5' model, not 'resnet20'"):
        load_model(path, model_name="resnet20")
    with pytest.raises(CheckpointError, match="compression plan does not fit the model"):
        load_model(path, model=get_model("resnet20"))


def test_weights_of_another_compression_do_not_fit(tmp_path, lenet_compressed):
    rtt, cp = lenet_compressed["rtt"], lenet_compressed["cp"]
    path = tmp_path / "mixed.pt"
    save_checkpoint(path, {"metadata": checkpoint_metadata(**compressed_metadata("lenet5", rtt.tnn_report)),
                           "model": cp.state_dict()})
    with pytest.raises(CheckpointError, match=r"mixed\.pt' does not fit the compressed model lenet5: "):
        load_model(path)
    other = tmp_path / "resnet20.pt"
    torch.save(get_model("resnet20").state_dict(), other)
    with pytest.raises(ValueError, match="does not fit model lenet5"):
        load_model(other, model_name="lenet5")


def test_rebuild_model_follows_the_plan(lenet_compressed):
    small = lenet_compressed["rtt"]
    meta = compressed_metadata("lenet5", small.tnn_report)
    built = rebuild_model("lenet5", meta)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in small.state_dict().items()
    }
    assert [r.ranks for r in built.tnn_report.compressed] == [r.ranks for r in small.tnn_report.compressed]
    dense = rebuild_model("lenet5", {"model": "lenet5"})
    assert not any(isinstance(m, TensorialConv2d) for m in dense.modules())
    with pytest.raises(CheckpointError, match="does not name its model"):
        rebuild_model(None, meta)
