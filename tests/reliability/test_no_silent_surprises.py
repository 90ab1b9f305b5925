"""Nothing replaced, invented or thrown away silently: earlier runs, missing weights, missing extras,
failed experiments, changed settings on resume, file modes, small report and metadata gaps."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import pytest
import tomllib

from tnn.cli.main import COMMANDS, OPTIONAL_COMMANDS, main
from tnn.experiments import run_experiment
from tnn.io import atomic_write_text, load_checkpoint, read_safetensors_metadata
from tnn.io.extras import DISTRIBUTION
from tnn.models import get_model
from tnn.recipes import get_budget

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``tnn argv``."""
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def _compress(lenet_weights: str, out: Path, *extra: str) -> list[str]:
    return ["compress", "--model", "lenet5", "--weights", lenet_weights, "--format", "rtt", "--rate", "0.3",
            "--include", "conv2", "--out", str(out), "--quiet", *extra]


# ------------------------------------------------------------------ earlier runs are never replaced
def test_train_rerun_without_resume_refuses_to_replace_an_interrupted_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--dataset", "synthetic", "--steps", "2", "--batch-size", "8",
            "--subset", "32", "--limit", "16", "--checkpoint-every", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    ckpt = out / "checkpoint-finetune.pt"
    before = ckpt.read_bytes()
    code, err = _run(capsys, *argv[:-3], "--steps", "3", "--out", str(out), "--quiet")
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err, err
    assert "\n" not in err and ckpt.read_bytes() == before
    code, err = _run(capsys, *argv, "--resume", "--overwrite")
    assert code == 2 and "at most one of --resume and --overwrite" in err
    assert main([*argv, "--overwrite"]) == 0  # replacing is possible when asked for


def test_compress_refuses_to_overwrite_an_earlier_model(tmp_path, capsys, lenet_weights):
    out = tmp_path / "c"
    assert main(_compress(lenet_weights, out)) == 0
    before = (out / "model.pt").read_bytes()
    code, err = _run(capsys, *_compress(lenet_weights, out, "--rate", "0.5"))
    assert code == 2 and "already holds a run (model.pt" in err and "--overwrite" in err, err
    assert (out / "model.pt").read_bytes() == before
    assert main(_compress(lenet_weights, out, "--rate", "0.5", "--overwrite")) == 0
    assert load_checkpoint(out / "model.pt")["metadata"]["rate"] == 0.5


# ------------------------------------------------------------------ weights are never invented
@pytest.mark.parametrize("command", [
    ["evaluate", "--model", "lenet5", "--dataset", "digits", "--limit", "8"],
    ["compress", "--model", "lenet5", "--format", "rtt", "--include", "conv2", "--out", "{tmp}/c"],
])
def test_missing_weights_are_refused_unless_random_weights_is_asked_for(tmp_path, capsys, command):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, err = _run(capsys, *argv)
    assert code == 2 and "--weights is missing" in err and "--random-weights" in err, err
    assert not (tmp_path / "c").exists()
    code, err = _run(capsys, *argv, "--random-weights", "--weights", "x.pt")
    assert code == 2 and "not both" in err
    assert main([*argv, "--random-weights", "--quiet"]) == 0


# ------------------------------------------------------------------ optional packages
def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_demo_without_matplotlib_stops_before_any_work(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "matplotlib", "matplotlib.pyplot")
    import tnn.cli.demo as demo

    monkeypatch.setattr(demo, "finetune", lambda *a, **k: pytest.fail("training started"))
    code, err = _run(capsys, "demo", "--out", str(tmp_path / "demo"))
    assert code == 2 and f"pip install '{DISTRIBUTION}[demo]'" in err and "matplotlib" in err, err
    assert "Traceback" not in err and not (tmp_path / "demo").exists()


def test_experiment_without_matplotlib_keeps_the_results_and_skips_the_plot(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "matplotlib", "matplotlib.pyplot")
    budget = get_budget("smoke", "lenet5", steps_per_stage=1, finetune_steps=0, train_subset=16, val_size=8,
                        eval_limit=16, batch_size=8)
    rows = run_experiment("lenet5", "synthetic", ["tt"], [0.2], budget, tmp_path, log=lambda _s: None)
    assert [r["format"] for r in rows] == ["baseline", "tt"] and rows[1]["status"] == "ok"
    assert (tmp_path / "results.csv").exists() and (tmp_path / "results.md").exists()
    assert not (tmp_path / "accuracy_vs_rate.png").exists()
    err = capsys.readouterr().err
    assert "accuracy_vs_rate.png skipped" in err and f"{DISTRIBUTION}[demo]" in err


@pytest.mark.parametrize(("hidden", "argv"), [
    (("onnx",), ["--out", "{tmp}/m.onnx"]),
    (("onnxruntime",), ["--out", "{tmp}/m.onnx"]),
    (("safetensors", "safetensors.torch"), ["--out", "{tmp}/m.safetensors"]),
    (("safetensors", "safetensors.torch"), ["--weights", "{tmp}/m.safetensors", "--out", "{tmp}/m.onnx",
                                             "--no-check"]),
])
def test_export_without_the_export_extra_is_one_line(tmp_path, monkeypatch, capsys, lenet_weights, hidden,
                                                    argv):
    _hide(monkeypatch, *hidden)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--weights" not in argv:
        argv = ["--model", "lenet5", "--weights", lenet_weights, *argv]
    (tmp_path / "m.safetensors").write_bytes(b"")
    code, err = _run(capsys, "export", *argv)
    assert code == 2 and f"pip install '{DISTRIBUTION}[export]'" in err and hidden[0] in err, err
    assert "\n" not in err and not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------ a failed experiment blocks nothing
def test_experiment_with_a_wrong_weights_path_writes_nothing(tmp_path, lenet_weights):
    budget = get_budget("smoke", "lenet5", steps_per_stage=1, finetune_steps=0, train_subset=16, val_size=8,
                        eval_limit=16, batch_size=8)
    out = tmp_path / "table"
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        run_experiment("lenet5", "synthetic", ["tt"], [0.2], budget, out, weights=tmp_path / "missing.pt",
                       log=lambda _s: None, max_cells=0)
    assert not out.exists()
    # a folder holding only the configuration of a run that computed nothing takes the new one
    out.mkdir()
    atomic_write_text(out / "config.json", json.dumps({"model": "lenet5", "weights_name": "missing.pt"}))
    rows = run_experiment("lenet5", "synthetic", ["tt"], [0.2], budget, out, weights=lenet_weights,
                          log=lambda _s: None, max_cells=0)
    assert rows[0]["format"] == "baseline"
    assert json.loads((out / "config.json").read_text())["weights_name"] == "lenet5.pt"


# ------------------------------------------------------------------ resume compares every setting
def test_resume_with_another_rate_or_budget_is_refused(tmp_path, capsys, lenet_weights):
    out = tmp_path / "t"
    argv = ["train", "--model", "lenet5", "--weights", lenet_weights, "--format", "tk", "--rate", "0.2",
            "--dataset", "digits", "--budget", "smoke", "--finetune-steps", "0", "--val-size", "0",
            "--steps", "1", "--subset", "32", "--batch-size", "16", "--limit", "16", "--fit-samples", "0",
            "--out", str(out), "--quiet", "--threads", "1"]
    assert main(argv) == 0
    for flag, value, needle in (("--rate", "0.3", "--rate 0.2"), ("--lr", "0.5", "--lr"),
                                ("--seed", "3", "--seed 0"), ("--exclude", "fc2", "--exclude None")):
        code, err = _run(capsys, *argv, flag, value, "--resume")
        assert code == 2 and needle in err and "this command has" in err, (flag, err)
    assert main([*argv, "--resume", "--limit", "8"]) == 0  # evaluation settings may change


# ------------------------------------------------------------------ small things
def test_info_has_no_weights_option(capsys):
    code, err = _run(capsys, "info", "--model", "lenet5", "--format", "rtt", "--weights", "/nonexistent.pt")
    assert code == 2 and "unrecognized arguments: --weights" in err


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        from tnn.compression import save_model

        save_model(tmp_path / "m.pt", get_model("lenet5"))
    finally:
        os.umask(old)
    for name in ("a.txt", "m.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_safetensors_export_keeps_the_rate(tmp_path, lenet_weights):
    out = tmp_path / "c"
    assert main(_compress(lenet_weights, out)) == 0
    st = tmp_path / "m.safetensors"
    assert main(["export", "--weights", str(out / "model.pt"), "--out", str(st), "--quiet"]) == 0
    assert read_safetensors_metadata(st)["rate"] == 0.3


EVALUATE = ["evaluate", "--model", "lenet5", "--dataset", "digits", "--weights"]


def test_weights_that_are_a_directory_are_named_so(tmp_path, capsys):
    code, err = _run(capsys, *EVALUATE, str(tmp_path))
    assert code == 2 and "is a directory" in err and "does not exist" not in err, err


def test_a_raw_pickle_as_weights_is_one_line_without_a_torch_warning(tmp_path, capsys):
    evaluate = EVALUATE
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(__import__("pickle").dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, err = _run(capsys, *evaluate, str(raw))
    assert code == 2 and str(raw) in err and "\n" not in err
    assert not [w for w in caught if "pickle" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.parametrize("command", COMMANDS + OPTIONAL_COMMANDS)
def test_help_never_shows_default_none(capsys, command):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in " ".join(text.split()) and "default: False" not in text


def test_distribution_name_is_not_the_taken_tnn():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "tnn"
    assert f"{DISTRIBUTION}[demo,export]" in project["optional-dependencies"]["dev"]
    assert DISTRIBUTION in (ROOT / "README.md").read_text()
