"""Shared test fixtures.

Real data (MNIST, CIFAR-10, the pretrained ResNet-32) is found through the environment variable
``TNN_SHARED_DIR`` (``make test`` sets it to ``../shared``); tests that need it are skipped when it is
absent. The package itself never refers to that folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


def _shared_dir() -> Path | None:
    value = os.environ.get("TNN_SHARED_DIR")
    if not value:
        candidate = Path(__file__).resolve().parents[1].parent / "shared"
        return candidate if candidate.is_dir() else None
    path = Path(value)
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if path is None:
        pytest.skip("real data not available (set TNN_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def datasets_dir(shared_dir: Path) -> Path:
    return shared_dir / "datasets"


@pytest.fixture(scope="session")
def resnet32_checkpoint(shared_dir: Path) -> Path:
    return shared_dir / "pretrained" / "resnet32-cifar10" / "resnet32-d509ac18.th"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_intra_op_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """One intra-op thread for the many tiny operations of the suite.

    On 2 cores, thread hand-off dominates tiny ``F.conv``/einsum calls (milliseconds instead of
    microseconds, far worse on a loaded machine). Tests marked ``slow`` (real models, real data) keep
    PyTorch's default. The previous setting is restored afterwards.
    """
    previous = torch.get_num_threads()
    if request.node.get_closest_marker("slow") is None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def lenet_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised LeNet-5 ``state_dict`` saved as a pretrained-weights file."""
    from tnn.models import get_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "lenet5.pt"
    torch.save(get_model("lenet5").state_dict(), path)
    return str(path)
