"""The one check per rule: format names (:func:`tnn.formats.check_format`) and compression rates
(:func:`tnn.formats.check_rate`), and the entry points that rely on them."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tnn
from tnn.cli.common import check_format as cli_check_format
from tnn.cli.common import check_rate as cli_check_rate
from tnn.cli.errors import CLIError
from tnn.experiments.runner import check_formats_and_rates
from tnn.formats import FORMATS, check_format, check_rate, get_format
from tnn.models import get_model
from tnn.nn import TensorialConv2d, TensorialLinear

BAD_NAMES = ["xyz", "", "RTT", " rtt", "rtt ", None, 3, ("rtt",)]
BAD_RATES = [0, 0.0, -0.1, 1.5, 1.0000001, float("nan"), float("inf"), -float("inf"), True, False, "0.1",
             None, [0.1], complex(0.1, 0)]
GOOD_RATES = [(1, 1.0), (0.1, 0.1), (1e-9, 1e-9), (np.float64(0.25), 0.25), (np.float32(0.5), 0.5),
              (np.int64(1), 1.0)]


@pytest.mark.parametrize("name", FORMATS)
def test_check_format_accepts_every_format(name: str) -> None:
    assert check_format(name) == name
    assert cli_check_format(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_format_names_value_and_valid_formats(name: object) -> None:
    message = f"unknown format {name!r}; valid formats: {', '.join(FORMATS)}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_format(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["xyz", ""])
def test_format_entry_points_share_the_check(name: str) -> None:
    message = re.escape(f"unknown format {name!r}; valid formats: {', '.join(FORMATS)}")
    with pytest.raises(ValueError, match=message):
        get_format(name)
    with pytest.raises(ValueError, match=message):
        TensorialConv2d(4, 4, 3, format=name, rate=0.5)
    with pytest.raises(ValueError, match=message):
        TensorialLinear(4, 4, format=name, rate=0.5)
    with pytest.raises(ValueError, match=message):
        tnn.compress(get_model("lenet5"), format=name, rate=0.5)
    with pytest.raises(ValueError, match=message):
        cli_check_format(name)
    with pytest.raises(ValueError, match=message):
        check_formats_and_rates(["rtt", name], [0.1])
    assert cli_check_format(None) is None


@pytest.mark.parametrize(("rate", "expected"), GOOD_RATES)
def test_check_rate_accepts_real_numbers_in_range(rate: float, expected: float) -> None:
    value = check_rate(rate)
    assert type(value) is float and value == pytest.approx(expected)


@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_check_rate_rejects_with_the_value_and_the_interval(rate: object) -> None:
    with pytest.raises(ValueError, match=r"rate must be a finite float in \(0, 1\], got ") as info:
        check_rate(rate)  # type: ignore[arg-type]
    assert repr(rate) in str(info.value) or repr(float(rate)) in str(info.value)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0.0, 1.5, float("nan"), True, "0.1"], ids=repr)
def test_rate_entry_points_share_the_check(rate: object) -> None:
    with pytest.raises(ValueError, match=r"rate must be a finite float in \(0, 1\]"):
        TensorialConv2d(4, 4, 3, format="cp", rate=rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rate must be a finite float in \(0, 1\]"):
        get_format("cp").ranks_for_rate(get_format("cp").geometry(4, 4, (3, 3)), rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rate must be a number in \(0, 1\], got " + re.escape(repr(rate))):
        tnn.compress(get_model("lenet5"), format="cp", rate=rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rates must be numbers in \(0, 1\], got " + re.escape(repr(rate))):
        check_formats_and_rates(["cp"], [0.5, rate])  # type: ignore[list-item]
    with pytest.raises(CLIError, match=r"--rate must be in \(0, 1\], got "):
        cli_check_rate(rate)  # type: ignore[arg-type]


def test_check_formats_and_rates_returns_checked_values() -> None:
    assert check_formats_and_rates(("rtt", "cp"), (1, 0.5)) == (["rtt", "cp"], [1.0, 0.5])
    with pytest.raises(ValueError, match="unknown format"):
        check_formats_and_rates([], [0.1])
    with pytest.raises(ValueError, match=r"rates must be numbers in \(0, 1\], got \[\]"):
        check_formats_and_rates(["rtt"], [])
