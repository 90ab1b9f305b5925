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


@pytest.mark.skipif(not plots.available(), reason="matplotlib is not installed")
def test_convergence_tells_every_method_of_a_format_apart(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig))
    curves = [{"format": f, "method": m, "label": f"{f} {m}", "steps": [0, 10], "wall_s": [0.0, 1.0],
               "accuracy": [0.1, 0.5], "param_epochs": [0, 100]}
              for f in ("cp", "rtt") for m in ("sequential", "end-to-end", "recipe")]
    plots.convergence(curves, tmp_path / "c.png")
    (fig,) = saved
    assert len(fig.axes) == 3
    lines = {ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in fig.axes[0].get_lines()}
    assert len(set(lines.values())) == 6                       # no two curves drawn alike
    for f in ("cp", "rtt"):                                   # one colour per format
        assert len({lines[f"{f} {m}"][0] for m in ("sequential", "end-to-end", "recipe")}) == 1
    for m in ("sequential", "end-to-end", "recipe"):          # one style per method
        assert lines[f"cp {m}"][1] == lines[f"rtt {m}"][1]


def test_seed_counts_name_a_range_when_the_rates_differ():
    assert plots.seed_counts([1]) == "1 seed"
    assert plots.seed_counts([3, 3]) == "3 seeds"
    assert plots.seed_counts([5, 3, 3]) == "3–5 seeds"
