"""Device and dtype handling: outputs follow the input's device and dtype; CUDA agrees with the CPU."""

from __future__ import annotations

import pytest
import torch

import tnn.decompositions as D

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _run_all(x: torch.Tensor) -> dict[str, tuple[list[torch.Tensor], float]]:
    cp = D.cp(x, 3, random_state=0, n_iter_max=30)
    tk = D.partial_tucker(x, [3, 4], modes=[0, 2])
    tt = D.tensor_train(x, [3, 4])
    tr = D.tensor_ring(x, [2, 2, 3], n_iter_max=3, random_state=0)
    return {
        "cp": ([cp.weights, *cp.factors], cp.error),
        "tucker": ([tk.core, *tk.factors], tk.error),
        "tt": (tt.cores, tt.error),
        "tr": (tr.cores, tr.error),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_follow_input_device_and_dtype(device: str, dtype: torch.dtype) -> None:
    x = torch.randn(6, 7, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    results = _run_all(x.to(device=device, dtype=dtype))
    reference = _run_all(x) if (device, dtype) != ("cpu", torch.float64) else results
    for name, (tensors, error) in results.items():
        for t in tensors:
            assert t.device.type == device and t.dtype == dtype, name
        tolerance = 1e-4 if dtype == torch.float32 else 1e-9
        assert error == pytest.approx(reference[name][1], rel=tolerance, abs=tolerance), name
