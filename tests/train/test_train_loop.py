"""Sequential training, fine-tuning, checkpoint atomicity and exact resume (tiny synthetic data)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tnn.io import CheckpointError, load_checkpoint
from tnn.train import (
    OUTPUT,
    Checkpointing,
    StageForward,
    evaluate,
    finetune,
    sequential_train,
    split_parameters,
)
from tnn.train.batches import batch_indices, batches_per_epoch, epoch_permutation, rank_indices


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.block(x)
        return self.fc(self.pool(x).flatten(1))


def _data(n: int = 48) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 6, 6, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return TensorDataset(x, y)


def _teacher_student() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    teacher = Net().eval()
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return teacher, student


def test_batch_order_is_deterministic_and_covers_epoch() -> None:
    perm = epoch_permutation(10, seed=3, phase=1, epoch=2)
    assert torch.equal(perm, epoch_permutation(10, seed=3, phase=1, epoch=2))
    assert not torch.equal(perm, epoch_permutation(10, seed=3, phase=1, epoch=3))
    assert sorted(perm.tolist()) == list(range(10))
    shares = [rank_indices(perm, r, 3) for r in range(3)]
    assert all(len(s) == 4 for s in shares)
    assert set(torch.cat(shares).tolist()) == set(range(10))
    nb = batches_per_epoch(10, 4)
    assert nb == 3
    epoch = torch.cat([batch_indices(10, 4, 3, 1, s) for s in range(nb)])
    assert torch.equal(epoch, epoch_permutation(10, 3, 1, 0))


def test_stage_forward_and_parameter_split() -> None:
    teacher, _ = _teacher_student()
    x = torch.randn(2, 3, 6, 6)
    captured = {}
    teacher.block.register_forward_hook(lambda m, a, o: captured.update(o=o))
    with torch.no_grad():
        teacher(x)
        out = StageForward(teacher, "block")(x)
    assert torch.equal(out, captured["o"])
    groups = split_parameters(teacher, ["bn1", "block", OUTPUT], x)
    names = [[n for n, _ in g] for g in groups]
    assert names[0] == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]
    assert names[1] == ["block.0.weight", "block.0.bias", "block.1.weight", "block.1.bias"]
    assert names[2] == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="forward order"):
        split_parameters(teacher, ["block", "bn1"], x)


class FactoredLinear(nn.Module):
    """Holds its parameters in a child ParameterList that is never called (like the tensorial layers)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.factors = nn.ParameterList([nn.Parameter(torch.randn(n_out, 2)),
                                         nn.Parameter(torch.randn(2, n_in))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.factors[0] @ self.factors[1]).T


def test_parameters_in_uncalled_children_belong_to_their_caller() -> None:
    model = nn.Sequential(nn.Linear(4, 4), FactoredLinear(4, 3), nn.ReLU(), FactoredLinear(3, 2))
    groups = split_parameters(model, ["1", OUTPUT], torch.randn(2, 4))
    assert [n for n, _ in groups[0]] == ["0.weight", "0.bias", "1.factors.0", "1.factors.1"]
    assert [n for n, _ in groups[1]] == ["3.factors.0", "3.factors.1"]


def test_sequential_training_reduces_stage_mse_and_freezes_bn() -> None:
    teacher, student = _teacher_student()
    data = _data()
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    bn_before = student.bn1.running_mean.clone()
    hist = sequential_train(student, teacher, data, ["bn1", "block"], steps_per_stage=30, batch_size=16,
                            lr=1e-2)
    assert [p["phase"] for p in hist.phases] == ["bn1", "block", "output"]
    for name in ("bn1", "block", "output"):
        losses = hist.losses(name)
        assert len(losses) == 30
        assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, name
    assert torch.equal(student.bn1.running_mean, bn_before)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, t_before[k])
    # stage outputs now close to the teacher's
    x = data.tensors[0]
    with torch.no_grad():
        err = (StageForward(student, "block")(x) - StageForward(teacher, "block")(x)).pow(2).mean()
    assert float(err) < hist.losses("block")[0]


def test_teacher_cache_gives_same_training_as_recomputing() -> None:
    teacher, student = _teacher_student()
    student2 = copy.deepcopy(student)
    data = _data()
    h1 = sequential_train(student, teacher, data, ["block"], steps_per_stage=8, batch_size=16)
    h2 = sequential_train(student2, teacher, data, ["block"], steps_per_stage=8, batch_size=16,
                          cache_teacher=True)
    # float16 targets: close, not bit-equal
    assert h1.losses() == pytest.approx(h2.losses(), rel=1e-2, abs=1e-5)


def test_resume_equals_uninterrupted_run(tmp_path) -> None:
    teacher, student = _teacher_student()
    data = _data()
    full = copy.deepcopy(student)
    h_full = sequential_train(full, teacher, data, ["bn1", "block"], steps_per_stage=7, batch_size=16,
                              checkpoint=Checkpointing(tmp_path / "full.pt", every=3))
    ck = tmp_path / "run.pt"
    part = copy.deepcopy(student)
    sequential_train(part, teacher, data, ["bn1", "block"], steps_per_stage=7, batch_size=16,
                     checkpoint=Checkpointing(ck, every=3), max_steps=12)
    meta = load_checkpoint(ck)["metadata"]
    assert meta["step"] == 10  # last checkpoint: 7 steps of stage 1 + 3 of stage 2
    assert meta["tnn_version"] and meta["kind"] == "sequential"
    resumed = copy.deepcopy(student)  # fresh process: starts from the same initial model
    h_res = sequential_train(resumed, teacher, data, ["bn1", "block"], steps_per_stage=7, batch_size=16,
                             checkpoint=Checkpointing(ck, every=3, resume=True))
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [r["loss"] for r in h_full.steps] == [r["loss"] for r in h_res.steps]
    assert [p["phase"] for p in h_res.phases] == ["bn1", "block", "output"]


def test_finetune_resume_with_augmentation_rng(tmp_path) -> None:
    """Resume restores RNG state: dropout draws continue exactly."""
    data = _data()

    def make() -> nn.Module:
        torch.manual_seed(5)
        return nn.Sequential(nn.Flatten(), nn.Linear(108, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 4))

    a = make()
    finetune(a, data, steps=9, batch_size=8, lr=0.05)
    b = make()
    finetune(b, data, steps=9, batch_size=8, lr=0.05, checkpoint=Checkpointing(tmp_path / "c.pt", every=4),
             max_steps=5)
    torch.manual_seed(123)  # a new process has other RNG state: resume must restore it
    c = make()
    finetune(c, data, steps=9, batch_size=8, lr=0.05,
             checkpoint=Checkpointing(tmp_path / "c.pt", every=4, resume=True))
    for p, q in zip(a.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q)


def test_finetune_with_distillation_learns() -> None:
    data = _data(64)
    teacher, student = _teacher_student()
    before = evaluate(student, data)["loss"]
    hist = finetune(student, data, teacher=teacher, alpha=0.5, epochs=6, batch_size=16, optimizer="adam",
                    lr=1e-2)
    assert len(hist.steps) == 24
    assert evaluate(student, data)["loss"] < before


def test_evaluate_counts() -> None:
    data = _data(10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(108, 4))
    res = evaluate(model, data, batch_size=3, limit=7)
    x, y = data.tensors
    with torch.no_grad():
        expected = int((model(x[:7]).argmax(1) == y[:7]).sum())
    assert res["n"] == 7 and res["correct"] == expected and res["accuracy"] == expected / 7
    with pytest.raises(ValueError, match="limit"):
        evaluate(model, data, limit=0)


def test_budget_and_stage_errors() -> None:
    teacher, student = _teacher_student()
    with pytest.raises(ValueError, match="exactly one budget"):
        sequential_train(student, teacher, _data(), ["block"])
    with pytest.raises(ValueError, match="unknown stage module"):
        sequential_train(student, teacher, _data(), ["nope"], steps_per_stage=1)


def test_resume_rejects_foreign_checkpoint(tmp_path) -> None:
    teacher, student = _teacher_student()
    ck = tmp_path / "x.pt"
    sequential_train(student, teacher, _data(), ["block"], steps_per_stage=2, batch_size=16,
                     checkpoint=Checkpointing(ck))
    with pytest.raises(CheckpointError, match="phases"):
        sequential_train(student, teacher, _data(), ["bn1", "block"], steps_per_stage=2, batch_size=16,
                         checkpoint=Checkpointing(ck, resume=True))
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        sequential_train(student, teacher, _data(), ["block"], steps_per_stage=2, batch_size=16,
                         checkpoint=Checkpointing(ck, resume=True))
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
