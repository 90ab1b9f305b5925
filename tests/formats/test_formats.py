"""The formats: factor shapes, parameter counts, rank selection, reconstruction, decomposition.

Reconstruction is checked against TensorLy (an independent implementation of CP / Tucker / TT / TR);
parameter counts against the closed-form formulas of ``docs/formats.md``.
"""

from __future__ import annotations

import math

import pytest
import tensorly as tl
import torch

import tnn
from tnn.formats import FORMATS, KernelGeometry, get_format


@pytest.fixture(autouse=True)
def _tensorly_pytorch_backend():
    """TensorLy's torch backend for this module only (its backend is global state)."""
    with tl.backend_context("pytorch"):
        yield

CONV_SHAPES = [  # (T, S, (kh, kw), groups)
    (20, 1, (5, 5), 1),
    (50, 20, (5, 5), 1),
    (16, 6, (5, 5), 1),
    (32, 16, (3, 3), 1),
    (64, 256, (1, 1), 1),
    (64, 3, (7, 7), 1),
    (32, 16, (3, 3), 4),
    (8, 12, (1, 3), 1),
]
LINEAR_SHAPES = [(120, 400, (), 1), (10, 84, (), 1), (10, 64, (), 1)]


def _geom(name: str, shape: tuple, m: int | None = None) -> KernelGeometry:
    t, s, k, g = shape
    return get_format(name).geometry(t, s, k, g, m)


def test_registry() -> None:
    assert tnn.FORMATS == FORMATS == ("svd", "cp", "tk", "tt", "tr", "rcp", "rtk", "rtt", "rtr")
    for name in FORMATS:
        assert get_format(name).name == name
    with pytest.raises(ValueError, match="unknown format 'xyz'.*svd, cp, tk, tt, tr, rcp, rtk, rtt, rtr"):
        get_format("xyz")


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape", CONV_SHAPES + LINEAR_SHAPES)
def test_shapes_params_and_spec(name: str, shape: tuple) -> None:
    fmt = get_format(name)
    geom = _geom(name, shape)
    if name in ("rtt", "rtr") and not geom.is_conv and geom.m < 2:
        pytest.skip("needs two folds")
    ranks = fmt.ranks_for_rate(geom, 0.5)
    shapes = fmt.factor_shapes(geom, ranks)
    assert fmt.param_count(geom, ranks) == sum(math.prod(s) for s in shapes) <= geom.dense_params // 2
    factors = fmt.random_init(geom, ranks, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert [tuple(f.shape) for f in factors] == shapes
    kernel = fmt.reconstruct(factors, geom, ranks)
    assert kernel.shape == geom.weight_shape
    spec = fmt.spec(geom, ranks)
    operands, _, output = spec.partition("->")
    assert len(operands.split(",")) == len(shapes) + 1
    assert output.startswith("b")
    if geom.is_conv:
        assert spec.endswith("|hw")


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape", CONV_SHAPES[:4] + LINEAR_SHAPES[:1])
def test_budget_is_respected_and_ranks_are_maximal(name: str, shape: tuple) -> None:
    fmt = get_format(name)
    geom = _geom(name, shape)
    caps = fmt.max_ranks(geom)
    for rate in (0.05, 0.1, 0.3, 0.7, 1.0):
        budget = math.floor(rate * geom.dense_params + 1e-9)
        try:
            ranks = fmt.ranks_for_rate(geom, rate)
        except ValueError as exc:
            assert fmt.min_params(geom) > budget
            assert "smallest possible rate" in str(exc)
            continue
        assert fmt.param_count(geom, ranks) <= budget
        assert all(1 <= r <= c for r, c in zip(ranks, caps, strict=True))
        for k in range(len(ranks)):  # no single rank can grow by one
            bigger = list(ranks)
            bigger[k] += 1
            bigger = tuple(bigger)
            assert (
                bigger[k] > caps[k]
                or fmt.repair_ranks(geom, bigger) != bigger
                or fmt.param_count(geom, bigger) > budget
            )


def _closed_form(name: str, geom: KernelGeometry, r: tuple[int, ...]) -> int:
    """Parameter counts as written in docs/formats.md (conv, kh, kw > 1, groups = 1)."""
    S, T = geom.s, geom.t  # noqa: N806
    kh, kw = geom.kernel_size
    pairs = [s * t for s, t in zip(geom.in_folds, geom.out_folds, strict=True)]
    if name == "svd":
        return r[0] * (S * kh + T * kw)
    if name == "cp":
        return r[0] * (S + kh * kw + T)
    if name == "tk":
        return S * r[0] + T * r[1] + r[0] * r[1] * kh * kw
    if name == "tt":
        return S * r[0] + r[0] * kh * r[1] + r[1] * kw * r[2] + r[2] * T
    if name == "tr":
        return r[0] * S * r[1] + r[1] * kh * r[2] + r[2] * kw * r[3] + r[3] * T * r[0]
    if name == "rcp":
        return r[0] * (sum(pairs) + kh * kw)
    if name == "rtk":
        return sum(p * q for p, q in zip(pairs, r, strict=True)) + math.prod(r) * kh * kw
    if name == "rtt":
        full = [1, *r]
        return sum(full[k] * pairs[k] * full[k + 1] for k in range(len(pairs))) + r[-1] * kh * kw
    if name == "rtr":
        m = len(pairs)
        return sum(r[k] * pairs[k] * r[k + 1] for k in range(m)) + r[m] * kh * kw * r[0]
    raise AssertionError(name)


@pytest.mark.parametrize("name", FORMATS)
def test_param_count_closed_form(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(50, 20, (5, 5), 1, 2 if fmt.reshaped else None)
    ranks = fmt.ranks_for_rate(geom, 0.2)
    assert fmt.param_count(geom, ranks) == _closed_form(name, geom, ranks)
    grouped = fmt.geometry(64, 32, (3, 3), 4, 2 if fmt.reshaped else None)
    ranks = fmt.ranks_for_rate(grouped, 0.5)
    per_group = fmt.geometry(16, 8, (3, 3), 1, 2 if fmt.reshaped else None)
    assert fmt.param_count(grouped, ranks) == 4 * fmt.param_count(per_group, ranks)


# ---------------------------------------------------------------------------- TensorLy oracles
def _unpair(tensor: torch.Tensor, geom: KernelGeometry) -> torch.Tensor:
    """(S_0 T_0, .., S_{m-1} T_{m-1}, kh kw) -> (T, S, kh, kw)."""
    m = geom.m
    sizes = [x for st in zip(geom.in_folds, geom.out_folds, strict=True) for x in st]
    full = tensor.reshape(*sizes, *geom.kernel_size)
    perm = [2 * i + 1 for i in range(m)] + [2 * i for i in range(m)] + [2 * m, 2 * m + 1]
    return full.permute(perm).reshape(geom.weight_shape)


def _oracle(name: str, f: list[torch.Tensor], geom: KernelGeometry) -> torch.Tensor:
    S, T = geom.s, geom.t  # noqa: N806
    kh, kw = geom.kernel_size
    if name == "svd":
        u, v = f  # U[s, h, r], V[r, t, w]
        return (u.reshape(S * kh, -1) @ v.reshape(-1, T * kw)).reshape(S, kh, T, kw).permute(2, 0, 1, 3)
    if name == "cp":
        a, b, c = f  # A[r, s], B[r, h, w], C[r, t]
        full = tl.cp_to_tensor((None, [a.T, b.reshape(-1, kh * kw).T, c.T]))
        return full.reshape(S, kh, kw, T).permute(3, 0, 1, 2)
    if name == "tk":
        a, c, g = f  # A[s, r], C[t, q], G[r, q, h, w]
        return tl.tucker_to_tensor((g, [a, c, torch.eye(kh, dtype=a.dtype), torch.eye(kw, dtype=a.dtype)]))\
            .permute(1, 0, 2, 3)
    if name == "tt":
        g1, g2, g3, g4 = f
        return tl.tt_to_tensor([g1[None], g2, g3, g4[..., None]]).permute(3, 0, 1, 2)
    if name == "tr":
        return tl.tr_to_tensor(f).permute(3, 0, 1, 2)
    pairs = [s * t for s, t in zip(geom.in_folds, geom.out_folds, strict=True)]
    if name == "rcp":
        mats = [x.reshape(x.shape[0], -1).T for x in f]
        return _unpair(tl.cp_to_tensor((None, mats)), geom)
    if name == "rtk":
        *us, core = f
        mats = [u.reshape(p, -1) for u, p in zip(us, pairs, strict=True)]
        core = core.reshape(*core.shape[: len(us)], kh * kw)
        return _unpair(tl.tucker_to_tensor((core, mats), modes=list(range(len(us)))), geom)
    if name == "rtt":
        cores = [f[0].reshape(1, pairs[0], -1)]
        cores += [x.reshape(x.shape[0], p, x.shape[-1]) for x, p in zip(f[1:-1], pairs[1:], strict=True)]
        cores += [f[-1].reshape(f[-1].shape[0], kh * kw, 1)]
        return _unpair(tl.tt_to_tensor(cores), geom)
    if name == "rtr":
        cores = [x.reshape(x.shape[0], p, x.shape[-1]) for x, p in zip(f[:-1], pairs, strict=True)]
        cores += [f[-1].reshape(f[-1].shape[0], kh * kw, f[-1].shape[-1])]
        return _unpair(tl.tr_to_tensor(cores), geom)
    raise AssertionError(name)


@pytest.mark.parametrize("name", FORMATS)
def test_reconstruct_matches_tensorly(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(50, 20, (5, 3), 1, 2 if fmt.reshaped else None)
    ranks = fmt.ranks_for_rate(geom, 0.3)
    factors = fmt.random_init(geom, ranks, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(fmt.reconstruct(factors, geom, ranks), _oracle(name, factors, geom))


# ---------------------------------------------------------------------------- decomposition
@pytest.mark.parametrize("name", [f for f in FORMATS if f not in ("tr", "rtr")])
def test_decompose_recovers_a_kernel_of_its_own_ranks(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(16, 12, (3, 3), 1, 2 if fmt.reshaped else None)
    ranks = {"cp": (3,), "rcp": (3,)}.get(name) or fmt.ranks_for_rate(geom, 0.3)
    gen = torch.Generator().manual_seed(2)
    kernel = fmt.reconstruct(fmt.random_init(geom, ranks, generator=gen, dtype=torch.float64), geom, ranks)
    factors = fmt.decompose(kernel, geom, ranks)
    err = (fmt.reconstruct(factors, geom, ranks) - kernel).norm() / kernel.norm()
    assert err < (1e-6 if name in ("cp", "rcp") else 1e-10), err


@pytest.mark.parametrize("name", ["tr", "rtr"])
def test_ring_decomposition_finds_ring_structure(name: str) -> None:
    """TR-SVD + a few ALS sweeps is not exact at the true ring ranks (TR-SVD splits the first bond
    arbitrarily), but a TR kernel must be approximated far better than a random one."""
    fmt = get_format(name)
    geom = fmt.geometry(8, 6, (3, 3), 1, 2 if fmt.reshaped else None)
    ranks = fmt.ranks_for_rate(geom, 0.2)
    gen = torch.Generator().manual_seed(2)
    errors = []
    for kernel in (
        fmt.reconstruct(fmt.random_init(geom, ranks, generator=gen, dtype=torch.float64), geom, ranks),
        torch.randn(geom.weight_shape, generator=gen, dtype=torch.float64),
    ):
        rec = fmt.reconstruct(fmt.decompose(kernel, geom, ranks), geom, ranks)
        errors.append(float((rec - kernel).norm() / kernel.norm()))
    assert errors[0] < 0.6 * errors[1], errors


@pytest.mark.parametrize("name", ["tr", "rtr"])
def test_ring_decomposition_cores_do_not_cancel(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ring's cores stay at the kernel's scale: plain TR-ALS on a 64x64x3x3 kernel at rate 0.1 gives
    rtr cores whose norms multiply to ~1000x the kernel's norm (they cancel), which Adam cannot train;
    the ridge of ``TR_ALS_RIDGE`` keeps that product small at the same error."""
    from tnn.formats import engines

    fmt = get_format(name)
    geom = fmt.geometry(64, 64, (3, 3), 1)
    ranks = fmt.ranks_for_rate(geom, 0.1)
    kernel = torch.randn(geom.weight_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def gain_and_error(ridge: float) -> tuple[float, float]:
        monkeypatch.setattr(engines, "TR_ALS_RIDGE", ridge)
        factors = fmt.decompose(kernel, geom, ranks)
        rec = fmt.reconstruct(factors, geom, ranks)
        gain = math.prod(float(f.norm()) for f in factors) / float(kernel.norm())
        return gain, float((rec - kernel).norm() / kernel.norm())

    default_gain, default_error = gain_and_error(engines.TR_ALS_RIDGE)
    plain_gain, plain_error = gain_and_error(0.0)
    assert default_gain < 40, default_gain
    assert default_error < plain_error + 0.01
    if name == "rtr":
        assert plain_gain > 10 * default_gain, (plain_gain, default_gain)


@pytest.mark.parametrize("name", ["svd", "tk", "tt", "rtk", "rtt"])
def test_decompose_is_exact_at_maximal_ranks(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(8, 6, (3, 3), 1)
    ranks = fmt.max_ranks(geom)
    assert fmt.repair_ranks(geom, ranks) == ranks
    kernel = torch.randn(geom.weight_shape, dtype=torch.float64)
    rec = fmt.reconstruct(fmt.decompose(kernel, geom, ranks), geom, ranks)
    torch.testing.assert_close(rec, kernel)


@pytest.mark.parametrize("name", FORMATS)
def test_grouped_decomposition_is_per_group(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(8, 8, (3, 3), 2, 2 if fmt.reshaped else None)
    ranks = fmt.ranks_for_rate(geom, 0.3)
    weight = torch.randn(geom.weight_shape, dtype=torch.float64)
    factors = fmt.decompose(weight, geom, ranks)
    single = fmt.geometry(4, 4, (3, 3), 1, 2 if fmt.reshaped else None)
    for i in range(2):
        alone = fmt.decompose(weight[4 * i : 4 * i + 4], single, ranks)
        for a, b in zip(factors, alone, strict=True):
            torch.testing.assert_close(a[i], b)


@pytest.mark.parametrize("name", FORMATS)
def test_random_init_variance(name: str) -> None:
    fmt = get_format(name)
    geom = fmt.geometry(32, 32, (3, 3))
    ranks = fmt.ranks_for_rate(geom, 0.2)
    gen = torch.Generator().manual_seed(3)
    variances = [
        fmt.reconstruct(fmt.random_init(geom, ranks, generator=gen, dtype=torch.float64), geom, ranks).var()
        for _ in range(20)
    ]
    ratio = float(torch.stack(variances).mean()) * 3 * 32 * 9  # Kaiming-uniform variance = 1 / (3 fan_in)
    assert 0.6 < ratio < 1.6, ratio


# ---------------------------------------------------------------------------- validation
def test_rank_validation_messages() -> None:
    fmt = get_format("tt")
    geom = fmt.geometry(32, 16, (3, 3))
    with pytest.raises(ValueError, match=r"format 'tt': expected 3 rank\(s\)"):
        fmt.check_ranks(geom, (2, 2))
    with pytest.raises(ValueError, match="exceed the maximal useful ranks"):
        fmt.check_ranks(geom, (17, 2, 2))
    with pytest.raises(ValueError, match="redundant bonds"):
        fmt.check_ranks(geom, (1, 9, 2))
    with pytest.raises(ValueError, match="ranks must be >= 1"):
        fmt.check_ranks(geom, (0, 2, 2))
    with pytest.raises(TypeError, match="rank must be an int or a tuple"):
        fmt.check_ranks(geom, 2.5)  # type: ignore[arg-type]
    assert fmt.check_ranks(geom, 100) == fmt.repair_ranks(geom, fmt.max_ranks(geom))


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_rate_validation(rate: float) -> None:
    fmt = get_format("cp")
    with pytest.raises(ValueError, match="rate must be a finite float in \\(0, 1\\]"):
        fmt.ranks_for_rate(fmt.geometry(16, 16, (3, 3)), rate)


def test_min_rate_error_and_depthwise() -> None:
    fmt = get_format("tk")
    geom = fmt.geometry(32, 32, (3, 3), 32)  # depthwise: S/g = 1
    with pytest.raises(ValueError, match=r"smallest possible rate is (\d|\.)+"):
        fmt.ranks_for_rate(geom, 0.1)


def test_geometry_validation() -> None:
    with pytest.raises(ValueError, match="divisible by groups"):
        KernelGeometry.create(10, 6, (3, 3), 4)
    with pytest.raises(ValueError, match="kernel_size"):
        KernelGeometry(4, 4, (3,))
    with pytest.raises(ValueError, match="does not fold channels"):
        get_format("tt").geometry(4, 4, (3, 3), 1, 2)
    with pytest.raises(ValueError, match="needs at least 2 modes"):
        get_format("rtt").rank_length(get_format("rtt").geometry(10, 84, (), 1, 1))
    geom = get_format("rtt").geometry(50, 20, (5, 5), 1, 2)
    assert (geom.out_folds, geom.in_folds) == ((5, 10), (4, 5))
