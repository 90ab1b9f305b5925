"""Data parallelism: 2 CPU processes (gloo) train exactly like one process on the union of their batches."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from tnn.train import Checkpointing, finetune, sequential_train
from tnn.train import distributed as D


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    return TensorDataset(torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))


def _model() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).double()


def _train(kind: str, batch: int, ckpt: str | None) -> nn.Module:
    data = TensorDataset(*(t.double() if t.is_floating_point() else t for t in _data().tensors))
    model = _model()
    if kind == "finetune":
        finetune(model, data, steps=6, batch_size=batch, optimizer="adam", lr=1e-2,
                 checkpoint=Checkpointing(ckpt, every=2) if ckpt else None)
    else:
        teacher = _model()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.5)
        sequential_train(model, teacher, data, ["1", "3"], steps_per_stage=3, batch_size=batch, lr=1e-2,
                         checkpoint=Checkpointing(ckpt, every=2) if ckpt else None)
    return model


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        assert D.is_distributed() and D.rank() == rank and D.world_size() == world
        for kind in KINDS:
            model = _train(kind, 4, os.path.join(out_dir, f"ckpt-{kind}.pt"))
            torch.save(model.state_dict(), os.path.join(out_dir, f"{kind}-rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


KINDS = ("finetune", "sequential")


@pytest.mark.slow
def test_two_gloo_processes_match_single_process(tmp_path) -> None:
    init_file = str(tmp_path / "init")
    mp.spawn(_worker, args=(2, init_file, str(tmp_path)), nprocs=2, join=True)
    for kind in KINDS:
        _check(tmp_path, kind)


def _check(tmp_path, kind: str) -> None:
    ranks = [torch.load(tmp_path / f"{kind}-rank{r}.pt", weights_only=True) for r in range(2)]
    single = _train(kind, 8, None).state_dict()  # one process, the union of both ranks' batches
    for k in single:
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # replicas stay identical
        torch.testing.assert_close(ranks[0][k], single[k], rtol=1e-9, atol=1e-10)
    # only rank 0 wrote the checkpoint
    assert (tmp_path / f"ckpt-{kind}.pt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
