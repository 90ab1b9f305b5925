"""Bad input everywhere: only ValueError / TypeError with a message naming the problem.

Hypothesis throws random strings, shapes and constructor arguments at the spec parser, ``conv_einsum``
and the layer constructors; a construction that succeeds must then compute exactly what the dense
reference (``F.conv2d`` / ``F.linear`` / ``torch.einsum`` with the reconstructed kernel) computes.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tnn.algebra import conv_einsum, parse_spec
from tnn.compression import compress
from tnn.data import get_dataset
from tnn.formats import FORMATS
from tnn.io import CheckpointError, load_checkpoint, save_checkpoint
from tnn.models import get_model, load_pretrained
from tnn.nn import TensorialConv2d, TensorialLinear, TNNLayer

DOCUMENTED = (ValueError, TypeError)
SPEC_ALPHABET = "abcdhijkwxyzAB,->| .1_$é\t"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _message_ok(exc: BaseException) -> None:
    text = str(exc)
    assert text and len(text) > 10, f"{type(exc).__name__} without a useful message: {text!r}"


# ------------------------------------------------------------------ algebra
@FUZZ
@given(st.one_of(st.text(alphabet=SPEC_ALPHABET, max_size=24), st.text(max_size=12)))
def test_parse_spec_random_strings(spec):
    try:
        parsed = parse_spec(spec)
    except DOCUMENTED as exc:
        _message_ok(exc)
        return
    assert len(parsed.inputs) >= 1 and set(parsed.conv) <= set(parsed.output)


@pytest.mark.parametrize("spec", [None, 3, b"ij,jk->ik", ["ij"], 2.5])
def test_parse_spec_non_strings_are_type_errors(spec):
    with pytest.raises(TypeError, match="spec must be a str"):
        parse_spec(spec)


@FUZZ
@given(
    spec=st.text(alphabet="abhw,->|", max_size=14),
    shapes=st.lists(st.lists(st.integers(0, 4), max_size=4), max_size=3),
    padding=st.one_of(st.integers(-2, 3), st.sampled_from(["same", "valid", "full", "bogus", (1, 0)])),
    stride=st.integers(-1, 3),
)
def test_conv_einsum_random_specs_shapes_and_options(spec, shapes, padding, stride):
    ops = [torch.randn(s, dtype=torch.float64) for s in shapes]
    try:
        out = conv_einsum(spec, *ops, padding=padding, stride=stride)
    except DOCUMENTED as exc:
        _message_ok(exc)
        return
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    if "|" not in spec:  # a plain einsum: equal to torch's
        assert torch.allclose(out, torch.einsum(spec.replace(" ", ""), *ops), atol=1e-10)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("ij,jk->ik", torch.ones(2, 3), torch.ones(4, 5)), "j"),
        (("ij,jk->ik", torch.ones(2, 3)), "operand"),
        (("ij,jk->ik", torch.ones(2, 3), [[1.0]]), "Tensor"),
        (("ij,jk->ik", torch.ones(2, 3), torch.ones(3, 2, dtype=torch.float64)), "dtype"),
        (("bshw,tshw->bthw|hw", torch.ones(1, 2, 3, 3), torch.ones(4, 2, 5, 5)), ""),
    ],
)
def test_conv_einsum_mismatches_name_the_problem(args, needle):
    with pytest.raises(DOCUMENTED) as info:
        conv_einsum(*args)
    _message_ok(info.value)
    assert needle in str(info.value)


# ------------------------------------------------------------------ layers
BAD_RATES = [float("nan"), float("inf"), 0.0, -0.5, 1.5, "0.5", True]

rate_values = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.05, 0.3, 1.0]),
    st.sampled_from(["0.5", True, -1]),
)
rank_values = st.one_of(
    st.none(), st.integers(-2, 6), st.lists(st.integers(-1, 5), max_size=5), st.just("3"), st.just(2.5)
)
format_names = st.one_of(st.sampled_from(FORMATS), st.text(max_size=4), st.none(), st.integers())


@FUZZ
@given(
    s=st.integers(-1, 6), t=st.integers(-1, 6), k=st.one_of(st.integers(-1, 3), st.tuples(st.integers(0, 3),
                                                                                          st.integers(1, 3))),
    fmt=format_names, rate=rate_values, rank=rank_values,
    stride=st.integers(0, 2), padding=st.one_of(st.integers(-1, 2), st.sampled_from(["same", "valid", "x"])),
    groups=st.integers(0, 3),
)
def test_tensorial_conv2d_random_constructor_arguments(s, t, k, fmt, rate, rank, stride, padding, groups):
    try:
        layer = TensorialConv2d(s, t, k, format=fmt, rate=rate, rank=rank, stride=stride, padding=padding,
                                groups=groups, dtype=torch.float64)
    except DOCUMENTED as exc:
        _message_ok(exc)
        return
    kh, kw = layer.kernel_size
    x = torch.randn(2, s, kh + 3, kw + 2, dtype=torch.float64)
    ref = F.conv2d(F.pad(x, layer._pre_pad) if layer._pre_pad else x, layer.dense_weight(), layer.bias,
                   stride=layer.stride, padding=layer._conv_pad, dilation=layer.dilation, groups=layer.groups)
    torch.testing.assert_close(layer(x), ref, rtol=1e-9, atol=1e-9)


@FUZZ
@given(s=st.integers(-1, 9), t=st.integers(-1, 9), fmt=format_names, rate=rate_values, rank=rank_values,
       bias=st.one_of(st.booleans(), st.just("yes")))
def test_tensorial_linear_random_constructor_arguments(s, t, fmt, rate, rank, bias):
    try:
        layer = TensorialLinear(s, t, format=fmt, rate=rate, rank=rank, bias=bias, dtype=torch.float64)
    except DOCUMENTED as exc:
        _message_ok(exc)
        return
    x = torch.randn(3, s, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.linear(x, layer.dense_weight(), layer.bias), rtol=1e-9, atol=1e-9)


@FUZZ
@given(spec=st.text(alphabet="bijkz,->| ", max_size=16),
       sizes=st.dictionaries(st.sampled_from("bijkzq"), st.integers(-1, 4), max_size=6))
def test_tnn_layer_random_specs_and_sizes(spec, sizes):
    try:
        layer = TNNLayer(spec, sizes, bias=False, dtype=torch.float64)
    except DOCUMENTED as exc:
        _message_ok(exc)
        return
    shape = [layer.sizes.get(c, 2) for c in layer.parsed.inputs[0]]
    x = torch.randn(shape, dtype=torch.float64)
    out = layer(x)
    if not layer.parsed.conv:
        ref = torch.einsum(str(layer.parsed), x, *layer.kernels)
        torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rate", BAD_RATES)
def test_layer_and_compress_reject_bad_rates(rate):
    with pytest.raises(DOCUMENTED, match="rate"):
        TensorialConv2d(4, 4, 3, format="rtt", rate=rate)
    with pytest.raises(DOCUMENTED, match="rate"):
        compress(get_model("lenet5"), format="rtt", rate=rate)


def test_compress_names_unknown_format_model_and_bad_plans():
    model = get_model("lenet5")
    with pytest.raises(ValueError, match="unknown format 'bogus'.*rtt"):
        compress(model, format="bogus", rate=0.1)
    with pytest.raises(TypeError, match="nn.Module"):
        compress("lenet5", format="rtt", rate=0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="include"):
        compress(model, format="rtt", rate=0.1, include=[3])  # type: ignore[list-item]
    plan = compress(get_model("resnet20"), format="rtt", rate=0.5, init="random").tnn_report
    with pytest.raises(ValueError, match="not in the model"):
        compress(model, plan=plan)
    with pytest.raises(ValueError, match="unknown model 'resnet7'.*lenet5"):
        get_model("resnet7")


def test_ranks_that_do_not_fit_are_value_errors():
    with pytest.raises(ValueError, match="cannot compress|smallest possible rate"):
        TensorialLinear(150, 3, format="cp", rate=0.01)
    with pytest.raises(DOCUMENTED):
        TensorialConv2d(4, 4, 3, format="tk", rank=[0, 0])
    with pytest.raises(DOCUMENTED):
        TensorialConv2d(4, 4, 3, format="tt", rank=[1, 2, 3, 4, 5, 6, 7])


# ------------------------------------------------------------------ data
def test_datasets_unknown_names_missing_and_damaged_files(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'|'cifar11'"):
        get_dataset("cifar11", "train", data_dir=tmp_path)
    with pytest.raises(DOCUMENTED, match="split|'validation'"):
        get_dataset("synthetic", "validation")
    with pytest.raises(DOCUMENTED, match="MNIST|mnist"):
        get_dataset("mnist", "test", data_dir=tmp_path)
    with pytest.raises(DOCUMENTED, match="CIFAR|cifar"):
        get_dataset("cifar10", "test", data_dir=tmp_path)
    # truncated MNIST IDX files
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    (mnist / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") +
                                                  (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    labels = b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 10
    (mnist / "t10k-labels-idx1-ubyte").write_bytes(labels)
    with pytest.raises(ValueError) as info:
        get_dataset("mnist", "test", data_dir=tmp_path)
    assert "t10k-images" in str(info.value)
    # corrupted CIFAR npz batch
    cifar = tmp_path / "cifar10"
    cifar.mkdir()
    (cifar / "test_batch.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match="test_batch"):
        get_dataset("cifar10", "test", data_dir=tmp_path)


# ------------------------------------------------------------------ checkpoints
def test_checkpoints_missing_truncated_corrupted_or_for_another_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"metadata": {"model": "lenet5"}, "model": get_model("lenet5").state_dict()})
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(cut)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(noise)
    flipped = bytearray(data)
    mid = len(flipped) // 2
    flipped[mid : mid + 64] = b"\xa5" * 64
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="CRC"):  # torch.load alone would load it silently
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="CRC"):
        load_pretrained(get_model("lenet5"), bad)
    other = tmp_path / "r20.pt"
    torch.save(get_model("resnet20").state_dict(), other)
    with pytest.raises(ValueError, match="does not fit"):
        load_pretrained(get_model("lenet5"), other)
    for path in (cut, noise):
        with pytest.raises(ValueError, match=path.name):
            load_pretrained(get_model("lenet5"), path)


# ------------------------------------------------------------------ CLI
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["info", "--model", "lenet5", "--format", "rtt", "--rate", "nan"], "--rate"),
        (["info", "--model", "lenet5", "--format", "rtt", "--rate", "0"], "--rate"),
        (["info", "--model", "lenet5", "--format", "rtt", "--rate", "1.5"], "--rate"),
        (["info", "--model", "lenet5", "--format", "bogus"], "unknown format 'bogus'"),
        (["info", "--model", "nosuchnet", "--format", "rtt"], "nosuchnet"),
        (["compress", "--model", "lenet5", "--weights", "missing.pt", "--format", "rtt", "--out", "o"],
         "missing.pt"),
        (["compress", "--model", "lenet5", "--weights", "noise.pt", "--format", "rtt", "--out", "o"],
         "noise.pt"),
        (["evaluate", "--model", "lenet5", "--dataset", "nosuchdata", "--random-weights"], "nosuchdata"),
        (["compress", "--model", "lenet5", "--format", "rtt", "--rate", "abc", "--out", "o"], "abc"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    from tnn.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 10)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert "Traceback" not in err and needle in last, err
    assert last.startswith("tnn: error:") or last.startswith("tnn ") or "error:" in last
    assert not (tmp_path / "o").exists()


def test_rates_are_finite_numbers():
    # one source of truth: the same check for layers, formats and compress
    from tnn.formats import check_rate

    for rate in BAD_RATES:
        with pytest.raises(DOCUMENTED):
            check_rate(rate)
    assert check_rate(1) == 1.0 and math.isclose(check_rate(0.25), 0.25)


@pytest.mark.parametrize(
    ("build", "exc", "needle"),
    [
        (lambda: TensorialConv2d(4.5, 4, 3, rate=0.5), TypeError, "positive int, got 4.5"),
        (lambda: TensorialConv2d("4", 4, 3, rate=0.5), TypeError, "in_channels"),
        (lambda: TensorialConv2d(4, 0, 3, rate=0.5), ValueError, "out_channels must be a positive int"),
        (lambda: TensorialConv2d(4, 4, 3, rate=0.5, groups=1.0), TypeError, "groups"),
        (lambda: TensorialLinear(8, True, rate=0.5), TypeError, "out_features"),
        (lambda: TensorialConv2d(4, 4, 3, rate=0.5, dtype=torch.int64), TypeError, "floating-point"),
        (lambda: TensorialLinear(4, 4, rate=1.0)([1.0, 2.0, 3.0, 4.0]), TypeError, "torch.Tensor, got list"),
        (lambda: TensorialConv2d(4, 4, 3, rate=0.5)(torch.ones(1, 3, 5, 5)), ValueError, "(B, 4, H, W)"),
    ],
)
def test_layer_arguments_and_inputs_are_checked(build, exc, needle):
    with pytest.raises(exc) as info:
        build()
    assert needle in str(info.value)


def test_compress_input_shape_that_does_not_fit_the_model():
    with pytest.raises(ValueError, match=r"input_shape \(3, 5, 5\) does not fit the model"):
        compress(get_model("lenet5"), format="rtt", rate=0.5, input_shape=(3, 5, 5))


def test_get_model_bad_keywords():
    with pytest.raises(ValueError, match="cannot build model 'lenet5'.*num_classes"):
        get_model("lenet5", num_classes=-1)
    with pytest.raises(TypeError, match="bogus"):
        get_model("lenet5", bogus=1)


CLI_TOKENS = ["--model", "lenet5", "resnet7", "--format", "rtt", "cp", "bogus", "--rate", "0.3", "nan", "-1",
              "1e9", "--weights", "missing.pt", "--json", "--quiet", "--include", "conv*", "--device", "tpu",
              "--seed", "x", "", "--", "\x00", "é"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["info", "evaluate", "export", "train"]),
       st.lists(st.sampled_from(CLI_TOKENS), max_size=8))
def test_cli_random_arguments_never_crash(tmp_path_factory, command, tokens):
    """Random flag soups: exit status 0 or 2, never a traceback or another exception."""
    import contextlib
    import io

    from tnn.cli.main import main

    out_dir = tmp_path_factory.mktemp("cli")
    err = io.StringIO()
    argv = [command, *tokens]
    if command in ("export", "train"):
        argv += ["--out", str(out_dir / ("o.onnx" if command == "export" else "o"))]
    cwd = os.getcwd()
    os.chdir(out_dir)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        os.chdir(cwd)
    assert code in (0, 2), (argv, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue()
