"""The gap-against-budget study: pairing cells across runs, the table, the CLI's outputs and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tnn.experiments import budget_gap, plots
from tnn.experiments.budget_gap import gap_markdown, gap_rows, parse_pair
from tnn.experiments.tables import write_csv


def _cell(fmt: str, rate: float, acc: float, steps_ft: int, status: str = "ok") -> dict:
    return {"model": "m", "format": fmt, "rate": rate, "status": status, "acc_final_test": acc,
            "steps_seq": 0, "steps_ft": steps_ft}


def _runs() -> list[tuple[str, list[dict]]]:
    short = [_cell("cp", 0.05, 0.60, 125), _cell("rcp", 0.05, 0.55, 125), _cell("tt", 0.05, 0.50, 125),
             _cell("rtt", 0.05, 0.52, 125), _cell("cp", 0.1, 0.9, 125), _cell("rcp", 0.1, 0.1, 125)]
    long = [_cell("cp", 0.05, 0.77, 2000), _cell("rcp", 0.05, 0.78, 2000), _cell("tt", 0.05, 0.70, 2000),
            _cell("rtt", 0.05, 0.0, 2000, status="error")]
    return [("long", long), ("short", short)]


def test_gap_rows_pair_cells_at_the_rate_and_sort_by_steps() -> None:
    rows = gap_rows(_runs(), [("cp", "rcp"), ("tt", "rtt")], rate=0.05)
    assert [(r["reshaped"], r["steps"]) for r in rows] == [("rcp", 125), ("rcp", 2000), ("rtt", 125)]
    assert rows[0]["gap_points"] == pytest.approx(-5.0) and rows[1]["gap_points"] == pytest.approx(1.0)
    assert rows[2]["gap_points"] == pytest.approx(2.0)  # the failed long rtt cell is left out
    assert "| cp / rcp | 0.05 | 125 | — | 60.00 | 55.00 | -5.00 |" in gap_markdown(rows)


def test_gap_rows_count_images_by_each_runs_batch_size() -> None:
    rows = gap_rows(_runs(), [("cp", "rcp")], rate=0.05, batch_sizes={"short": 64, "long": 128})
    assert [(r["steps"], r["images"]) for r in rows] == [(125, 8000), (2000, 256000)]
    assert "| cp / rcp | 0.05 | 2000 | 256,000 | 77.00 | 78.00 | +1.00 |" in gap_markdown(rows)


def test_gap_rows_refuse_pairs_trained_for_different_steps() -> None:
    runs = [("mixed", [_cell("cp", 0.05, 0.6, 125), _cell("rcp", 0.05, 0.6, 250)])]
    with pytest.raises(ValueError, match="cp was trained for 125 steps and rcp for 250"):
        gap_rows(runs, [("cp", "rcp")], rate=0.05)


def test_parse_pair_errors() -> None:
    assert parse_pair("tt:rtt") == ("tt", "rtt")
    with pytest.raises(ValueError, match="BASELINE:RESHAPED"):
        parse_pair("cp-rcp")
    with pytest.raises(ValueError, match="unknown format"):
        parse_pair("cp:rxx")


def test_cli_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, rows in _runs():
        (tmp_path / name).mkdir()
        write_csv(tmp_path / name / "results.csv", rows)
    (tmp_path / "long" / "config.json").write_text('{"budget": {"batch_size": 128}}')
    out = tmp_path / "gap"
    budget_gap.main(["--runs", str(tmp_path / "short"), str(tmp_path / "long"), "--pairs", "cp:rcp",
                     "--rate", "0.05", "--out", str(out)])
    assert "| cp / rcp | 0.05 | 2000 | 256,000 | 77.00 | 78.00 | +1.00 |" in capsys.readouterr().out
    assert (out / "gap.csv").read_text().splitlines()[0].startswith("baseline,reshaped,rate,steps,images")
    assert (out / "gap_vs_budget.png").exists() == plots.available()
    with pytest.raises(SystemExit):
        budget_gap.main(["--runs", str(tmp_path / "missing"), "--rate", "0.05", "--out", str(out)])
