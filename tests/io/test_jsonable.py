"""to_jsonable: the one converter of metadata to plain JSON data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from tnn.io import to_jsonable


def test_tensors_and_numpy_values_become_python_numbers_and_lists():
    assert to_jsonable(torch.tensor(3)) == 3 and type(to_jsonable(torch.tensor(3))) is int
    assert to_jsonable(torch.arange(6).reshape(2, 3)) == [[0, 1, 2], [3, 4, 5]]
    assert to_jsonable(np.float32(0.5)) == 0.5 and type(to_jsonable(np.float32(0.5))) is float
    assert to_jsonable(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]
    assert type(to_jsonable(np.int64(7))) is int


def test_tuples_paths_and_nested_dicts():
    value = {"ranks": (2, (3, 4)), 5: {"shape": (1, torch.tensor(2))}, "out": Path("runs/a")}
    got = to_jsonable(value)
    assert got == {"ranks": [2, [3, 4]], "5": {"shape": [1, 2]}, "out": "runs/a"}
    assert json.loads(json.dumps(got)) == got
    assert value["ranks"] == (2, (3, 4))  # the input is left as it was


def test_non_finite_floats_only_replaced_when_strict():
    value = {"acc": float("nan"), "x": [float("inf"), 1.5], "t": torch.tensor([float("-inf")])}
    loose = to_jsonable(value)
    assert math.isnan(loose["acc"]) and loose["x"] == [math.inf, 1.5] and loose["t"] == [-math.inf]
    strict = to_jsonable(value, strict=True)
    assert strict == {"acc": None, "x": [None, 1.5], "t": [None]}
    json.dumps(strict, allow_nan=False)


def test_unknown_objects_are_left_for_json_to_refuse():
    marker = object()
    assert to_jsonable({"a": marker})["a"] is marker
    assert to_jsonable("text") == "text" and to_jsonable(None) is None and to_jsonable(True) is True
