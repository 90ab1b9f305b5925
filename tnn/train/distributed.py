"""Data parallelism with ``torchrun``: process-group setup, rank queries, DDP wrapping.

Launch any ``tnn train`` command with ``torchrun --nproc_per_node N -m tnn ...`` (or several nodes with
``--nnodes``/``--rdzv-endpoint``): :func:`setup_distributed` reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``
from the environment and joins the group (NCCL on CUDA, gloo on CPU). Logging and checkpoints are
written by rank 0 only.
"""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes logs and checkpoints (rank 0)."""
    return rank() == 0


def setup_distributed(device: torch.device | str = "cpu") -> torch.device:
    """Join the process group described by torchrun's environment variables, if any.

    Returns
    -------
    torch.device
        The device this process should use: ``cuda:LOCAL_RANK`` on CUDA, else ``device``.
    """
    device = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group(backend=backend)
    return device


def teardown_distributed() -> None:
    """Leave the process group if one is active.

    Unreferenced DDP wrappers are collected first (their reducers hold pending gloo work), and the
    processes meet at a barrier so that none destroys the group while another still talks to it; a
    barrier that fails (a peer already gone) does not stop this process from leaving.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if dist.get_world_size() > 1:
        try:
            dist.barrier()
        except RuntimeError:
            pass
    dist.destroy_process_group()


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else ``module`` itself."""
    if not is_distributed():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def all_finite(value: torch.Tensor) -> bool:
    """Whether ``value`` is finite on every process: a collective, so every rank must call it and all
    get the same answer (a non-finite loss on one rank stops them all)."""
    ok = torch.tensor([float(bool(torch.isfinite(value).all()))], device=value.device)
    if is_distributed():
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def barrier() -> None:
    """Synchronise all processes (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()
