"""Nothing lost: SIGKILL + resume is exact, non-finite losses stop cleanly, bad output dirs fail
early, checkpoints are atomic and carry metadata."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import tnn
from tnn.io import load_checkpoint, save_checkpoint
from tnn.io import preflight as preflight_module
from tnn.io.preflight import OutputDirError, check_output_dir
from tnn.train import Checkpointing, Phase, finetune, run_phases
from tnn.train.loop import NonFiniteLossError

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from tnn.nn import TensorialConv2d, TensorialLinear
    from tnn.train import Checkpointing, finetune

    ckpt, final, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    class Slow(nn.Module):  # makes the run long enough to be killed mid-way; no effect on values
        def forward(self, x):
            time.sleep(sleep)
            return x

    model = nn.Sequential(
        TensorialConv2d(3, 6, 3, format="rtt", rate=0.6, padding=1), nn.BatchNorm2d(6), nn.ReLU(), Slow(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), TensorialLinear(24, 4, format="tt", rate=0.6),
    )
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(40, 3, 6, 6, generator=g), torch.randint(0, 4, (40,), generator=g))
    finetune(model, data, steps=STEPS, batch_size=8, optimizer="sgd", lr=0.05, seed=3,
             checkpoint=Checkpointing(ckpt, every=2, resume=True,
                                      metadata={"model": "tiny", "format": "rtt"}))
    torch.save(model.state_dict(), final)
    """
)
STEPS = 40


def _child(tmp: Path, name: str, sleep: float) -> tuple[list[str], Path, Path]:
    script = tmp / "child.py"
    script.write_text(CHILD.replace("STEPS", str(STEPS)))
    run_dir = tmp / name
    run_dir.mkdir()
    ckpt, final = run_dir / "ckpt.pt", run_dir / "final.pt"
    return [sys.executable, str(script), str(ckpt), str(final), str(sleep)], ckpt, final


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tmp_path):
    cmd_ref, _, final_ref = _child(tmp_path, "reference", 0.0)
    _run(cmd_ref)

    cmd, ckpt, final = _child(tmp_path, "killed", 0.1)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = None
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists():
                pos = load_checkpoint(ckpt)["position"]
                if pos["global_step"] >= 6:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = pos["global_step"]
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        child_err = proc.stderr.read().decode(errors="replace")[-2000:]
        proc.stderr.close()
    assert killed_at is not None, f"the child finished or failed before it could be killed:\n{child_err}"
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()
    # the checkpoint survives the kill intact, with metadata; no temporary files are left to confuse resume
    saved = load_checkpoint(ckpt)
    assert STEPS > saved["position"]["global_step"] >= killed_at
    meta = saved["metadata"]
    assert meta["tnn_version"] == tnn.__version__ and meta["model"] == "tiny" and meta["format"] == "rtt"
    assert meta["step"] == saved["position"]["global_step"]

    cmd_resume = [*cmd[:-1], "0.0"]
    _run(cmd_resume)
    ref = torch.load(final_ref, weights_only=True)
    got = torch.load(final, weights_only=True)
    assert list(ref) == list(got)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key


# ------------------------------------------------------------------ non-finite losses
def _tiny() -> tuple[nn.Module, TensorDataset]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 2, 2, generator=g), torch.randint(0, 3, (16,), generator=g)
    return model, TensorDataset(x, y)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    model, data = _tiny()
    calls = {"n": 0}

    def loss(out, x, y, idx):
        calls["n"] += 1
        value = nn.functional.cross_entropy(out, y)
        return value * float("nan") if calls["n"] == 6 else value

    ckpt = tmp_path / "ckpt.pt"
    phase = Phase("finetune", model, loss, list(model.parameters()), steps=20,
                  make_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan .*step 5.*last good checkpoint"):
        run_phases(model, [phase], data, batch_size=4, checkpoint=Checkpointing(ckpt, every=2))
    saved = load_checkpoint(ckpt)
    assert saved["position"]["global_step"] == 4
    assert all(torch.isfinite(t).all() for t in saved["model"].values())
    # the model itself was not updated by the bad step either
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_parameters_turning_inf_are_never_checkpointed(tmp_path):
    model, data = _tiny()
    ckpt = tmp_path / "ckpt.pt"
    phase = Phase("finetune", model, lambda out, x, y, idx: nn.functional.cross_entropy(out, y),
                  list(model.parameters()), steps=10,
                  make_optimizer=lambda ps: torch.optim.SGD(ps, lr=float("inf")))
    with pytest.raises(NonFiniteLossError):
        run_phases(model, [phase], data, batch_size=4, checkpoint=Checkpointing(ckpt, every=1))
    assert not ckpt.exists()


def test_finetune_with_exploding_lr_raises_clear_error(tmp_path):
    model, data = _tiny()
    with pytest.raises(NonFiniteLossError, match="NaN|nan|inf"):
        finetune(model, data, steps=30, batch_size=4, optimizer="sgd", lr=1e38, momentum=0.0,
                 weight_decay=0.0, checkpoint=Checkpointing(tmp_path / "c.pt", every=5))


# ------------------------------------------------------------------ output directories
def test_missing_or_file_output_dir_fails_before_training(tmp_path):
    model, data = _tiny()
    with pytest.raises(OutputDirError, match="does not exist"):
        finetune(model, data, steps=3, batch_size=4, checkpoint=Checkpointing(tmp_path / "no" / "c.pt"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        finetune(model, data, steps=3, batch_size=4, checkpoint=Checkpointing(tmp_path / "file" / "c.pt"))


def test_unwritable_output_dir_fails_before_training(tmp_path, monkeypatch):
    model, data = _tiny()
    before = [p.detach().clone() for p in model.parameters()]
    if os.geteuid() != 0:  # root ignores permission bits; then simulate a read-only file system
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(OutputDirError, match="not writable"):
            finetune(model, data, steps=3, batch_size=4, checkpoint=Checkpointing(ro / "c.pt"))
    ro_fs = OSError(errno.EROFS, "Read-only file system")

    def refuse(*args, **kwargs):
        raise ro_fs

    monkeypatch.setattr(preflight_module.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputDirError, match="not writable .*Read-only file system") as info:
        finetune(model, data, steps=3, batch_size=4, checkpoint=Checkpointing(tmp_path / "c.pt"))
    assert isinstance(info.value, ValueError) and info.value.errno == errno.EROFS
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    model, data = _tiny()
    usage = preflight_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight_module.shutil, "disk_usage",
                        lambda path: usage._replace(free=1000))
    with pytest.raises(OutputDirError, match=r"not enough disk space .* MiB free, about .* MiB needed"):
        finetune(model, data, steps=3, batch_size=4, checkpoint=Checkpointing(tmp_path / "c.pt"))
    assert not (tmp_path / "c.pt").exists()
    assert check_output_dir(tmp_path, 0) == tmp_path  # no requirement: passes


def test_check_output_dir_probe_write_failure(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.handle = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(preflight_module.os, "fdopen", Full)
    with pytest.raises(OutputDirError, match="No space left on device.*disk full"):
        check_output_dir(tmp_path, 10)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tnn-write-probe")]


# ------------------------------------------------------------------ atomic checkpoints
def test_failed_checkpoint_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"metadata": {"step": 1}, "model": {"w": torch.ones(3)}})

    class Boom:
        def __reduce__(self):  # fails while torch.save serialises, after the file was opened
            raise RuntimeError("disk vanished")

    with pytest.raises(RuntimeError, match="disk vanished"):
        save_checkpoint(path, {"metadata": {"step": 2}, "model": {"w": torch.zeros(3)}, "x": Boom()})
    again = load_checkpoint(path)
    assert again["metadata"]["step"] == 1 and torch.equal(again["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_cli_output_dir_keeps_checkpoints_of_a_failed_training_run(tmp_path):
    from tnn.cli.common import output_dir

    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError), output_dir(str(run), keep_on_interrupt=True) as folder:
        save_checkpoint(folder / "checkpoint.pt", {"metadata": {"step": 4}})
        raise NonFiniteLossError("training stopped: non-finite loss nan")
    assert load_checkpoint(run / "checkpoint.pt")["metadata"]["step"] == 4
    # without a checkpoint, or for non-training commands, a failed command leaves nothing behind
    for keep, name in ((True, "empty"), (False, "other")):
        with pytest.raises(ValueError), output_dir(str(tmp_path / name), keep_on_interrupt=keep) as folder:
            if not keep:
                save_checkpoint(folder / "model.pt", {"metadata": {}})
            raise ValueError("boom")
        assert not (tmp_path / name).exists()


def test_cli_unwritable_out_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from tnn.cli.main import main
    from tnn.models import get_model

    ro_fs = OSError(errno.EROFS, "Read-only file system")

    def refuse(*args, **kwargs):
        raise ro_fs

    dense = tmp_path / "dense.pt"
    torch.save(get_model("lenet5").state_dict(), dense)
    monkeypatch.setattr(preflight_module.tempfile, "mkstemp", refuse)
    code = main(["compress", "--model", "lenet5", "--weights", str(dense), "--format", "rtt", "--rate", "0.5",
                 "--include", "conv1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not writable" in err and "Read-only file system" in err, err
    assert "\n" not in err and not (tmp_path / "out").exists()
