"""tnn.io: atomic writes leave no partial file; checkpoints load with weights_only and fail clearly."""

from __future__ import annotations

import pytest
import torch

from tnn.io import (
    CheckpointError,
    atomic_open,
    atomic_write_text,
    checkpoint_metadata,
    load_checkpoint,
    save_checkpoint,
)


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as fh:
            fh.write("partial new content")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_missing_directory(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")


def test_checkpoint_round_trip_weights_only(tmp_path) -> None:
    meta = checkpoint_metadata(model="lenet5", format="rtt", rate=0.1, ranks={"conv1": [2, 3]}, step=7,
                               plan={"layers": []})
    payload = {"metadata": meta, "model": {"w": torch.arange(4.0)}}
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    back = load_checkpoint(path)
    assert back["metadata"] == meta
    assert back["metadata"]["tnn_version"]
    assert torch.equal(back["model"]["w"], torch.arange(4.0))


def test_checkpoint_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"metadata": {}, "model": {"w": torch.randn(100)}})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="metadata"):
        save_checkpoint(path, {"model": {}})
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)
