"""Convergence study, Markdown/CSV tables, and the ResNet-50 ``paper`` configuration end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tnn.experiments import parameter_epochs, run_convergence, run_experiment, steps_to_within
from tnn.experiments.convergence import method_budget
from tnn.experiments.tables import (
    comparison_table,
    dense_layers_text,
    dense_names,
    detail_table,
    markdown,
    read_csv,
    same_layers,
    summary_table,
    write_csv,
)
from tnn.recipes import get_budget


# ---------------------------------------------------------------- steps to within one point
def test_steps_to_within_one_point() -> None:
    steps = [0, 10, 20, 30, 40]
    acc = [0.50, 0.895, 0.93, 0.88, 0.90]
    r = steps_to_within(steps, acc)
    assert r["final"] == 0.90
    assert r["first"] == 10  # 0.895 >= 0.90 - 0.01
    assert r["stays"] == 40  # 0.88 at step 30 drops below 0.89


def test_steps_to_within_edge_cases() -> None:
    assert steps_to_within([0], [0.3]) == {"first": 0, "stays": 0, "final": 0.3}
    assert steps_to_within([0, 5, 9], [0.1, 0.6, 0.605], tol=0.01)["first"] == 5
    with pytest.raises(ValueError, match="equal length"):
        steps_to_within([0, 1], [0.5])
    with pytest.raises(ValueError, match="non-empty"):
        steps_to_within([], [])


def test_speedup_rows_divide_end_to_end_by_each_method() -> None:
    from tnn.experiments.convergence import speedup_rows

    def summary(fmt: str, method: str, steps: int, wall: float, pe: float | None) -> dict:
        return {"format": fmt, "method": method, "steps_within_1pt": steps, "wall_within_1pt_s": wall,
                "param_epochs_within_1pt": pe}

    rows = speedup_rows([summary("cp", "sequential", 760, 139.0, 0.047e6),
                         summary("cp", "end-to-end", 680, 190.0, 0.135e6),
                         summary("cp", "recipe", 0, 10.0, None),
                         summary("tt", "sequential", 1, 1.0, 1.0)])  # no end-to-end tt: no row
    assert [(r["format"], r["method"]) for r in rows] == [("cp", "sequential"), ("cp", "recipe")]
    assert rows[0]["steps_within_1pt"] == pytest.approx(680 / 760)
    assert rows[0]["wall_within_1pt_s"] == pytest.approx(190 / 139)
    assert rows[0]["param_epochs_within_1pt"] == pytest.approx(0.135 / 0.047)
    assert rows[1]["steps_within_1pt"] is None and rows[1]["param_epochs_within_1pt"] is None
    assert rows[1]["wall_within_1pt_s"] == pytest.approx(19.0)


def test_method_budgets_share_the_budget_but_split_the_steps() -> None:
    seq_only = get_budget("cpu-seq", "resnet32")
    recipe = get_budget("long", "resnet32", conv_steps=400)
    seq = method_budget(recipe, "sequential", n_stages=4)
    assert seq.steps_per_stage == 100 and seq.finetune_steps == 0 and seq.fit_samples == recipe.fit_samples
    e2e = method_budget(recipe, "end-to-end", n_stages=4)
    assert e2e.steps_per_stage == 0 and e2e.finetune_steps == 400 and e2e.finetune_lr == recipe.lr
    assert e2e.distill and e2e.augment and e2e.fit_samples == recipe.fit_samples
    old = method_budget(seq_only, "end-to-end", n_stages=4)
    assert not old.distill and old.finetune_steps == seq_only.conv_steps


def test_recipe_method_is_the_budget_itself_at_equal_steps() -> None:
    long = get_budget("long", "resnet32")
    assert method_budget(long, "recipe", n_stages=4) is long  # 4 x 240 + 2,000 = conv_steps
    assert method_budget(long, "end-to-end", n_stages=4).finetune_steps == 4 * 240 + 2000
    with pytest.raises(ValueError, match=r"3 stages x 240 steps \+ 2000 fine-tuning steps = 2720.*"
                                         r"--conv-steps 2720"):
        method_budget(long, "recipe", n_stages=3)
    with pytest.raises(ValueError, match="counted in steps"):
        method_budget(get_budget("paper", "resnet32"), "recipe", n_stages=4)


def test_parameter_epochs_count_only_the_phase_in_training() -> None:
    phases = [{"steps": 4, "params": 100}, {"steps": 4, "params": 1000}]
    # batch 10 of 40 training samples: a step is a quarter epoch
    assert parameter_epochs(phases, [0, 2, 4, 6, 8, 9], 10, 40) == [0.0, 50.0, 100.0, 600.0, 1100.0, 1100.0]
    assert parameter_epochs([{"steps": 3}], [0, 3], 10, 40) is None


# ---------------------------------------------------------------- tables
def _rows() -> list[dict]:
    return [
        {"model": "m", "format": "baseline", "rate": 1.0, "status": "ok", "acc_seq_test": 0.99,
         "acc_seq_val": 0.985, "acc_final_test": 0.99, "model_params": 1000},
        {"model": "m", "format": "rtt", "rate": 0.1, "status": "ok", "achieved_rate": 0.098,
         "model_params": 98,
         "acc_init_val": 0.5, "acc_seq_val": 0.97, "acc_seq_test": 0.9712, "acc_ft_test": 0.9801,
         "acc_final_test": 0.9801, "steps_seq": 40, "steps_ft": 10, "wall_s": 12.3, "layers_dense": 1},
        {"model": "m", "format": "tt", "rate": 0.1, "status": "error", "error": "RuntimeError: boom"},
        {"model": "m", "format": "tt", "rate": 0.05, "status": "ok", "achieved_rate": 0.05,
         "model_params": 50,
         "acc_seq_test": 0.9, "acc_ft_test": 0.91, "acc_final_test": 0.91, "steps_seq": 40, "steps_ft": 10,
         "wall_s": 3},
    ]


def test_dense_names_and_same_layers() -> None:
    a = {"layers_compressed": 29, "dense_layers": "layer1.0.conv1 (no rank fits); fc (rank 0)"}
    b = {"layers_compressed": 29, "dense_layers": "fc (rank 0); layer1.0.conv1 (no rank fits)"}
    c = {"layers_compressed": 29, "dense_layers": "layer1.0.conv2 (no rank fits); fc (rank 0)"}
    assert dense_names(a) == ["layer1.0.conv1", "fc"] and dense_names({"dense_layers": ""}) == []
    text = dense_layers_text([("conv2", "no rank fits; m must be 1"), ("fc", "rank 0")])
    assert text == "conv2 (no rank fits, m must be 1); fc (rank 0)"
    assert dense_names({"dense_layers": text}) == ["conv2", "fc"]
    assert dense_names({}) is None
    assert same_layers(a, b) and not same_layers(a, c)
    assert same_layers({"layers_compressed": 29}, c) and not same_layers({"layers_compressed": 30}, c)


def test_markdown_lists_the_layers_kept_dense() -> None:
    rows = _rows()
    rows[1]["dense_layers"] = "conv2 (rank 1 keeps 0.03 > 0.01)"
    assert "- rtt @ 0.1: conv2 (rank 1 keeps 0.03 > 0.01)" in markdown(rows)
    assert "Kept dense" not in markdown(_rows())


def test_summary_table_layout() -> None:
    text = summary_table(_rows())
    lines = text.splitlines()
    assert lines[2] == "| format | rate 0.05 | rate 0.1 |"
    assert "| uncompressed | 99.00 |" in text
    assert "| tt | 90.00 / 91.00 | failed |" in text
    assert "| rtt | not run | 97.12 / 98.01 |" in text
    assert text.index("| tt |") < text.index("| rtt |")  # baselines before reshaped formats


def test_detail_table_and_markdown() -> None:
    text = detail_table(_rows())
    assert "| rtt | 0.1 | 0.0980, 1 dense | 98 | 50.00 | — | 97.00 | — | 97.12 | 98.01 | 40+10 | 12 |" in text
    assert "failed: RuntimeError: boom" in text
    md = markdown(_rows(), title="m on d", budget_line="cpu: ...")
    assert md.startswith("### m on d") and "Budget: cpu: ..." in md


def test_comparison_table_matches_cells_by_format_and_rate() -> None:
    before = _rows()
    after = [dict(r) for r in _rows()]
    after[1]["acc_final_test"] = 0.9901          # rtt @ 0.1: +1.00
    after[3]["acc_final_test"] = 0.8850          # tt @ 0.05: -2.50
    after[2]["status"] = "ok"                    # tt @ 0.1 ok now, but failed before: no comparison
    after[2]["acc_final_test"] = 0.5
    text = comparison_table(before, after)
    assert text.splitlines()[0] == "| format | rate 0.05 | rate 0.1 |"
    assert "| tt | 91.00 → 88.50 (-2.50) | — |" in text
    assert "| rtt | — | 98.01 → 99.01 (+1.00) |" in text


def test_csv_round_trip(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", _rows())
    back = read_csv(tmp_path / "r.csv")
    assert len(back) == 4
    assert back[1]["acc_seq_test"] == 0.9712 and back[1]["steps_seq"] == 40 and back[1]["format"] == "rtt"
    assert back[0]["achieved_rate"] is None and back[2]["error"] == "RuntimeError: boom"


# ---------------------------------------------------------------- convergence
@pytest.mark.slow
def test_convergence_study_runs_both_methods_and_resumes(tmp_path: Path) -> None:
    budget = get_budget("smoke", "lenet5", conv_steps=4, conv_eval_every=2, conv_eval_limit=16,
                        train_subset=16, val_size=16, batch_size=8)
    lines: list[str] = []
    summaries = run_convergence("lenet5", "synthetic", ["tt"], 0.2, budget, tmp_path, log=lines.append)
    assert [(s["format"], s["method"]) for s in summaries] == [("tt", "sequential"), ("tt", "end-to-end")]
    seq = json.loads((tmp_path / "curves" / "tt-sequential.json").read_text())
    e2e = json.loads((tmp_path / "curves" / "tt-end-to-end.json").read_text())
    assert seq["stage_ends"] == [1, 2, 3, 4]  # 4 steps split over lenet5's 4 stages
    assert e2e["steps"] == [0, 2, 4] and seq["steps"] == [0, 2, 4]
    assert seq["accuracy"][0] == e2e["accuracy"][0]  # the same decomposition-initialised start
    assert all(b >= a for a, b in zip(seq["wall_s"], seq["wall_s"][1:], strict=False))
    # parameter-epochs: end-to-end trains every parameter at every step, sequential one stage at a time
    n_params = e2e["param_epochs"][-1] * 16 / (4 * 8)
    assert e2e["param_epochs"] == pytest.approx([0.0, n_params * 2 * 8 / 16, n_params * 4 * 8 / 16])
    assert 0 < seq["param_epochs"][-1] < e2e["param_epochs"][-1]
    assert seq["param_epochs"] == sorted(seq["param_epochs"])
    for s in summaries:
        assert s["total_steps"] == 4 and s["steps_within_1pt"] in (0, 2, 4)
    assert (tmp_path / "convergence.png").stat().st_size > 1000
    assert "| tt | end-to-end |" in (tmp_path / "convergence.md").read_text()
    assert "speed-up over end-to-end" in (tmp_path / "convergence.md").read_text()
    assert "| tt | sequential | " in (tmp_path / "convergence.md").read_text().split("speed-up")[1]
    assert len((tmp_path / "convergence.csv").read_text().splitlines()) == 1 + 3 + 3
    assert all(s["total_param_epochs"] > 0 for s in summaries)
    lines.clear()
    run_convergence("lenet5", "synthetic", ["tt"], 0.2, budget, tmp_path, log=lines.append)
    assert lines == ["[convergence] tt: finished, skipped"]
    with pytest.raises(ValueError, match="unknown method"):
        run_convergence("lenet5", "synthetic", ["tt"], 0.2, budget, tmp_path, methods=["sgd"])


def test_interrupted_convergence_curve_resumes_to_the_same_curve(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A curve cut mid-run continues from its checkpoint: the same evaluation points and accuracies as an
    uncut run, the claim released and the checkpoint folder removed once the curve is written."""
    import tnn.experiments.convergence as convergence
    from tnn.train import EvaluateEvery

    budget = get_budget("smoke", "lenet5", conv_steps=6, conv_eval_every=2, conv_eval_limit=16,
                        train_subset=16, val_size=16, batch_size=8, checkpoint_every=1)
    args = ("lenet5", "synthetic", ["tt"], 0.2, budget)
    torch.manual_seed(0)  # the same randomly initialised teacher (no weights file) in every call
    run_convergence(*args, tmp_path / "whole", methods=["end-to-end"], log=lambda line: None)

    class CutAtStep3(EvaluateEvery):
        def on_step_end(self, event):  # type: ignore[no-untyped-def]
            super().on_step_end(event)
            if event.global_step == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(convergence, "EvaluateEvery", CutAtStep3)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        run_convergence(*args, tmp_path / "cut", methods=["end-to-end"], log=lambda line: None)
    work = tmp_path / "cut" / "curves" / "tt-end-to-end"
    assert (work / "checkpoint-finetune.pt").exists() and not (work / "claim.json").exists()
    monkeypatch.setattr(convergence, "EvaluateEvery", EvaluateEvery)
    lines: list[str] = []
    torch.manual_seed(0)
    run_convergence(*args, tmp_path / "cut", methods=["end-to-end"], log=lines.append)
    assert any("resumed from its checkpoint" in line for line in lines)
    whole, cut = (json.loads((tmp_path / d / "curves" / "tt-end-to-end.json").read_text())
                  for d in ("whole", "cut"))
    assert cut["steps"] == whole["steps"] == [0, 2, 4, 6]
    assert cut["accuracy"] == whole["accuracy"] and cut["losses"] == whole["losses"]
    assert cut["resumed"] is True and whole["resumed"] is False and not work.exists()


def test_convergence_curve_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    from tnn.io import claim

    budget = get_budget("smoke", "lenet5", conv_steps=4, conv_eval_every=2, conv_eval_limit=16,
                        train_subset=16, val_size=16, batch_size=8)
    work = tmp_path / "curves" / "tt-sequential"
    assert claim(work / "claim.json")
    (work / "claim.json").write_text(json.dumps({"pid": 1, "host": __import__("socket").gethostname()}))
    lines: list[str] = []
    run_convergence("lenet5", "synthetic", ["tt"], 0.2, budget, tmp_path, log=lines.append)
    assert any("tt sequential: running in another process (pid 1" in line for line in lines)
    assert (tmp_path / "curves" / "tt-end-to-end.json").exists()
    assert not (tmp_path / "curves" / "tt-sequential.json").exists()


@pytest.mark.slow
def test_convergence_study_recipe_method_trains_stages_then_fine_tunes(tmp_path: Path) -> None:
    # smoke: 2 steps per stage on lenet5's 4 stages + 2 fine-tuning steps = 10; distilled on augmented
    # images, as the long budget fine-tunes (the augmented training set must reach the recipe)
    budget = get_budget("smoke", "lenet5", conv_steps=10, conv_eval_every=5, conv_eval_limit=16,
                        train_subset=16, val_size=16, batch_size=8, augment=True, distill=True)
    summaries = run_convergence("lenet5", "synthetic", ["tt"], 0.2, budget, tmp_path,
                                methods=["recipe", "end-to-end"], log=lambda line: None)
    assert [s["method"] for s in summaries] == ["end-to-end", "recipe"]
    recipe = json.loads((tmp_path / "curves" / "tt-recipe.json").read_text())
    e2e = json.loads((tmp_path / "curves" / "tt-end-to-end.json").read_text())
    assert recipe["stage_ends"] == [2, 4, 6, 8, 10] and e2e["stage_ends"] == [10]
    assert e2e["steps"] == [0, 5, 10] and recipe["steps"] == [0, 5, 8, 10]  # 8: sequential training ends
    assert recipe["accuracy"][0] == e2e["accuracy"][0]
    # fine-tuning trains every parameter: the recipe's last 2 steps add as much as 2 of end-to-end's 10
    per_step = e2e["param_epochs"][-1] / 10
    assert recipe["param_epochs"][-1] - recipe["param_epochs"][2] == pytest.approx(2 * per_step)
    assert recipe["param_epochs"][-1] < e2e["param_epochs"][-1]
    with pytest.raises(ValueError, match="--conv-steps 10"):
        run_convergence("lenet5", "synthetic", ["cp"], 0.2, budget.replace(conv_steps=12), tmp_path / "x",
                        methods=["recipe"], log=lambda line: None)


# ---------------------------------------------------------------- ResNet-50, paper budget, image folder
def _image_folder(root: Path, per_class: dict[str, int], size: int = 40) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for cls in ("n01", "n02"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{i}.png")


@pytest.mark.slow
def test_resnet50_paper_configuration_end_to_end(tmp_path: Path) -> None:
    """The ``paper`` budget for ResNet-50 on an ImageNet-style folder, one step per stage."""
    _image_folder(tmp_path / "imagenet", {"train": 3, "val": 2})
    paper = get_budget("paper", "resnet50")
    budget = get_budget("paper", "resnet50", steps_per_stage=1, batch_size=2, val_size=2, image_size=32,
                        resize=36)
    assert budget.lr == paper.lr and budget.cache_teacher == paper.cache_teacher
    rows = run_experiment("resnet50", "imagenet", ["rtt"], [0.1], budget, tmp_path / "out",
                          data_dir=tmp_path / "imagenet", log=lambda _s: None)
    assert [r["format"] for r in rows] == ["baseline", "rtt"]
    cell = rows[1]
    assert cell["status"] == "ok", cell
    assert cell["stages"] == 5 and cell["steps_seq"] == 5  # layer1..layer4, fc
    assert cell["n_train"] == 4 and cell["n_val"] == 2 and cell["n_test"] == 4
    assert cell["achieved_rate"] < 0.2 and cell["layers_compressed"] > 40
    assert (tmp_path / "out" / "results.csv").exists()


@pytest.mark.slow
def test_resnet50_cpu_budget_runs_the_recipe(tmp_path: Path) -> None:
    """The ``cpu`` budget for ResNet-50 (data fit, then distillation) on an ImageNet-style folder."""
    _image_folder(tmp_path / "imagenet", {"train": 3, "val": 2})
    cpu = get_budget("cpu", "resnet50")
    assert cpu.fit_samples > 0 and cpu.distill and cpu.finetune_steps > 0
    budget = get_budget("cpu", "resnet50", fit_samples=2, fit_steps=1, finetune_steps=1, batch_size=2,
                        val_size=2, image_size=32, resize=36)
    rows = run_experiment("resnet50", "imagenet", ["svd"], [0.1], budget, tmp_path / "out",
                          data_dir=tmp_path / "imagenet", log=lambda _s: None)
    cell = rows[1]
    assert cell["status"] == "ok", cell
    assert cell["steps_seq"] == 0 and cell["steps_ft"] == 1
    assert cell["acc_fit_test"] is not None and cell["wall_fit_s"] > 0
