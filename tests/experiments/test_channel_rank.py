"""Channel rank of compressed layers: low-rank baselines cap it by their rank, reshaped formats do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tnn.compression import compress
from tnn.experiments import channel_rank as cr
from tnn.models import get_model
from tnn.nn import TensorialConv2d


def _conv(channels: int = 32) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(channels, channels, 3, padding=1, bias=False).double()


def test_channel_rank_of_a_known_low_rank_kernel() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(12, 3, dtype=torch.float64), torch.randn(3, 5 * 9, dtype=torch.float64)
    assert cr.channel_rank((a @ b).reshape(12, 5, 3, 3)) == 3
    assert cr.channel_rank(torch.randn(12, 5, 3, 3, dtype=torch.float64)) == 12


def test_float32_rounding_noise_is_not_rank() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(64, 2), torch.randn(2, 64 * 9)
    assert cr.channel_rank((a @ b).reshape(64, 64, 3, 3)) == 2


@pytest.mark.parametrize("fmt, rank, output_rank", [("cp", (2,), 2), ("tk", (2, 3), 3), ("tt", (2, 3, 4), 4)])
def test_a_low_rank_baseline_caps_the_channel_rank_by_its_output_rank(
    fmt: str, rank: tuple[int, ...], output_rank: int
) -> None:
    layer = TensorialConv2d.from_dense(_conv(), format=fmt, rank=rank)  # tk: (input, output); tt: last bond
    assert cr.channel_rank(layer.dense_weight()) == output_rank


@pytest.mark.parametrize("fmt", ["rcp", "rtt", "rtk", "rtr"])
def test_a_reshaped_layer_of_a_percent_keeps_every_output_channel(fmt: str) -> None:
    layer = TensorialConv2d.from_dense(_conv(), format=fmt, rate=0.02)
    assert layer.weight_params <= 0.02 * 32 * 32 * 9
    assert cr.channel_rank(layer.dense_weight()) == 32


def test_layer_ranks_reads_every_compressed_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3)).double()
    rows = cr.layer_ranks(compress(model, format="cp", rate=0.02, exclude=["0"], init="random"))
    assert [r.name for r in rows] == ["2"]
    assert rows[0].full == 32 and rows[0].rank < 32 and rows[0].fraction == rows[0].rank / 32


def test_bad_kernel_names_its_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        cr.channel_rank(torch.ones(5))


def test_cli_prints_a_row_per_format_and_rate_with_errors_for_pretrained_weights(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "lenet5.pt"
    torch.save(get_model("lenet5").state_dict(), weights)
    assert cr.main(["--model", "lenet5", "--formats", "cp", "rcp", "--rates", "0.05", "--exclude", "conv1",
                    "fc2", "--weights", str(weights)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "reconstruction error" in lines[0] and len(lines) == 4
    cp_row, rcp_row = (line.split("|") for line in lines[2:])
    assert cp_row[1].strip() == "cp" and rcp_row[1].strip() == "rcp"
    assert float(cp_row[4]) < float(rcp_row[4])  # cp caps the channel rank, rcp does not
    assert 0 < float(cp_row[6]) < 1 and 0 < float(rcp_row[6]) < 1
