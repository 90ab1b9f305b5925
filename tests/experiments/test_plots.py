"""Layout of the experiment plots (the drawing itself is exercised by the runner and study tests)."""

from __future__ import annotations

import pytest

from tnn.experiments import plots


def test_panels_put_each_reshaped_format_under_its_low_rank_format():
    where = plots.panel_positions(["rtt", "cp", "rcp", "tt", "svd"])
    assert where == {"svd": (0, 0), "cp": (0, 1), "tt": (0, 2), "rcp": (1, 1), "rtt": (1, 2)}


def test_panels_of_a_lone_reshaped_format_and_an_unknown_format():
    assert plots.panel_positions(["rtk", "rtk"]) == {"rtk": (1, 0)}
    assert plots.panel_positions(["mine", "cp"]) == {"cp": (0, 0), "mine": (0, 1)}


@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")
def test_accuracy_vs_time_writes_one_png(tmp_path):
    curves = [{"format": f, "rate": r, "wall_s": [0.0, 5.0, 9.0], "accuracy": [0.1, 0.5, 0.7],
               "test_images": 100} for f in ("cp", "rcp", "rtt") for r in (0.1, 0.05)]
    plots.accuracy_vs_time(curves, tmp_path / "t.png", title="t")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
