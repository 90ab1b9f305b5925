"""The package surface: subpackages reachable after ``import tnn``, public names listed and importable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import tnn


def test_subpackages_are_reachable_after_import_tnn_alone() -> None:
    code = ("import tnn; layer = tnn.nn.TensorialConv2d(4, 4, 3, format='cp', rate=0.5); "
            "print(type(layer).__name__, tnn.recipes.compress_and_train.__name__, tnn.models.MODELS[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["TensorialConv2d", "compress_and_train", "lenet5"]


def test_import_tnn_does_not_import_torch() -> None:
    code = "import sys, tnn; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tnn.nope  # noqa: B018


@pytest.mark.parametrize("name", tnn.SUBPACKAGES)
def test_every_public_name_of_a_subpackage_exists(name: str) -> None:
    module = importlib.import_module(f"tnn.{name}")
    public = getattr(module, "__all__", None)
    if name == "cli":  # the command line: a program, not a library surface
        return
    assert public, f"tnn.{name} lists no public names in __all__"
    missing = [n for n in public if not hasattr(module, n)]
    assert not missing, f"tnn.{name}.__all__ lists missing names {missing}"
