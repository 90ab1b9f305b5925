"""Checks run before long work starts: is the output directory writable, is there room on its disk.

Training writes its first checkpoint only after ``checkpoint_every`` steps; a read-only or full disk
would then fail hours into a run. :func:`check_output_dir` finds out at once, by creating, writing,
fsync-ing and removing a probe file in the directory, and comparing the free space with an estimate.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["OutputDirError", "check_output_dir", "checkpoint_bytes_estimate"]


class OutputDirError(OSError, ValueError):
    """The output directory is missing, not writable, or its disk has too little free space.

    Both an ``OSError`` (it is one) and a ``ValueError`` (the command line reports it as a one-line
    user error).
    """

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


def checkpoint_bytes_estimate(model: nn.Module, optimizer_slots: int = 2) -> int:
    """Bytes of a training checkpoint of ``model``: its ``state_dict`` plus ``optimizer_slots`` copies of
    the parameters (Adam's two moments), plus 1 MiB of metadata and history."""
    tensors = [t for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
    state = sum(t.numel() * t.element_size() for t in tensors)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(state + optimizer_slots * params + (1 << 20))


def check_output_dir(directory: str | os.PathLike[str], need_bytes: int = 0, what: str = "output") -> Path:
    """Fail now, with a clear message, if ``directory`` cannot take ``need_bytes`` of output.

    Parameters
    ----------
    directory : path-like
        Must exist.
    need_bytes : int
        Free space required (an atomic rewrite needs room for the old and the new file at once, so pass
        twice a checkpoint's size).
    what : str
        Names the output in messages, e.g. ``"checkpoint"``.

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    OutputDirError
        Missing directory, not a directory, not writable (permissions, read-only file system), or less
        than ``need_bytes`` free.
    """
    d = Path(directory) if str(directory) else Path(".")
    if not d.exists():
        raise OutputDirError(errno.ENOENT, f"{what} directory {str(d)!r} does not exist")
    if not d.is_dir():
        raise OutputDirError(errno.ENOTDIR, f"{what} directory {str(d)!r} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tnn-write-probe.", dir=d)
    except OSError as exc:
        raise OutputDirError(
            exc.errno or errno.EACCES,
            f"{what} directory {str(d)!r} is not writable ({exc.strerror or exc}); choose another directory",
        ) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputDirError(
            exc.errno or errno.EIO,
            f"cannot write to the {what} directory {str(d)!r} ({exc.strerror or exc}); "
            "is the disk full or read-only?",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    free = shutil.disk_usage(d).free
    if need_bytes > 0 and free < need_bytes:
        raise OutputDirError(
            errno.ENOSPC,
            f"not enough disk space for the {what} in {str(d)!r}: {free / 2**20:.1f} MiB free, "
            f"about {need_bytes / 2**20:.1f} MiB needed; free some space or choose another directory",
        )
    return d
