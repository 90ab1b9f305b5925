"""ONNX export with a symbolic batch dimension, run in onnxruntime at other batch sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tnn.export import export_onnx, run_onnx
from tnn.formats import FORMATS
from tnn.nn import TensorialConv2d, TensorialLinear, optimize_for_inference

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ATOL = 1e-4


class ConvThenLinear(nn.Module):
    """A tensorial conv and a tensorial linear layer of one format."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.conv = TensorialConv2d(4, 6, 3, format=fmt, rate=0.6, stride=2, padding=1)
        self.linear = TensorialLinear(6 * 3 * 3, 5, format=fmt, rate=0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("fmt", ["tk", "rtt"])
def test_dynamic_batch_graph_runs_at_any_batch_size(tmp_path, fmt):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = ConvThenLinear(fmt).eval()
    optimize_for_inference(model, torch.randn(3, 4, 6, 6), reps=1)
    result = export_onnx(model, tmp_path / "m.onnx", torch.randn(3, 4, 6, 6), dynamic_batch=True)
    assert result.dynamic_batch and result.max_abs_diff is not None and result.max_abs_diff <= ATOL
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].HasField("dim_value")
    assert [d.dim_value for d in in_dims[1:]] == [4, 6, 6]
    assert out_dims[0].dim_param == in_dims[0].dim_param
    for batch in (1, 7):
        x = torch.randn(batch, 4, 6, 6)
        (got,) = run_onnx(tmp_path / "m.onnx", x)
        with torch.no_grad():
            ref = model(x)
        assert got.shape == ref.shape
        assert float((got - ref).abs().max()) <= ATOL


def test_symbolic_shapes_take_the_dense_evaluation_in_every_format():
    torch.manual_seed(1)
    for fmt in FORMATS:
        model = ConvThenLinear(fmt).eval()
        x = torch.randn(2, 4, 6, 6)
        batch = torch.export.Dim("batch")
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        x5 = torch.randn(5, 4, 6, 6)
        with torch.no_grad():
            assert float((program.module()(x5) - model(x5)).abs().max()) <= 1e-5, fmt


def test_dynamic_batch_must_be_bool(tmp_path):
    with pytest.raises(TypeError, match="dynamic_batch"):
        export_onnx(ConvThenLinear("cp"), tmp_path / "m.onnx", torch.randn(1, 4, 6, 6), dynamic_batch=1)
