"""The ``tnn`` command: help, --json figures, compress/train/evaluate round trips, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tnn.cli.main import COMMANDS, main
from tnn.models import get_model


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0
    assert "examples:" in out and f"tnn {command}" in out and "--json" in out


def test_top_level_help_and_module_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "tnn", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    for command in COMMANDS:
        assert command in res.stdout
    assert "examples:" in res.stdout


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "info", "--model", "lenet5", "--format", "tk", "--rate", "0.1", "--json")
    assert code == 0
    fig = _json(out)
    assert [row["name"] for row in fig["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert fig["params_before"] == 431_080
    assert fig["achieved_rate"] < 0.15
    assert all(row["flops_before"] > 0 for row in fig["layers"])
    assert "conv2" in err and "total" in err  # the table goes to stderr with --json


def test_compress_then_evaluate_round_trip(capsys, tmp_path, lenet_weights: str) -> None:
    out_dir = tmp_path / "c"
    code, out, _ = _run(capsys, "compress", "--model", "lenet5", "--weights", lenet_weights,
                        "--format", "tt", "--rate", "0.2", "--dataset", "digits", "--limit", "40",
                        "--out", str(out_dir), "--json")
    assert code == 0
    fig = _json(out)
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pt", "report.json", "report.txt"]
    code, out, _ = _run(capsys, "evaluate", "--weights", str(out_dir / "model.pt"), "--dataset", "digits",
                        "--limit", "40", "--json")
    assert code == 0
    ev = _json(out)
    assert ev["n"] == 40 and ev["format"] == "tt" and ev["model"] == "lenet5"
    assert ev["accuracy"] == pytest.approx(fig["accuracy_after"])
    code, out, _ = _run(capsys, "evaluate", "--model", "lenet5", "--weights", lenet_weights, "--dataset",
                        "digits", "--limit", "40", "--json")
    assert _json(out)["accuracy"] == pytest.approx(fig["accuracy_before"])


def test_train_sequential_and_resume(capsys, tmp_path, lenet_weights: str) -> None:
    out_dir = tmp_path / "t"
    argv = ["train", "--model", "lenet5", "--weights", lenet_weights, "--format", "tk", "--rate", "0.2",
            "--dataset", "digits", "--budget", "smoke", "--finetune-steps", "0", "--val-size", "0",
            "--steps", "3", "--subset", "64", "--batch-size", "16", "--limit", "30",
            "--checkpoint-every", "2", "--out", str(out_dir), "--json", "--quiet", "--threads", "1"]
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    fig = _json(out)
    assert [s["phase"] for s in fig["stages"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert fig["steps"] == 12
    names = {p.name for p in out_dir.iterdir()}
    assert {"model.pt", "log.jsonl", "log.csv", "summary.json", "checkpoint-sequential.pt"} <= names
    lines = (out_dir / "log.csv").read_text().splitlines()
    assert lines[0].startswith("phase,") and len(lines) == 13
    # resuming a finished run trains nothing more and gives the same model
    before = torch.load(out_dir / "model.pt", weights_only=True)["model"]
    code, out, _ = _run(capsys, *argv, "--resume")
    assert code == 0 and _json(out)["accuracy"] == fig["accuracy"]
    after = torch.load(out_dir / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    code, out, _ = _run(capsys, "evaluate", "--weights", str(out_dir / "model.pt"), "--dataset", "digits",
                        "--limit", "30", "--json")
    assert _json(out)["accuracy"] == pytest.approx(fig["accuracy"])


def test_train_dense_from_scratch(capsys, tmp_path) -> None:
    code, out, _ = _run(capsys, "train", "--model", "lenet5", "--dataset", "synthetic", "--steps", "2",
                        "--batch-size", "8", "--subset", "32", "--limit", "16", "--out", str(tmp_path / "d"),
                        "--json", "--quiet")
    assert code == 0
    fig = _json(out)
    assert fig["format"] is None and fig["steps"] == 2 and 0.0 <= fig["accuracy"] <= 1.0


BAD = [
    (["evaluate", "--model", "vgg", "--dataset", "digits", "--random-weights"], "unknown model 'vgg'"),
    (["info", "--model", "lenet5", "--format", "xyz"], "unknown format 'xyz'; valid formats"),
    (["info", "--model", "lenet5", "--format", "tk", "--rate", "0"], "--rate must be in (0, 1]"),
    (["info", "--model", "lenet5", "--format", "tk", "--rate", "1.5"], "--rate must be in (0, 1]"),
    (["evaluate", "--model", "lenet5", "--dataset", "imagenette", "--random-weights"],
     "unknown dataset 'imagenette'"),
    (["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--data-dir", "{tmp}", "--random-weights"],
     "cifar"),
    (["evaluate", "--model", "lenet5", "--dataset", "digits", "--device", "cuda:7", "--random-weights"],
     "cuda"),
    (["evaluate", "--model", "lenet5", "--weights", "{tmp}/missing.pt", "--dataset", "digits"], "missing.pt"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD)
def test_bad_input_one_line_exit_2(capsys, tmp_path, argv: list[str], needle: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "cuda" in needle and torch.cuda.is_available():
        pytest.skip("CUDA present")
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tnn: error: "), err
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in err


def test_bad_checkpoints_leave_no_output(capsys, tmp_path, lenet_weights: str) -> None:
    corrupt = tmp_path / "corrupt.pt"
    data = open(lenet_weights, "rb").read()
    corrupt.write_bytes(data[: len(data) // 2])
    misfit = tmp_path / "resnet20.pt"
    torch.save(get_model("resnet20").state_dict(), misfit)
    for weights, needle in ((corrupt, "corrupt"), (misfit, "")):
        out_dir = tmp_path / "out" / "nested"
        code, _, err = _run(capsys, "compress", "--model", "lenet5", "--weights", str(weights),
                            "--format", "tk", "--out", str(out_dir))
        assert code == 2 and err.startswith("tnn: error: ") and len(err.strip().splitlines()) == 1, err
        assert needle in err
        assert not (tmp_path / "out").exists()
    code, _, err = _run(capsys, "train", "--model", "lenet5", "--weights", str(misfit), "--format", "tk",
                        "--dataset", "digits", "--steps", "1", "--out", str(tmp_path / "tr"))
    assert code == 2 and not (tmp_path / "tr").exists()
    code, _, err = _run(capsys, "train", "--model", "lenet5", "--dataset", "digits",
                        "--out", str(tmp_path / "x"))
    assert code == 2 and "budget" in err and not (tmp_path / "x").exists()
