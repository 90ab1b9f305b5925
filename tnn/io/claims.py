"""Claim files: one process at a time works on a unit of work, others on the same machine skip it.

A claim is a small JSON file (``pid``, ``host``, ``started``) created with ``O_CREAT | O_EXCL``, so two
processes can never both create it. A claim left behind by a process that died on this host (its pid no
longer runs) is stale and taken over; a claim from another host is respected (delete it by hand if
that host's process is gone). Used by the experiment runner so that several processes started with the
same command share the cells of one table.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["claim", "release", "claim_holder"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def claim_holder(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The claim's contents, or ``None`` when there is no claim (an unreadable one counts as held)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": None}


def _stale(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def claim(path: str | os.PathLike[str]) -> bool:
    """Create the claim file ``path`` for this process; ``False`` if another live process holds it.

    A claim already held by this very process counts as claimed (``True``); a stale one is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = claim_holder(path)
            if holder is None:
                continue  # released meanwhile: try again
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return True
            if not _stale(holder):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me) + "\n")
        return True
    return False


def release(path: str | os.PathLike[str]) -> None:
    """Remove the claim ``path`` if this process holds it (anything else is left alone)."""
    holder = claim_holder(path)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        Path(path).unlink(missing_ok=True)
