"""Deployment: safetensors, ONNX in onnxruntime, ``torch.compile``, ``tnn export``.

The references are the PyTorch forward passes of the same modules; ONNX outputs must agree within 1e-4
(max abs difference), safetensors round trips exactly.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tnn.cli.main import main as tnn_main
from tnn.compression import compress
from tnn.export import (
    export_onnx,
    load_safetensors,
    read_safetensors_metadata,
    run_onnx,
    save_safetensors,
)
from tnn.formats import FORMATS
from tnn.io import CheckpointError, save_checkpoint
from tnn.models import get_model
from tnn.nn import TensorialConv2d, TensorialLinear

ATOL = 1e-4

# the ONNX exporter imports torch.jit helpers that warn about their own deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class AllFormats(nn.Module):
    """One small tensorial conv + linear per format, all outputs returned: one export tests every format."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {f: TensorialConv2d(4, 6, 3, format=f, rate=0.6, stride=(1, 2), padding=1) for f in FORMATS}
        )
        self.linears = nn.ModuleDict({f: TensorialLinear(16, 12, format=f, rate=0.6) for f in FORMATS})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = x[:, :, :2, :2].reshape(x.shape[0], 16)
        return tuple(self.convs[f](x) for f in FORMATS) + tuple(self.linears[f](flat) for f in FORMATS)


@pytest.fixture(scope="module")
def lenet_compressed() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    dense = get_model("lenet5").eval()
    return {f: compress(dense, format=f, rate=0.3, init="random").eval() for f in FORMATS}


# ------------------------------------------------------------------ safetensors
@pytest.mark.parametrize("fmt", FORMATS)
def test_safetensors_round_trip_rebuilds_each_format(tmp_path, lenet_compressed, fmt):
    small = lenet_compressed[fmt]
    path = tmp_path / "m.safetensors"
    written = save_safetensors(path, small, {"step": 7})
    loaded, meta = load_safetensors(path, expect_model="lenet5")
    assert meta == written
    assert meta["model"] == "lenet5" and meta["format"] == fmt and meta["step"] == 7
    assert meta["tnn_version"] and meta["ranks"] == {r.name: r.ranks for r in small.tnn_report.compressed}
    ref = small.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    kinds = {type(m).__name__ for m in loaded.modules()}
    assert {"TensorialConv2d", "TensorialLinear"} <= kinds
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))


def test_safetensors_dense_model_and_explicit_architecture(tmp_path):
    dense = get_model("lenet5").eval()
    path = tmp_path / "dense.safetensors"
    save_safetensors(path, dense)
    assert read_safetensors_metadata(path).get("plan") is None
    loaded, meta = load_safetensors(path, model=get_model("lenet5"))
    assert meta["model"] == "lenet5"
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), dense(x))


def test_safetensors_refuses_other_model_truncation_and_corruption(tmp_path, lenet_compressed):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, lenet_compressed["rtt"])
    with pytest.raises(CheckpointError, match="'lenet5' model, not 'resnet20'"):
        load_safetensors(path, expect_model="resnet20")
    with pytest.raises(CheckpointError, match="plan does not fit|does not fit"):
        load_safetensors(path, model=get_model("resnet20"))
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_safetensors(cut)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_safetensors(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="nn.Module"):
        save_safetensors(tmp_path / "x.safetensors", {"a": torch.zeros(1)})  # type: ignore[arg-type]


# ------------------------------------------------------------------ ONNX
def test_onnx_every_format_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = AllFormats().eval()
    x = torch.randn(2, 4, 7, 8)
    result = export_onnx(model, tmp_path / "all.onnx", x)
    assert result.max_abs_diff is not None and result.max_abs_diff <= ATOL
    x2 = torch.randn(2, 4, 7, 8)
    got = run_onnx(tmp_path / "all.onnx", x2)
    with torch.no_grad():
        ref = model(x2)
    names = [f"conv/{f}" for f in FORMATS] + [f"linear/{f}" for f in FORMATS]
    assert len(got) == len(ref) == len(names)
    for name, g, r in zip(names, got, ref, strict=True):
        assert g.shape == r.shape, name
        assert float((g - r).abs().max()) <= ATOL, name


def test_export_onnx_rejects_bad_arguments(tmp_path):
    layer = TensorialLinear(4, 4, format="tt", rate=1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        export_onnx("model", tmp_path / "a.onnx", torch.zeros(1, 4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point"):
        export_onnx(layer, tmp_path / "a.onnx", torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(layer, tmp_path / "a.onnx", torch.zeros(1, 4), opset=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(layer, tmp_path / "no" / "a.onnx", torch.zeros(1, 4))


# ------------------------------------------------------------------ CLI
def test_cli_export_onnx_and_safetensors(tmp_path, capsys):
    torch.manual_seed(0)
    dense = tmp_path / "dense.pt"
    torch.save(get_model("lenet5").state_dict(), dense)
    run = tmp_path / "rtt"
    assert tnn_main(["compress", "--model", "lenet5", "--weights", str(dense), "--format", "rtt",
                     "--rate", "0.3", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert tnn_main(["export", "--weights", str(run / "model.pt"), "--out", str(tmp_path / "m.onnx"),
                     "--batch-size", "2", "--json", "--quiet"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["to"] == "onnx" and figures["input_shape"] == [2, 1, 28, 28]
    assert figures["max_abs_diff"] <= ATOL
    st = tmp_path / "m.safetensors"
    assert tnn_main(["export", "--weights", str(run / "model.pt"), "--out", str(st), "--quiet"]) == 0
    loaded, meta = load_safetensors(st)
    assert meta["format"] == "rtt" and meta["model"] == "lenet5"
    # the safetensors file is itself accepted by --weights
    assert tnn_main(["export", "--weights", str(st), "--to", "safetensors",
                     "--out", str(tmp_path / "again.safetensors"), "--quiet"]) == 0
    again, _ = load_safetensors(tmp_path / "again.safetensors")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--out", "x.txt"], "cannot tell the format"),
        (["--out", "x.onnx", "--batch-size", "0"], "--batch-size must be positive"),
        (["--out", "nodir/x.onnx"], "does not exist"),
        (["--out", "x.onnx", "--weights", "missing.pt"], "does not exist"),
        (["--out", "x.onnx"], "--weights is required"),
    ],
)
def test_cli_export_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert tnn_main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tnn: error:") and needle in err and "\n" not in err


def test_cli_export_refuses_checkpoint_of_another_model(tmp_path, capsys):
    ckpt = tmp_path / "r20.pt"
    save_checkpoint(ckpt, {"metadata": {"model": "resnet20"}, "model": {}})
    assert tnn_main(["export", "--model", "lenet5", "--weights", str(ckpt), "--out",
                     str(tmp_path / "x.onnx")]) == 2
    assert "'resnet20' model, not 'lenet5'" in capsys.readouterr().err


# ------------------------------------------------------------------ torch.compile
@pytest.mark.slow
def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = nn.Sequential(
        TensorialConv2d(3, 4, 3, format="rtt", rate=0.6, padding=1), nn.ReLU(), nn.Flatten(),
        TensorialLinear(4 * 4 * 4, 6, format="cp", rate=0.3),
    ).eval()
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        ref = model(x)
        compiled = torch.compile(model)
        got = compiled(x)
    assert float((got - ref).abs().max()) <= 1e-5
