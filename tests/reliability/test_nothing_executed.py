"""Nothing executed: files crafted to run code on load are refused, and the code never runs.

Each malicious file, when unpickled naively, would create a marker file. Every loader of the package must
refuse it with a ValueError naming the file, and the marker must not exist afterwards. A static check
guards against new unsafe loading calls in the package's source.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import tnn
from tnn.data.cifar import read_pickle_batch
from tnn.io import CheckpointError, load_checkpoint
from tnn.models import get_model, load_pretrained

PACKAGE = Path(tnn.__file__).resolve().parent


class Payload:
    """Unpickling this calls ``open(marker, "w").write("pwned")`` through ``builtins.exec``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


class OsPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil_files(tmp_path) -> tuple[Path, list[Path]]:
    marker = tmp_path / "PWNED"
    files = []
    # 1. torch.save zip container whose data.pkl runs code
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"metadata": {"step": 0}, "model": {"w": torch.zeros(2)}, "x": Payload(marker)}, zipped)
    files.append(zipped)
    # 2. legacy (non-zip) torch file / plain pickle
    raw = tmp_path / "evil_raw.pt"
    raw.write_bytes(pickle.dumps({"state_dict": OsPayload(marker)}, protocol=2))
    files.append(raw)
    # 3. state_dict-shaped object whose tensor is replaced by the payload
    shaped = tmp_path / "evil_state.pth"
    torch.save({"conv1.weight": Payload(marker)}, shaped)
    files.append(shaped)
    # sanity: a naive loader really would run the payload
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()
    return marker, files


def test_load_checkpoint_refuses_code_carrying_pickles(evil_files):
    marker, files = evil_files
    for path in files:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert path.name in str(info.value)
    assert not marker.exists()


def test_load_pretrained_refuses_code_carrying_pickles(evil_files):
    marker, files = evil_files
    for path in files:
        with pytest.raises(ValueError, match=path.name):
            load_pretrained(get_model("lenet5"), path)
    assert not marker.exists()


def test_cli_refuses_code_carrying_weights(evil_files, tmp_path, capsys):
    from tnn.cli.main import main

    marker, files = evil_files
    for path in files:
        assert main(["export", "--model", "lenet5", "--weights", str(path), "--out",
                     str(tmp_path / "m.safetensors")]) == 2
        assert path.name in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "m.safetensors").exists()


def test_cifar_pickle_batches_are_read_with_a_restricted_unpickler(tmp_path):
    marker = tmp_path / "PWNED"
    batch = tmp_path / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": OsPayload(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="test_batch"):
        read_pickle_batch(batch)
    assert not marker.exists()
    # a genuine batch still loads
    good = tmp_path / "data_batch_1"
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    good.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=2))
    x, y = read_pickle_batch(good)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 4]


def test_npz_batches_refuse_object_arrays(tmp_path):
    from tnn.data.cifar import read_npz_batch

    path = tmp_path / "test_batch.npz"
    buf = io.BytesIO()
    np.savez(buf, x=np.array([Payload(tmp_path / "PWNED")], dtype=object), y=np.zeros(1))
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="test_batch.npz"):
        read_npz_batch(path)
    assert not (tmp_path / "PWNED").exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            yield (owner.id if isinstance(owner, ast.Name) else None), node.func.attr, node


def test_package_source_loads_only_safely():
    """Every torch.load passes weights_only=True, np.load allow_pickle=False; no pickle.load(s) / eval."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(PACKAGE.parent)
        for owner, attr, node in _calls(tree):
            kw = {k.arg: k.value for k in node.keywords}
            if owner == "torch" and attr == "load":
                value = kw.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and attr == "load":
                value = kw.get("allow_pickle")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{rel}:{node.lineno}: np.load without allow_pickle=False")
            if owner == "pickle" and attr in ("load", "loads"):
                problems.append(f"{rel}:{node.lineno}: pickle.{attr} (use a restricted Unpickler)")
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                problems.append(f"{rel}:{node.lineno}: {node.func.id}()")
    assert not problems, "\n".join(problems)


def test_safetensors_cannot_carry_code(tmp_path):
    from tnn.export import load_safetensors, save_safetensors

    path = tmp_path / "m.safetensors"
    save_safetensors(path, get_model("lenet5"), {"note": "__import__('os').system('touch PWNED')"})
    _, meta = load_safetensors(path)
    assert meta["note"].startswith("__import__")  # metadata is data (JSON), never evaluated
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    assert zipfile.is_zipfile(path) is False
