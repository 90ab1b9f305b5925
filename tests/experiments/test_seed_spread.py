"""Seed spread: per-format mean ± sd, paired gaps with Student-t intervals, run checks, CLI outputs."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from tnn.experiments import plots, seed_spread
from tnn.experiments.seed_spread import gap_rows, load_runs, seeds_markdown, spread_rows, t_quantile
from tnn.experiments.tables import write_csv


def _cell(fmt: str, rate: float, acc: float, layers: int = 30, status: str = "ok") -> dict:
    return {"model": "m", "format": fmt, "rate": rate, "status": status, "acc_final_test": acc,
            "layers_compressed": layers}


#: cp/rcp at 0.1: gaps +1, +2, +3 points (mean 2, sd 1: inside the noise at 3 seeds);
#: tt/rtt at 0.1: gaps -5.0, -5.5, -6.0 (clearly outside); cp/rcp at 0.05 only at seed 0.
ACC = {0: {("cp", 0.1): 0.80, ("rcp", 0.1): 0.81, ("tt", 0.1): 0.78, ("rtt", 0.1): 0.73,
           ("cp", 0.05): 0.70, ("rcp", 0.05): 0.72},
       1: {("cp", 0.1): 0.82, ("rcp", 0.1): 0.84, ("tt", 0.1): 0.77, ("rtt", 0.1): 0.715},
       2: {("cp", 0.1): 0.79, ("rcp", 0.1): 0.82, ("tt", 0.1): 0.79, ("rtt", 0.1): 0.73}}


def _runs() -> list[tuple[int, list[dict]]]:
    runs = []
    for seed, cells in ACC.items():
        rows = [_cell(f, r, a) for (f, r), a in cells.items()]
        rows.append(_cell("rtt", 0.05, 0.0, status="error"))
        runs.append((seed, rows))
    return runs


def test_t_quantile_values_and_limits() -> None:
    assert t_quantile(1) == 12.706 and t_quantile(2) == 4.303 and t_quantile(30) == 2.042
    assert t_quantile(100) == 1.96
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


def test_spread_rows_mean_and_sample_sd_per_format_and_rate() -> None:
    rows = {(r["format"], r["rate"]): r for r in spread_rows(_runs())}
    cp = rows[("cp", 0.1)]
    assert cp["n_seeds"] == 3 and cp["seeds"] == "0/1/2" and cp["values"] == "80.00/82.00/79.00"
    assert cp["mean"] == pytest.approx(statistics.fmean([80, 82, 79]), abs=0.01)
    assert cp["std"] == pytest.approx(statistics.stdev([80, 82, 79]), abs=0.01)
    assert rows[("cp", 0.05)]["n_seeds"] == 1 and rows[("cp", 0.05)]["std"] is None
    assert ("rtt", 0.05) not in rows  # failed cells are left out
    # FORMATS order, then rate
    order = [(r["format"], r["rate"]) for r in spread_rows(_runs())]
    assert order.index(("cp", 0.05)) < order.index(("cp", 0.1)) < order.index(("tt", 0.1)) < order.index(
        ("rcp", 0.05))


def test_gap_rows_pair_by_seed_and_test_the_interval() -> None:
    rows = {(r["reshaped"], r["rate"]): r for r in gap_rows(_runs(), [("cp", "rcp"), ("tt", "rtt")])}
    small = rows[("rcp", 0.1)]
    assert small["gaps"] == "+1.00/+2.00/+3.00" and small["gap_mean"] == pytest.approx(2.0)
    assert small["gap_std"] == pytest.approx(1.0)
    half = 4.303 / math.sqrt(3)
    assert small["ci_low"] == pytest.approx(2 - half, abs=0.01) and small["ci_high"] == pytest.approx(
        2 + half, abs=0.01)
    assert small["exceeds_noise"] is False
    big = rows[("rtt", 0.1)]
    assert big["gap_mean"] == pytest.approx(-5.5) and big["exceeds_noise"] is True and big["ci_high"] < 0
    one = rows[("rcp", 0.05)]
    assert one["n_seeds"] == 1 and one["ci_low"] is None and one["exceeds_noise"] is None
    assert ("rtt", 0.05) not in rows
    md = seeds_markdown(spread_rows(_runs()), list(rows.values()))
    assert "| rcp − cp | 0.1 | 3 | 80.33 ± 1.53 | 82.33 ± 1.53 | +2.00 ± 1.00 | [-0.48, +4.48] |" in md
    assert "| **yes** |" in md and "— (one seed)" in md


def test_gap_rows_flag_pairs_that_keep_different_layers_dense() -> None:
    runs = [(0, [_cell("cp", 0.01, 0.5, layers=30), _cell("rcp", 0.01, 0.6, layers=28)]),
            (1, [_cell("cp", 0.01, 0.5), _cell("rcp", 0.01, 0.6)])]
    (row,) = gap_rows(runs, [("cp", "rcp")])
    assert row["note"] == "different layers kept dense at seed(s) 0"


def _write_run(folder: Path, seed: int, rows: list[dict], budget: str = "cpu", **fields: object) -> Path:
    folder.mkdir(parents=True)
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text(json.dumps({"model": "m", "dataset": "d",
                                                    "budget": {"name": budget, **fields},
                                                    "seed": seed, "weights_name": "w.th", "exclude": None}))
    return folder


def test_a_budget_field_newer_than_a_run_counts_as_its_default(tmp_path: Path) -> None:
    old = _write_run(tmp_path / "old", 0, [_cell("cp", 0.1, 0.8)])  # written before `allocation` existed
    new = _write_run(tmp_path / "new", 1, [_cell("cp", 0.1, 0.7)], allocation="uniform")
    other = _write_run(tmp_path / "other", 2, [_cell("cp", 0.1, 0.7)], allocation="error")
    assert [seed for seed, _ in load_runs([old, new])] == [0, 1]
    with pytest.raises(ValueError, match="differs from .* in budget"):
        load_runs([old, other])


def test_load_runs_refuse_repeated_seeds_and_different_tables(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", 0, [_cell("cp", 0.1, 0.8)])
    b = _write_run(tmp_path / "b", 0, [_cell("cp", 0.1, 0.8)])
    c = _write_run(tmp_path / "c", 1, [_cell("cp", 0.1, 0.8)], budget="long")
    with pytest.raises(ValueError, match="both ran seed 0"):
        load_runs([a, b])
    with pytest.raises(ValueError, match="differs from .* in budget"):
        load_runs([a, c])
    with pytest.raises(ValueError, match="config.json does not exist"):
        (tmp_path / "d").mkdir()
        write_csv(tmp_path / "d" / "results.csv", [])
        load_runs([tmp_path / "d"])


def test_cli_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = [str(_write_run(tmp_path / f"s{seed}", seed, rows)) for seed, rows in _runs()]
    out = tmp_path / "seeds"
    seed_spread.main(["--runs", *folders, "--pairs", "cp:rcp", "tt:rtt", "--out", str(out), "--title", "t"])
    assert "[-0.48, +4.48]" in capsys.readouterr().out
    assert (out / "seeds.md").read_text().startswith("### t\n")
    assert (out / "gaps.csv").read_text().splitlines()[0] == ",".join(seed_spread.GAP_FIELDS)
    assert len((out / "spread.csv").read_text().splitlines()) == 1 + 6
    assert (out / "gaps.png").is_file() == plots.available()
    with pytest.raises(SystemExit):
        seed_spread.main(["--runs", folders[0], folders[0], "--out", str(out)])
