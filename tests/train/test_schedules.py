"""Learning-rate schedules, and a run resumed mid-schedule ends with identical weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tnn.train import Checkpointing, finetune
from tnn.train.schedules import schedule


def test_constant_without_warmup_is_no_schedule() -> None:
    assert schedule("constant", 100) is None


def test_warmup_then_cosine_to_final() -> None:
    f = schedule("cosine", 100, warmup=0.1, final=0.05)
    assert f is not None
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(99) == pytest.approx(0.05, abs=1e-3)
    values = [f(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # non-increasing after warm-up


@pytest.mark.parametrize(("name", "kw", "match"), [
    ("linear", {}, "unknown learning-rate schedule"),
    ("cosine", {"warmup": 1.0}, "warmup"),
    ("cosine", {"final": 2.0}, "final"),
])
def test_bad_schedule_is_refused(name: str, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        schedule(name, 10, **kw)


def test_the_optimizer_follows_the_schedule() -> None:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 5, generator=g), torch.randint(0, 3, (32,), generator=g))
    model = nn.Linear(5, 3)
    seen: list[float] = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    torch.optim.Adam.step = spy  # type: ignore[method-assign]
    try:
        finetune(model, data, steps=6, batch_size=8, optimizer="adam", lr=0.1,
                 lr_factor=schedule("cosine", 6, warmup=0.34))
    finally:
        torch.optim.Adam.step = original  # type: ignore[method-assign]
    f = schedule("cosine", 6, warmup=0.34)
    assert f is not None
    assert seen == pytest.approx([0.1 * f(s) for s in range(6)])
    assert seen[0] < seen[1] and seen[-1] < seen[2]


def test_resume_mid_schedule_gives_identical_weights(tmp_path) -> None:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))

    def make() -> nn.Module:
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    kw = dict(steps=12, batch_size=8, optimizer="adam", lr=0.05,
              lr_factor=schedule("cosine", 12, warmup=0.25))
    a = make()
    finetune(a, data, **kw)
    b = make()
    finetune(b, data, checkpoint=Checkpointing(tmp_path / "c.pt", every=5), max_steps=7, **kw)
    c = make()
    finetune(c, data, checkpoint=Checkpointing(tmp_path / "c.pt", every=5, resume=True), **kw)
    for p, q in zip(a.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
