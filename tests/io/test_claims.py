"""Claim files: exclusive per live process on this host, stale claims taken over, others respected."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tnn.io import claim, claim_holder, release


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(path: Path, pid: int | None, host: str) -> None:
    path.write_text(json.dumps({"pid": pid, "host": host}))


def test_claim_is_exclusive_and_released_by_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "cell" / "claim.json"
    assert claim_holder(path) is None
    assert claim(path) and claim(path)  # held by this very process: still ours
    assert claim_holder(path)["pid"] == os.getpid()
    release(path)
    assert not path.exists()


def test_live_claims_are_respected_and_dead_ones_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    _write(path, os.getppid(), socket.gethostname())  # a live process on this host
    assert not claim(path)
    release(path)  # not ours: left alone
    assert claim_holder(path)["pid"] == os.getppid()
    _write(path, 12345, "another-host")  # cannot be checked: respected
    assert not claim(path)
    _write(path, _dead_pid(), socket.gethostname())  # its process is gone: stale
    assert claim(path) and claim_holder(path)["pid"] == os.getpid()
    path.write_text("{not json")  # unreadable: counts as held
    assert not claim(path)
