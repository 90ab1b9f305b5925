"""Memory: decomposing a real-sized 2048 x 512 x 3 x 3 float32 kernel (38 MB) stays within a few hundred MB.

Runs in a fresh subprocess so that the peak resident set size belongs to the decompositions alone; the
peak is reset before each decomposition through ``/proc/self/clear_refs`` (Linux).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_MB = 300.0

SCRIPT = r"""
import gc, json, torch
import tnn.decompositions as D

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(key)

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

torch.set_num_threads(1)  # the suite shares few cores; memory does not depend on the thread count
torch.manual_seed(0)
kernel = torch.randn(2048, 512, 3, 3)
# warm up the linear-algebra libraries so their one-time allocations are not counted
D.tensor_train(torch.randn(40, 50, 6), 4)
D.cp(torch.randn(30, 40, 5), 3, n_iter_max=1)
D.tensor_ring(torch.randn(4, 5, 6), 2, n_iter_max=1)
steps = {
    "cp rank 64, 1 sweep": lambda: D.cp(kernel, 64, n_iter_max=1),
    "partial_tucker (64, 64) modes (0, 1)": lambda: D.partial_tucker(kernel, [64, 64], [0, 1], n_iter_max=1),
    "tensor_train ranks (64, 9, 3)": lambda: D.tensor_train(kernel, [64, 9, 3]),
    "tensor_ring ranks (8, 8, 8, 3), 1 ALS sweep": lambda: D.tensor_ring(kernel, [8, 8, 8, 3], n_iter_max=1),
}
out = {}
for name, step in steps.items():
    gc.collect()
    reset_peak()
    base = status("VmRSS")
    result = step()
    out[name] = {"peak_increase_mb": status("VmHWM") - base, "error": result.error}
    del result
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_kernel_decompositions_peak_memory() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 4
    for name, info in results.items():
        assert info["peak_increase_mb"] < LIMIT_MB, f"{name}: {info}"
        assert 0.0 < info["error"] < 1.0, f"{name}: {info}"
