"""The experiment runner: budgets, splits, cached teacher targets, resumable tables, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tnn.data.subsets import IndexSubset, split_indices
from tnn.experiments import run_experiment
from tnn.experiments.runner import cell_name, load_teacher
from tnn.experiments.tables import read_csv
from tnn.recipes import Budget, get_budget
from tnn.train import Checkpointing, TeacherCache, sequential_train


def _tiny(**kw: object) -> Budget:
    """The smoke budget cut to one step per stage on a few images."""
    base = dict(steps_per_stage=1, finetune_steps=1, train_subset=24, val_size=16, eval_limit=32,
                batch_size=8)
    base.update(kw)
    return get_budget("smoke", "lenet5", **base)


# ---------------------------------------------------------------- budgets
def test_paper_budgets_follow_the_paper() -> None:
    cifar = get_budget("paper", "resnet32")
    assert (cifar.epochs_per_stage, cifar.batch_size, cifar.lr) == (100.0, 128, 1e-3)
    assert cifar.steps_per_stage is None and cifar.name == "paper"
    imnet = get_budget("paper", "resnet50")
    assert (imnet.epochs_per_stage, imnet.batch_size, imnet.lr) == (50.0, 256, 1e-3)
    assert (imnet.image_size, imnet.resize) == (224, 256)


def test_budget_overrides_and_errors() -> None:
    b = get_budget("paper", "resnet32", steps_per_stage=3)
    assert b.steps_per_stage == 3 and b.epochs_per_stage is None and b.name == "paper+"
    assert get_budget("cpu", "resnet32", batch_size=None) == get_budget("cpu", "resnet32")
    assert "steps per stage" in get_budget("cpu", "lenet5").describe()
    with pytest.raises(ValueError, match="unknown budget 'gpu'"):
        get_budget("gpu", "resnet32")
    with pytest.raises(ValueError, match="unknown budget field"):
        get_budget("cpu", "resnet32", epochs=3)
    with pytest.raises(ValueError, match="exactly one of steps_per_stage and epochs_per_stage"):
        Budget("x")
    with pytest.raises(ValueError, match="batch_size must be a positive number"):
        get_budget("cpu", "lenet5", batch_size=0)


# ---------------------------------------------------------------- data
def test_split_holds_out_the_tail_and_subsets_the_rest() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10))
    train, val = split_indices(data, 3, 4)
    assert train.tolist() == [0, 1, 2, 3] and val.tolist() == [7, 8, 9]
    sub = IndexSubset(data, val)
    x, y = sub.get_batch(torch.tensor([2, 0]))
    assert y.tolist() == [9, 7] and x.view(-1).tolist() == [9.0, 7.0]
    with pytest.raises(ValueError, match="leaves no training images"):
        split_indices(data, 10, None)
    with pytest.raises(ValueError, match="out of range"):
        IndexSubset(data, torch.tensor([10]))


def test_split_of_an_image_folder_is_a_seeded_permutation() -> None:
    class Folder:
        samples = list(range(20))

        def __len__(self) -> int:
            return 20

    train, val = split_indices(Folder(), 5, None, seed=3)
    assert sorted(train.tolist() + val.tolist()) == list(range(20))
    assert val.tolist() != list(range(15, 20))
    assert split_indices(Folder(), 5, None, seed=3)[1].tolist() == val.tolist()


# ---------------------------------------------------------------- sequential training
def test_teacher_cache_holds_the_teacher_stage_outputs() -> None:
    from tnn.data import get_dataset
    from tnn.data.batches import fetch_batch
    from tnn.train import StageForward

    teacher = load_teacher("lenet5", None)
    data = get_dataset("synthetic", "train", model="lenet5", size=20)
    cache = TeacherCache(teacher, 20, dataset=data, batch_size=7)
    x, _ = fetch_batch(data, torch.arange(20))
    for boundary in ("conv1", "fc1"):
        want = StageForward(teacher, boundary)(x).detach()
        got = cache.target(boundary)(x[:3], torch.tensor([0, 1, 2]))  # the whole dataset is filled
        assert cache.store[boundary].dtype == torch.float16 and cache.store[boundary].shape == want.shape
        assert bool(cache.filled[boundary].all())
        torch.testing.assert_close(cache.store[boundary].float(), want, atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(got, want[:3], atol=2e-3, rtol=2e-3)
    store = cache.store["conv1"]
    cache.target("conv1")(x[:2], torch.tensor([5, 6]))
    assert cache.store["conv1"] is store  # computed once


def test_teacher_cache_fills_lazily_from_the_batches() -> None:
    from tnn.data import get_dataset
    from tnn.data.batches import fetch_batch
    from tnn.train import StageForward

    teacher = load_teacher("lenet5", None)
    data = get_dataset("synthetic", "train", model="lenet5", size=10)
    cache = TeacherCache(teacher, 10)
    x, _ = fetch_batch(data, torch.tensor([2, 7]))
    got = cache.target("fc1")(x, torch.tensor([2, 7]))
    torch.testing.assert_close(got, StageForward(teacher, "fc1")(x).detach(), atol=2e-3, rtol=2e-3)
    assert cache.filled["fc1"].nonzero().flatten().tolist() == [2, 7]


def test_runner_sequential_training_matches_tnn_train() -> None:
    """Shared cached targets give the same training as tnn.train.sequential_train(cache_teacher=True)."""
    from tnn.compression import compress
    from tnn.data import get_dataset
    from tnn.train import sequential_train

    teacher = load_teacher("lenet5", None)
    data = get_dataset("synthetic", "train", model="lenet5", size=32)
    budget = _tiny(steps_per_stage=2, batch_size=8)
    torch.manual_seed(0)
    a = compress(teacher, format="tt", rate=0.2)
    b = compress(teacher, format="tt", rate=0.2)
    b.load_state_dict(a.state_dict())
    hist_a = sequential_train(a, teacher, data, steps_per_stage=2, batch_size=8, lr=budget.lr,
                              cache_teacher=TeacherCache(teacher, len(data), dataset=data))
    hist_b = sequential_train(b, teacher, data, steps_per_stage=2, batch_size=8, lr=budget.lr,
                              cache_teacher=True)
    assert [p["phase"] for p in hist_a.phases] == [p["phase"] for p in hist_b.phases]
    assert len(hist_a.steps) == len(hist_b.steps) == 8
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-3, msg=name)
    assert any(not torch.equal(pa, pt) for pa, pt in zip(a.state_dict().values(),
                                                         compress(teacher, "tt", 0.2).state_dict().values(),
                                                         strict=True))


# ---------------------------------------------------------------- the table runner
def test_run_experiment_writes_outputs_and_is_resumable(tmp_path: Path) -> None:
    out = tmp_path / "table"
    budget = _tiny()
    lines: list[str] = []
    rows = run_experiment("lenet5", "synthetic", ["tt", "rtt"], [0.2], budget, out, log=lines.append,
                          max_cells=1)
    assert [r["format"] for r in rows] == ["baseline", "tt"]  # stopped after one cell
    first = (out / "cells" / cell_name("tt", 0.2) / "result.json")
    stamp = first.stat().st_mtime_ns
    lines.clear()
    rows = run_experiment("lenet5", "synthetic", ["tt", "rtt"], [0.2], budget, out, log=lines.append)
    assert any("tt-r0.2: finished, skipped" in line for line in lines)
    assert first.stat().st_mtime_ns == stamp  # the finished cell was not recomputed
    assert sorted(r["format"] for r in rows) == ["baseline", "rtt", "tt"]
    csv_rows = read_csv(out / "results.csv")
    assert len(csv_rows) == 3
    for r in csv_rows[1:]:
        assert r["status"] == "ok" and r["steps_seq"] == 4 and r["steps_ft"] == 1
        assert 0 < r["achieved_rate"] <= 0.25 and r["params_after"] < r["params_before"]
        for key in ("acc_seq_test", "acc_ft_test", "acc_seq_val", "acc_init_val"):
            assert 0.0 <= r[key] <= 1.0
        assert r["n_train"] == 24 and r["n_val"] == 16 and r["wall_s"] > 0
        assert not (out / "cells" / cell_name(r["format"], 0.2) / "checkpoint-sequential.pt").exists()
    md = (out / "results.md").read_text()
    assert "| uncompressed |" in md and "| rtt |" in md and "smoke+" in md
    assert (out / "accuracy_vs_rate.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="holds a run with budget"):
        run_experiment("lenet5", "synthetic", ["tt"], [0.2], _tiny(steps_per_stage=2), out, log=lines.append)
    # settings that cannot change a table cell may differ: the finished cells are reused
    lines.clear()
    run_experiment("lenet5", "synthetic", ["tt"], [0.2], _tiny(conv_steps=99, checkpoint_every=7), out,
                   log=lines.append)
    assert any("tt-r0.2: finished, skipped" in line for line in lines)
    assert first.stat().st_mtime_ns == stamp


def test_a_cell_claimed_by_another_live_process_is_skipped(tmp_path: Path) -> None:
    import json
    import os
    import socket

    out = tmp_path / "table"
    cell = out / "cells" / cell_name("tt", 0.2)
    cell.mkdir(parents=True)
    (cell / "claim.json").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    lines: list[str] = []
    rows = run_experiment("lenet5", "synthetic", ["tt", "rtt"], [0.2], _tiny(), out, log=lines.append)
    assert [r["format"] for r in rows] == ["baseline", "rtt"]
    assert any("tt-r0.2: running in another process" in line for line in lines)
    assert (cell / "claim.json").exists() and not (cell / "result.json").exists()
    assert not (out / "cells" / cell_name("rtt", 0.2) / "claim.json").exists()  # released when done


def test_interrupted_cell_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from tnn.compression import compress
    from tnn.recipes import load_run_data

    out = tmp_path / "table"
    budget = _tiny(steps_per_stage=2)
    teacher = load_teacher("lenet5", None)
    data = load_run_data("lenet5", "synthetic", budget)
    cell = out / "cells" / cell_name("tt", 0.2)
    cell.mkdir(parents=True)
    torch.manual_seed(0)
    student = compress(teacher, format="tt", rate=0.2, input_shape=(1, 28, 28))
    sequential_train(student, teacher, data.train, steps_per_stage=2, batch_size=budget.batch_size,
                     lr=budget.lr, cache_teacher=True, max_steps=3,  # "interrupted" after 3 of 8 steps
                     checkpoint=Checkpointing(cell / "checkpoint-sequential.pt",
                                              every=budget.checkpoint_every))
    assert (cell / "checkpoint-sequential.pt").exists()
    rows = run_experiment("lenet5", "synthetic", ["tt"], [0.2], budget, out, log=lambda _s: None)
    row = rows[1]
    assert row["resumed"] is True and row["steps_seq"] == 8 and row["status"] == "ok"


def test_failing_cell_is_recorded_and_the_table_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tnn.experiments.runner as runner

    real = runner.run_cell

    def flaky(cell_dir: Path, model: str, dataset: str, fmt: str, *a: object, **k: object) -> dict:
        if fmt == "tt":
            raise RuntimeError("boom")
        return real(cell_dir, model, dataset, fmt, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "run_cell", flaky)
    rows = run_experiment("lenet5", "synthetic", ["tt", "rtt"], [0.2], _tiny(), tmp_path, log=lambda _s: None)
    status = {r["format"]: r["status"] for r in rows}
    assert status == {"baseline": "ok", "tt": "error", "rtt": "ok"}
    assert "boom" in (tmp_path / "cells" / "tt-r0.2" / "error.txt").read_text()
    assert "failed" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize(("formats", "rates", "match"), [
    (["nope"], [0.1], "unknown format"),
    (["tt"], [0.0], r"rates must be numbers in \(0, 1\]"),
    ([], [0.1], "unknown format"),
])
def test_run_experiment_rejects_bad_lists(tmp_path: Path, formats: list[str], rates: list[float],
                                          match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_experiment("lenet5", "synthetic", formats, rates, _tiny(), tmp_path)


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_teacher("lenet5", tmp_path / "missing.pt")


# ---------------------------------------------------------------- CLI
def test_cli_experiment_runs_and_reruns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tnn.cli.main import main

    argv = ["experiment", "--model", "lenet5", "--dataset", "synthetic", "--formats", "rtt", "--rates", "0.2",
            "--budget", "smoke", "--steps-per-stage", "1", "--finetune-steps", "1", "--subset", "16",
            "--val-size", "16", "--eval-limit", "16", "--batch-size", "8", "--quiet", "--json",
            "--exclude", "fc2", "--out", str(tmp_path / "t")]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["format"] for r in result["rows"]] == ["baseline", "rtt"]
    assert result["rows"][1]["layers_compressed"] == 3  # conv1, conv2, fc1; fc2 excluded
    assert main(argv) == 0
    assert main(argv[:5] + ["--formats", "bogus"] + argv[7:]) == 2
    assert "unknown format 'bogus'" in capsys.readouterr().err
    assert main(argv + ["--epochs-per-stage", "1"]) == 2


def test_cli_experiment_records_the_layers_kept_dense_and_why(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """svd cannot meet rate 0.01 for LeNet-5's conv2 (a rank-1 factorisation already keeps more): the row
    names the layer and the reason, and results.md lists it."""
    from tnn.cli.main import main

    argv = ["experiment", "--model", "lenet5", "--dataset", "synthetic", "--formats", "svd",
            "--rates", "0.01", "--budget", "smoke", "--steps-per-stage", "1", "--finetune-steps", "1",
            "--subset", "16",
            "--val-size", "16", "--eval-limit", "16", "--batch-size", "8", "--quiet", "--json",
            "--exclude", "conv1", "fc2", "--out", str(tmp_path / "t")]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"][1]
    assert row["layers_dense"] == 1 and row["dense_layers"].startswith("conv2 (")
    assert "svd @ 0.01: conv2 (" in (tmp_path / "t" / "results.md").read_text()


def test_budget_fields_match_cli_overrides() -> None:
    import dataclasses

    from tnn.cli.common import BUDGET_FLAGS

    fields = {f.name for f in dataclasses.fields(Budget)}
    assert {field for field, _, _ in BUDGET_FLAGS.values()} <= fields


def test_a_cell_records_its_accuracy_curve(tmp_path: Path) -> None:
    budget = _tiny(steps_per_stage=2, finetune_steps=3, curve_every=2, curve_limit=8)
    run_experiment("lenet5", "synthetic", ["tt"], [0.2], budget, tmp_path, log=lambda _s: None)
    curve = json.loads((tmp_path / "cells" / "tt-r0.2" / "curve.json").read_text())
    total = 8 + 3  # 4 stages x 2 steps, then 3 fine-tuning steps
    assert curve["steps"][0] == 0 and curve["steps"][-1] == total
    assert curve["wall_s"] == sorted(curve["wall_s"]) and len(curve["accuracy"]) == len(curve["steps"])
    assert all(0.0 <= a <= 1.0 for a in curve["accuracy"])
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 1000
