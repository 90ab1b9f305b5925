"""Tensorial dense layers and HighOrderMLP: exactness against the dense (Kronecker-sum) weight, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from tnn.nn.highorder_nets import HighOrderMLP, flat_mlp, tensorial_dense, tensorial_dense_spec

D = torch.float64


def test_spec_strings() -> None:
    assert tensorial_dense_spec(3) == "bijk,ipz,jqz,krz->bpqr"
    assert tensorial_dense_spec(4, (2, 2)) == "bijkl,ijpqz,klrsz->bpqrs"
    with pytest.raises(ValueError, match="order"):
        tensorial_dense_spec(0)
    with pytest.raises(ValueError, match="mode_groups"):
        tensorial_dense_spec(4, (2, 1))


def test_grouped_modes_equal_linear_with_kronecker_sum_weight() -> None:
    layer = tensorial_dense((2, 3, 2, 2), (2, 2, 3, 1), rank=2, mode_groups=(2, 2), dtype=D)
    u, v = layer.kernels  # u[i, j, p, q, z], v[k, l, r, s, z]
    weight = sum(
        torch.kron(u[..., z].reshape(6, 4).T, v[..., z].reshape(4, 3).T) for z in range(2)
    )
    x = torch.randn(3, 2, 3, 2, 2, dtype=D)
    ref = torch.nn.functional.linear(x.reshape(3, -1), weight, layer.bias.reshape(-1))
    torch.testing.assert_close(layer(x).reshape(3, -1), ref, rtol=1e-12, atol=1e-12)


def test_tensorial_dense_equals_linear_with_kronecker_sum_weight() -> None:
    in_shape, out_shape, rank = (2, 3, 4), (3, 2, 2), 3
    layer = tensorial_dense(in_shape, out_shape, rank, dtype=D)
    with torch.no_grad():
        layer.bias.normal_()
    u0, u1, u2 = layer.kernels
    # W[(p q r), (i j k)] = sum_z kron(U0[:, :, z]^T, U1[:, :, z]^T, U2[:, :, z]^T)
    weight = sum(
        torch.kron(torch.kron(u0[:, :, z].T, u1[:, :, z].T), u2[:, :, z].T) for z in range(rank)
    )
    x = torch.randn(5, *in_shape, dtype=D)
    ref = torch.nn.functional.linear(x.reshape(5, -1), weight, layer.bias.reshape(-1))
    torch.testing.assert_close(layer(x).reshape(5, -1), ref, rtol=1e-12, atol=1e-12)
    assert sum(k.numel() for k in layer.kernels) == rank * (2 * 3 + 3 * 2 + 4 * 2)


def test_tensorial_dense_errors() -> None:
    with pytest.raises(ValueError, match="same order"):
        tensorial_dense((2, 3), (2, 3, 4), 2)
    with pytest.raises(ValueError, match="rank"):
        tensorial_dense((2, 3), (2, 3), 0)
    with pytest.raises(ValueError, match="in_shape"):
        tensorial_dense((2, -3), (2, 3), 1)


def test_highorder_mlp_shapes_params_and_training_step() -> None:
    net = HighOrderMLP((4, 7, 4, 7), (3, 3, 3, 3), num_classes=10, depth=2, rank=2)
    x = torch.randn(6, 1, 28, 28)
    logits = net(x)
    assert logits.shape == (6, 10)
    hidden = 3**4
    expected = 2 * (4 * 3 + 7 * 3) * 2 + hidden + 2 * (3 * 3) * 4 + hidden + hidden * 10 + 10
    assert sum(p.numel() for p in net.parameters()) == expected
    torch.nn.functional.cross_entropy(logits, torch.arange(6)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_highorder_mlp_permute_reads_hwc() -> None:
    net = HighOrderMLP((4, 4, 3), (2, 2, 2), num_classes=3, depth=1, rank=1, permute=(0, 2, 3, 1))
    x = torch.randn(2, 3, 4, 4)
    first = net.features[0]
    expected = first(x.permute(0, 2, 3, 1))
    torch.testing.assert_close(net.classifier(expected), net(x))


def test_flat_mlp_depth_and_params() -> None:
    mlp = flat_mlp(784, 256, 10, depth=2)
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 256 + 256 + 256 * 256 + 256 + 2570
    assert mlp(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert math.prod((4, 7, 4, 7)) == 784
